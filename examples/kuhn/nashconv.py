#!/usr/bin/env python3
"""Exact NashConv of a Kuhn poker policy, and of an exported pbt agent.

    python3 nashconv.py AGENT.safetensors      # the agent plays both seats
    python3 nashconv.py --check                # the known answers

A policy is a function (player, card, history) -> P(bet), cards 0 J, 1 Q,
2 K, histories "" and "pb" (player 0) and "p" and "b" (player 1).
NashConv = sum over players of (best-response value - policy value); 0
exactly at a Nash equilibrium. Values are for player 0 (the first to act).
"""
import json
import struct
import sys
from fractions import Fraction

HISTORIES = {"": 0, "p": 1, "b": 2, "pb": 3}


def _show(c0, c1, stake):
    return stake if c0 > c1 else -stake


def value(pol):
    """Expected payoff of player 0 when both play pol."""
    v = 0
    for c0 in range(3):
        for c1 in range(3):
            if c0 == c1:
                continue
            b0, b1b, b1p, b0pb = pol(0, c0, ""), pol(1, c1, "b"), pol(1, c1, "p"), pol(0, c0, "pb")
            vb = (1 - b1b) * 1 + b1b * _show(c0, c1, 2)
            vp = (1 - b1p) * _show(c0, c1, 1) + b1p * ((1 - b0pb) * -1 + b0pb * _show(c0, c1, 2))
            v += Fraction(1, 6) * (b0 * vb + (1 - b0) * vp)
    return v


def best_response_0(pol):
    """Player 0's best-response value against player 1 playing pol."""
    total = 0
    for c0 in range(3):
        others = [c for c in range(3) if c != c0]
        bet = sum((1 - pol(1, c1, "b")) * 1 + pol(1, c1, "b") * _show(c0, c1, 2) for c1 in others)
        fold = sum(pol(1, c1, "p") * -1 for c1 in others)
        call = sum(pol(1, c1, "p") * _show(c0, c1, 2) for c1 in others)
        passed = sum((1 - pol(1, c1, "p")) * _show(c0, c1, 1) for c1 in others) + max(fold, call)
        total += Fraction(1, 6) * max(bet, passed)
    return total


def best_response_1(pol):
    """Player 1's best-response value (its own payoff) against player 0 playing pol."""
    total = 0
    for c1 in range(3):
        others = [c for c in range(3) if c != c1]
        # After a bet: fold loses 1, call wins or loses 2.
        fold = sum(pol(0, c0, "") * -1 for c0 in others)
        call = sum(pol(0, c0, "") * -_show(c0, c1, 2) for c0 in others)
        # After a pass: check to showdown, or bet and player 0 folds or calls.
        check = sum((1 - pol(0, c0, "")) * -_show(c0, c1, 1) for c0 in others)
        bet = sum((1 - pol(0, c0, "")) * ((1 - pol(0, c0, "pb")) * 1
                                          + pol(0, c0, "pb") * -_show(c0, c1, 2)) for c0 in others)
        total += Fraction(1, 6) * (max(fold, call) + max(check, bet))
    return total


def nashconv(pol):
    v = value(pol)
    return (best_response_0(pol) - v) + (best_response_1(pol) + v)


def nash(alpha):
    """The equilibrium family of player 0's alpha in [0, 1/3] (player 1 fixed)."""
    alpha = Fraction(alpha)

    def pol(player, card, hist):
        if player == 0 and hist == "":
            return [alpha, Fraction(0), 3 * alpha][card]
        if player == 0:
            return [Fraction(0), alpha + Fraction(1, 3), Fraction(1)][card]
        if hist == "b":
            return [Fraction(0), Fraction(1, 3), Fraction(1)][card]
        return [Fraction(1, 3), Fraction(0), Fraction(1)][card]
    return pol


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", name
        lo, hi = t["data_offsets"]
        flat = list(struct.unpack("<%df" % ((hi - lo) // 4), data[lo:hi]))
        shape = t["shape"]
        if len(shape) == 2:
            tensors[name] = [flat[r * shape[1]:(r + 1) * shape[1]] for r in range(shape[0])]
        else:
            tensors[name] = flat
    return tensors, meta


def exported_policy(path):
    """The exported actor as a policy: softmax over its two logits (both
    actions are legal whenever a player is to move; illegal ones would get
    -inf before the softmax)."""
    import math
    tensors, meta = load_safetensors(path)
    act = math.tanh if meta.get("activation", "tanh") == "tanh" else (lambda x: max(x, 0.0))
    layers = sorted({int(k.split(".")[1]) for k in tensors if k.startswith("actor.")})

    cache = {}

    def pol(player, card, hist):
        key = (player, card, hist)
        if key not in cache:
            cache[key] = forward(player, card, hist)
        return cache[key]

    def forward(player, card, hist):
        x = [0.0] * 9
        x[card] = 1.0
        x[3 + HISTORIES[hist]] = 1.0
        x[7 + player] = 1.0
        for i, l in enumerate(layers):
            w, b = tensors["actor.%d.weight" % l], tensors["actor.%d.bias" % l]
            x = [sum(wr[j] * x[j] for j in range(len(x))) + b[r] for r, wr in enumerate(w)]
            if i < len(layers) - 1:
                x = [act(v) for v in x]
        m = max(x)
        e = [math.exp(v - m) for v in x]
        return e[1] / (e[0] + e[1])
    return pol


def check():
    uniform = lambda player, card, hist: Fraction(1, 2)
    assert nashconv(uniform) == Fraction(11, 12), nashconv(uniform)
    for alpha in (0, Fraction(1, 6), Fraction(1, 3)):
        assert nashconv(nash(alpha)) == 0, (alpha, nashconv(nash(alpha)))
        assert value(nash(alpha)) == Fraction(-1, 18), value(nash(alpha))
    # Off the family: player 1 calling every bet, even with a jack, is exploitable.
    eq = nash(0)
    caller = lambda player, card, hist: Fraction(1) if (player, hist) == (1, "b") else eq(player, card, hist)
    assert nashconv(caller) > 0, nashconv(caller)
    print("uniform 11/12, Nash family 0, game value -1/18: ok")


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--check":
        check()
    elif len(sys.argv) == 2:
        pol = exported_policy(sys.argv[1])
        print("nashconv=%.6f value0=%.6f" % (float(nashconv(pol)), float(value(pol))))
    else:
        sys.exit(__doc__)
