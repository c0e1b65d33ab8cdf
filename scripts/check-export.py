#!/usr/bin/python3
"""Load a `pbtctl export` safetensors file into PyTorch and check it.

Run with /usr/bin/python3 (the python with torch):
    /usr/bin/python3 scripts/check-export.py FILE.safetensors
        prints the metadata and the policy on a few observations
    /usr/bin/python3 scripts/check-export.py FILE.safetensors --obs OBS.txt --expect OUT.txt
        also compares with the worker's own forward pass: OUT.txt is what
        `pbtctl export AGENT -o FILE --probe-obs OBS.txt --probe-out OUT.txt`
        wrote (per row: the action probabilities, then the value); exits 1
        if any number differs by more than --tol (default 1e-5).

A Nash-mixture file (`pbtctl export --nash -o FILE`) holds several policies:
    /usr/bin/python3 scripts/check-export.py MIX.safetensors [--policy I --obs OBS.txt --expect OUT.txt]
        loads every policy ("policies.<i>.actor.0.weight", ...) into its own
        Agent, checks "mixture.weights" (positive, summing to 1, as the
        metadata's "mixture" list says), and with --policy compares policy I
        with the worker's forward pass as above.

The safetensors format is parsed by hand (the safetensors package need not
be installed): 8-byte little-endian header length N, N bytes of JSON, the
raw data. The model is rebuilt from the metadata as two nn.Sequential MLPs
(Linear, act, ..., Linear), loaded with load_state_dict(strict=True).
"""
import argparse
import json
import struct
import sys

import torch
import torch.nn as nn


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"header length {n} runs past the end of the file")
    if n % 8 != 0:
        raise ValueError(f"header length {n} is not a multiple of 8")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    if not all(isinstance(v, str) for v in meta.values()):
        raise ValueError("__metadata__ values must all be strings")
    tensors, spans = {}, []
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError(f"{name}: dtype {info['dtype']}, expected F32")
        begin, end = info["data_offsets"]
        count = 1
        for s in info["shape"]:
            count *= s
        if end - begin != 4 * count or end > len(data):
            raise ValueError(f"{name}: offsets {begin}..{end} do not fit shape {info['shape']}")
        spans.append((begin, end, name))
        buf = bytearray(data[begin:end])        # frombuffer wants a writable buffer
        tensors[name] = torch.frombuffer(buf, dtype=torch.float32).reshape(info["shape"]).clone()
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            raise ValueError(f"{name} starts at {begin}, expected {pos} (gap or overlap)")
        pos = end
    if pos != len(data):
        raise ValueError(f"tensors cover {pos} bytes of {len(data)}")
    return meta, tensors


def mlp(layers, act):
    mods = []
    for i in range(len(layers) - 1):
        mods.append(nn.Linear(layers[i], layers[i + 1]))
        if i < len(layers) - 2:
            mods.append(nn.Tanh() if act == "tanh" else nn.ReLU())
    return nn.Sequential(*mods)


class Agent(nn.Module):
    def __init__(self, meta):
        super().__init__()
        act = meta["activation"]
        self.actor = mlp(json.loads(meta["actor_layers"]), act)
        self.critic = mlp(json.loads(meta["critic_layers"]), act)

    def forward(self, obs):
        return torch.softmax(self.actor(obs), dim=-1), self.critic(obs).squeeze(-1)


def load(path):
    meta, tensors = read_safetensors(path)
    agent = Agent(meta)
    agent.load_state_dict(tensors, strict=True)
    agent.eval()
    return meta, agent


def load_mixture(path):
    """(meta, [Agent], weights) of a mixture file."""
    meta, tensors = read_safetensors(path)
    mix = json.loads(meta["mixture"])
    weights = tensors.pop("mixture.weights")
    agents = []
    for i, entry in enumerate(mix):
        if entry["index"] != i:
            raise ValueError(f"mixture entry {i} has index {entry['index']}")
        prefix = f"policies.{i}."
        sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        agent = Agent(meta)
        agent.load_state_dict(sub, strict=True)
        agent.eval()
        agents.append(agent)
    left = [k for k in tensors if not any(k.startswith(f"policies.{i}.") for i in range(len(mix)))]
    if left:
        raise ValueError(f"tensors outside the mixture: {left}")
    if weights.shape != (len(mix),):
        raise ValueError(f"mixture.weights has shape {tuple(weights.shape)}, {len(mix)} policies")
    if (weights <= 0).any() or abs(weights.sum().item() - 1) > 1e-5:
        raise ValueError(f"mixture.weights {weights.tolist()} are not a distribution")
    for i, entry in enumerate(mix):
        if abs(entry["weight"] - weights[i].item()) > 1e-6:
            raise ValueError(f"policy {i}: metadata weight {entry['weight']}, tensor {weights[i].item()}")
    return meta, agents, weights


def read_rows(path):
    with open(path) as f:
        return [[float(x) for x in line.split()] for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--obs", help="observations, one row per line")
    ap.add_argument("--expect", help="the worker's probabilities and value per row")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--policy", type=int, help="a mixture file: which policy --obs/--expect check")
    args = ap.parse_args()
    meta, _ = read_safetensors(args.file)
    if "mixture" in meta:
        meta, agents, weights = load_mixture(args.file)
        for entry in json.loads(meta["mixture"]):
            print(f"policy {entry['index']}: {entry['agent']} version {entry['version']} weight {entry['weight']:.6f}")
        print(f"OK: {len(agents)} policies loaded, weights sum to {weights.sum().item():.6f}")
        if args.policy is None:
            return 0
        if not 0 <= args.policy < len(agents):
            print(f"FAIL: --policy {args.policy}: the file has {len(agents)} policies")
            return 1
        agent = agents[args.policy]
    else:
        meta, agent = load(args.file)
    for k in ("agent", "env", "env_options", "observation", "activation", "actor_layers", "rating",
              "frames", "hyperparameters"):
        print(f"{k}: {meta.get(k)}")
    obs_dim = json.loads(meta["actor_layers"])[0]
    if args.obs:
        obs = torch.tensor(read_rows(args.obs), dtype=torch.float32)
    else:
        obs = torch.eye(obs_dim)
    with torch.no_grad():
        probs, values = agent(obs)
    if not args.expect:
        for o, p, v in zip(obs.tolist(), probs.tolist(), values.tolist()):
            print("obs", [round(x, 3) for x in o], "-> probs", [round(x, 4) for x in p], "value", round(v, 4))
        return 0
    expect = torch.tensor(read_rows(args.expect), dtype=torch.float32)
    n_act = probs.shape[1]
    if expect.shape != (obs.shape[0], n_act + 1):
        print(f"FAIL: {args.expect} has shape {tuple(expect.shape)}, expected ({obs.shape[0]}, {n_act + 1})")
        return 1
    dp = (probs - expect[:, :n_act]).abs().max().item()
    dv = (values - expect[:, n_act]).abs().max().item()
    print(f"rows={obs.shape[0]} max|dprob|={dp:.3g} max|dvalue|={dv:.3g} tol={args.tol:g}")
    if dp > args.tol or dv > args.tol:
        print("FAIL: PyTorch and the worker disagree")
        return 1
    print("OK: PyTorch on the exported file matches the worker's forward pass")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, KeyError, RuntimeError) as e:
        print(f"FAIL: {type(e).__name__}: {e}")
        sys.exit(1)
