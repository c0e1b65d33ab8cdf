#!/usr/bin/python3
"""Conformance of a real pbtd to proto/PROTOCOL.md, checked by a client
written from the document alone: Python with pyzmq and msgpack (Debian's
python3-zmq and python3-msgpack), no C code and no pbt encoder.

Each test names the rows of PROTOCOL.md §4's state tables (worker states,
pbtd per peer, control session) and the §5 error codes it walks. Rows and
codes that cannot be provoked from outside are listed at the end with the
reason, and test_unprovokable checks what can be checked about them.

Three pbtd processes (harness.Cluster: real processes, ipc sockets, a
temporary directory): A trains (long leases), B has short leases for the
expiry rows, C plays evaluation-only assignments and has an admin token.
"""
import math
import os
import struct
import sys
import time

import msgpack
import zmq

import harness
from harness import Cluster, check

V = 1  # §2: every message carries "v": 1

BASE = """
[population]
size = 4
env = rps
preset = seed

[model]
hidden = 8

[ppo]
n_envs = 8
n_steps = 20
iterations = 1
epochs = 1
minibatches = 2
"""
# Six agents in A: a worker's second assignment is formed only while it
# leaves a whole match (two agents) idle (PROTOCOL.md §3.3).
CONFIG_A = BASE.replace("size = 4", "size = 6") + """
[daemon]
lease_ms = 30000
heartbeat_ms = 1000
"""
CONFIG_B = BASE + """
[daemon]
lease_ms = 1000
heartbeat_ms = 200
housekeeping_ms = 100
"""
CONFIG_C = BASE + """
[daemon]
lease_ms = 30000
heartbeat_ms = 1000

[pbt]
eval_rate = 1

[security]
admin_token_file = {token_file}
"""
TOKEN = "conformance-token-0123456789"

CLUSTERS = {}
CTX = zmq.Context.instance()
ERROR_CODES = {"too_large", "malformed", "bad_version", "unknown_type", "bad_field", "bad_state",
               "unknown_assignment", "expired", "duplicate", "stale_version", "bad_weights",
               "denied", "internal", "paused", "over_limit", "not_yours", "wrong_env"}


def cluster(name):
    if name not in CLUSTERS:
        if name == "C":
            d = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"pbt-conf-token-{os.getpid()}")
            with open(d, "w") as f:
                f.write(TOKEN + "\n")
            os.chmod(d, 0o600)
            text = CONFIG_C.format(token_file=d)
        else:
            text = {"A": CONFIG_A, "B": CONFIG_B}[name]
        c = Cluster(text, name=f"conf{name}")
        CLUSTERS[name] = c
        c.start_pbtd()
        # §3.1/§8: a hello names the population's game by its spec hash,
        # which status reports.
        st = status(c)
        ENVS[:] = [{"name": st["env"], "version": "conformance", "hash": st["env_hash"]}]
    return CLUSTERS[name]


ENVS = []


# ---------------------------------------------------------------------------
# Wire helpers, from §2 and §3

def f32(values):
    """§2 float vector: bin of float32 little-endian."""
    return struct.pack(f"<{len(values)}f", *values)


def unf32(b):
    return list(struct.unpack(f"<{len(b) // 4}f", b))


def n_params(model):
    """§3.4.1: actor obs→H1→…→Hk→n_actions plus critic obs→H1→…→Hk→1,
    each layer out*in weights plus out biases."""
    total = 0
    for outputs in (model["n_actions"], 1):
        inp = model["obs_dim"]
        for h in model["hidden"]:
            total += inp * h + h
            inp = h
        total += inp * outputs + outputs
    return total


def state(n, params=None, adam_m=None, adam_v=None, adam_t=1):
    z = [0.0] * n
    return {"n_params": n, "params": f32(params if params is not None else z),
            "adam_m": f32(adam_m if adam_m is not None else z),
            "adam_v": f32(adam_v if adam_v is not None else z), "adam_t": adam_t}


class Peer:
    """A worker-side DEALER speaking the protocol by hand."""
    count = 0

    def __init__(self, endpoint, worker_id=None):
        self.sock = CTX.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        Peer.count += 1
        self.worker_id = worker_id or f"conf-{os.getpid()}-{Peer.count}"
        self.greeted = False

    def send(self, msg):
        self.sock.send(msgpack.packb(msg, use_bin_type=True))

    def send_raw(self, frame):
        self.sock.send(frame)

    def recv(self, timeout_ms=15000):
        check(self.sock.poll(timeout_ms), f"no reply within {timeout_ms} ms")
        frames = self.sock.recv_multipart()
        check(len(frames) == 1, f"§1: a reply must be exactly one frame, got {len(frames)}")
        msg = msgpack.unpackb(frames[0], raw=False)
        check(isinstance(msg, dict) and msg.get("v") == V, f"§2: reply without v=1: {msg}")
        if msg.get("type") == "error":
            check(msg.get("code") in ERROR_CODES, f"§5: unknown error code in {msg}")
            check(isinstance(msg.get("message"), str) and msg["message"], f"§3.8: error without message: {msg}")
            check(isinstance(msg.get("assignment_id", 0), int), f"§3.8: assignment_id not a uint: {msg}")
        return msg

    def quiet(self, timeout_ms=300):
        """True if nothing arrives within timeout_ms (used only where the
        document says no reply is sent)."""
        return not self.sock.poll(timeout_ms)

    def call(self, msg, timeout_ms=15000):
        self.send(msg)
        return self.recv(timeout_ms)

    def hello(self, **extra):
        msg = {"v": V, "type": "hello", "worker_id": self.worker_id, "host": "conformance",
               "pid": os.getpid(), "software": "test_conformance/1", "envs": list(ENVS)}
        msg.update(extra)
        r = self.call(msg)
        check(r["type"] == "welcome", f"§4 UNKNOWN/KNOWN + hello: expected welcome, got {r}")
        self.greeted = True
        return r

    def request(self):
        r = self.call({"v": V, "type": "request"})
        check(r["type"] == "assign", f"§4 KNOWN + request: expected assign, got {r}")
        return r

    def heartbeat(self, aid, frames_done=0):
        return self.call({"v": V, "type": "heartbeat", "assignment_id": aid, "frames_done": frames_done})

    def bye(self, returned=()):
        msg = {"v": V, "type": "bye"}
        if returned:
            msg["returned"] = list(returned)
        return self.call(msg)

    def close(self):
        if self.greeted:
            # Leave cleanly so no parked request or lease outlives the test.
            r = self.bye()
            check(r["type"] == "ack" and r.get("assignment_id", 0) == 0, f"§3.11: bye's answer {r}")
        self.sock.close(0)


def expect_error(reply, code, aid=None, what=""):
    check(reply.get("type") == "error" and reply.get("code") == code,
          f"{what}: expected error{{{code}}}, got {reply}")
    if aid is not None:
        check(reply.get("assignment_id", 0) == aid,
              f"{what}: error{{{code}}} names assignment {reply.get('assignment_id', 0)}, expected {aid}")
    return reply


def result_for(assign, n_episodes=2, mutate=None):
    """A result as §3.6 describes it for this assignment: seats in the
    assignment's order, a new state for each trained seat only, frames =
    n_envs*n_steps*iterations for trained seats, zero-sum rps scores."""
    ppo = assign.get("ppo", {})
    frames = int(ppo.get("n_envs", 64) * ppo.get("n_steps", 128) * ppo.get("iterations", 1))
    n = n_params(assign["model"])
    seats = []
    for seat in assign["seats"]:
        out = {"id": seat["id"], "version": seat["version"], "frames": frames if seat["train"] else 0}
        if seat["train"] and "state" in seat:
            st = seat["state"]
            params = [x + 1e-3 for x in unf32(st["params"])]
            out["state"] = state(n, params, unf32(st["adam_m"]), unf32(st["adam_v"]), st["adam_t"] + 1)
        elif seat["train"]:
            # §8: a never-trained agent comes as init_seed; any finite
            # weights of the model's size are a valid trained state.
            out["state"] = state(n, [1e-3] * n)
        seats.append(out)
    scores = []
    for e in range(n_episodes):
        s = float(e % 3 - 1)
        scores += [s, -s]
    r = {"v": V, "type": "result", "assignment_id": assign["assignment_id"],
         "samples_per_s": 1000.0, "seconds": 0.5, "seats": seats, "n_episodes": n_episodes,
         "scores": f32(scores)}
    if mutate:
        mutate(r)
    return r


def ctl(c, cmd, token=None, args=None):
    """§3.9/§3.10 by hand on the control endpoint."""
    s = CTX.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(c.cep)
    msg = {"v": V, "type": "ctl", "cmd": cmd}
    if token is not None:
        msg["token"] = token
    if args is not None:
        msg["args"] = args
    s.send(msgpack.packb(msg, use_bin_type=True))
    check(s.poll(15000), f"no ctl_reply to {cmd}")
    reply = msgpack.unpackb(s.recv(), raw=False)
    s.close(0)
    return reply


def status(c):
    r = ctl(c, "status")
    check(r["type"] == "ctl_reply" and r["ok"], f"status: {r}")
    return r["body"]


def workers(c):
    r = ctl(c, "workers")
    check(r["type"] == "ctl_reply" and r["ok"], f"workers: {r}")
    return r["body"]


def agent(c, aid):
    return next(a for a in status(c)["agents"] if a["id"] == f"agt_{aid}")


def wait_for(cond, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise harness.Failure(f"{what} did not happen within {timeout} s")


# ---------------------------------------------------------------------------
# Worker session, §4 "Worker states" and §4 "pbtd, per peer"

def test_session_happy_path():
    """START→EXPECT_WELCOME (hello), EXPECT_WELCOME→READY (welcome),
    READY request→assign (QUEUED; validated field by field against §3.4
    and §7.1), PLAYING heartbeat→ack{A, applied:false}, PLAYING→OWED
    (result), OWED→resolved on ack{A, applied:true}; pbtd KNOWN rows
    hello (idempotent), request, heartbeat, result."""
    c = cluster("A")
    p = Peer(c.wep)
    try:
        w = p.hello()
        check(w["heartbeat_ms"] == 1000 and w["lease_ms"] == 30000 and w.get("max_held", 1) == 2,
              f"§3.2 welcome fields: {w}")
        p.hello()                                          # KNOWN + hello: idempotent
        a = p.request()
        for k in ("assignment_id", "seed", "lease_ms", "env", "model", "seats"):
            check(k in a, f"§3.4: assign lacks {k}")
        check(a["assignment_id"] >= 1 and a["lease_ms"] == 30000 and a["env"] == "rps", f"§3.4: {a}")
        check(set(a.get("env_options", {})) <= {"episode_len", "obs_both"}, f"§7.1 options: {a.get('env_options')}")
        m = a["model"]
        obs = 6 if a.get("env_options", {}).get("obs_both", 0) else 3
        check(m["obs_dim"] == obs and m["n_actions"] == 3 and m["hidden"] == [8]
              and m["activation"] in ("tanh", "relu"), f"§3.4.1/§7.1 model: {m}")
        n = n_params(m)
        check(n == (8 * 3 + 8) + (3 * 8 + 3) + (8 * 3 + 8) + (1 * 8 + 1), f"§3.4.1 n_params {n}")
        check([s["slot"] for s in a["seats"]] == [0, 1], "§3.4.2: seats in slot order, two rps players")
        for s in a["seats"]:
            check(s["id"] >= 0 and s["train"] is True, f"§3.4.2 training seat: {s}")
            check(("state" in s) != ("init_seed" in s), f"§3.4.2/§8: a state or an init_seed: {s}")
            if "state" in s:
                st = s["state"]
                check(st["n_params"] == n and all(len(st[k]) == 4 * n for k in ("params", "adam_m", "adam_v")),
                      "§3.4.4: vectors of 4*n_params bytes")
                check(all(math.isfinite(x) for x in unf32(st["params"])), "§2: states sent are finite")
            else:
                check(isinstance(s["init_seed"], int) and s["init_seed"] >= 0, f"§8 init_seed: {s}")
            check(set(s.get("hparams", {})) <= {"lr", "gamma", "gae_lambda", "ent_coef", "clip_coef"},
                  f"§3.4.3 hparams: {s.get('hparams')}")
        check(all(agent(c, s["id"])["busy"] for s in a["seats"]), "assigned agents are busy")
        aid = a["assignment_id"]
        r = p.heartbeat(aid, 80)
        check(r["type"] == "ack" and r.get("assignment_id", 0) == aid and r.get("applied", False) is False,
              f"§3.5/§3.7: heartbeat's ack must be {{A, applied:false}}: {r}")
        before = {s["id"]: agent(c, s["id"]) for s in a["seats"]}
        r = p.call(result_for(a))
        check(r["type"] == "ack" and r["assignment_id"] == aid and r["applied"] is True,
              f"§3.7: result's ack must be {{A, applied:true}}: {r}")
        for s in a["seats"]:
            now = agent(c, s["id"])
            check(now["version"] >= before[s["id"]]["version"] + 1, f"§3.6: version not bumped: {now}")
            check(now["frames"] >= before[s["id"]]["frames"] + 160, f"§3.6: frames not counted: {now}")
            check(now["matches"] == before[s["id"]]["matches"] + 2, f"§3.6: 2 episodes, {now}")
            check(not now["busy"], "agents free after the result")
        # OWED + error{duplicate}: the same result again.
        expect_error(p.call(result_for(a)), "duplicate", aid, "§4 OWED resend")
        # A heartbeat for a finished assignment: unknown_assignment (§3.5).
        r = expect_error(p.heartbeat(aid), "unknown_assignment", aid, "§3.5 heartbeat after done")
    finally:
        p.close()


def test_request_parking_hello_and_pause():
    """KNOWN + request parks one request per peer (a repeat changes
    nothing); no assign while paused; KNOWN + hello drops the parked
    request (§3.3, §4)."""
    c = cluster("A")
    p = Peer(c.wep)
    try:
        check(ctl(c, "pause")["ok"], "pause")
        p.hello()
        p.send({"v": V, "type": "request"})
        p.send({"v": V, "type": "request"})
        wait_for(lambda: any(w["worker_id"] == p.worker_id and w["waiting"] for w in workers(c)), "parking")
        check(p.quiet(300), "an assign arrived while paused")
        p.hello()
        check(not any(w["worker_id"] == p.worker_id and w["waiting"] for w in workers(c)),
              "§4 KNOWN + hello must drop the parked request")
        p.send({"v": V, "type": "request"})
        p.send({"v": V, "type": "request"})
        wait_for(lambda: any(w["worker_id"] == p.worker_id and w["waiting"] for w in workers(c)), "parking")
        check(ctl(c, "resume")["ok"], "resume")
        a = p.recv()
        check(a["type"] == "assign", f"assign after resume: {a}")
        check(status(c)["assignments_in_flight"] == 1, "§3.3: two requests gave more than one assignment")
        check(p.quiet(300), "a second assign arrived for a repeated request")
        check(p.call(result_for(a))["applied"] is True, "result")
    finally:
        ctl(c, "resume")
        p.close()


def test_bad_state_rows():
    """UNKNOWN + request/heartbeat/result/bye → bad_state (the heartbeat's
    and result's naming their assignment, §3.8); any + a type workers do
    not send → bad_state, id 0; bye turns KNOWN into UNKNOWN."""
    c = cluster("A")
    p = Peer(c.wep)
    try:
        expect_error(p.call({"v": V, "type": "request"}), "bad_state", 0, "UNKNOWN + request")
        expect_error(p.heartbeat(77, 0), "bad_state", 77, "UNKNOWN + heartbeat")
        r = {"v": V, "type": "result", "assignment_id": 78, "samples_per_s": 0.0, "seconds": 0.0,
             "seats": [{"id": 0, "version": 1, "frames": 0}], "n_episodes": 0, "scores": b""}
        expect_error(p.call(r), "bad_state", 78, "UNKNOWN + result")
        expect_error(p.bye(), "bad_state", 0, "UNKNOWN + bye")
        # §8: a hello without the population's game, or with another build
        # of it, is wrong_env and records nothing (a request stays bad_state).
        base = {"v": V, "type": "hello", "worker_id": p.worker_id}
        expect_error(p.call(base), "wrong_env", 0, "UNKNOWN + hello without envs")
        other = [dict(ENVS[0], hash="0123456789abcdef")]
        r = p.call(dict(base, envs=other))
        expect_error(r, "wrong_env", 0, "UNKNOWN + hello with another build")
        check(ENVS[0]["hash"] in r["message"], f"§8: wrong_env does not name the hash it trains: {r}")
        expect_error(p.call({"v": V, "type": "request"}), "bad_state", 0, "request after wrong_env")
        p.hello()
        others = [
            {"type": "welcome", "heartbeat_ms": 1, "lease_ms": 1},
            {"type": "ack", "assignment_id": 1, "applied": True},
            {"type": "error", "code": "internal", "assignment_id": 0, "message": "x"},
            {"type": "ctl", "cmd": "status"},
            {"type": "ctl_reply", "ok": True},
            {"type": "assign", "assignment_id": 5, "seed": 1, "lease_ms": 1, "env": "rps",
             "model": {"obs_dim": 1, "n_actions": 1, "hidden": [], "activation": "tanh"},
             "seats": [{"id": 0, "version": 1, "slot": 0, "train": False}]},
        ]
        for m in others:
            m["v"] = V
            expect_error(p.call(m), "bad_state", 0, f"any + {m['type']} (not a worker message)")
        r = p.bye()
        check(r["type"] == "ack" and r.get("assignment_id", 0) == 0 and not r.get("applied", False),
              f"§3.7: bye's ack is {{0, applied:false}}: {r}")
        p.greeted = False
        expect_error(p.call({"v": V, "type": "request"}), "bad_state", 0, "after bye the peer is UNKNOWN")
    finally:
        p.close()


def test_result_refusals():
    """OWED + error{...} naming A for each refusal of §3.6's check
    order: unknown_assignment, stale_version, bad_weights (missing state,
    wrong n_params, NaN params, Inf adam_m, negative adam_v), bad_field
    (seat count, seat id, non-finite score; decode errors of a result
    frame carry its id: §3.8). Nothing changes: the assignment is then
    applied normally."""
    c = cluster("A")
    p = Peer(c.wep)
    try:
        p.hello()
        a = p.request()
        aid = a["assignment_id"]
        n = n_params(a["model"])
        expect_error(p.call(result_for(a, mutate=lambda r: r.update(assignment_id=10 ** 12))),
                     "unknown_assignment", 10 ** 12, "never issued")

        def seat0(fn):
            return lambda r: fn(r["seats"][0])
        cases = [
            ("stale_version", seat0(lambda s: s.update(version=s["version"] + 5))),
            ("bad_weights", seat0(lambda s: s.pop("state"))),
            ("bad_weights", seat0(lambda s: s.update(state=state(n - 1)))),
            ("bad_weights", seat0(lambda s: s.update(state=state(n, params=[float("nan")] * n)))),
            ("bad_weights", seat0(lambda s: s.update(state=state(n, adam_m=[0.0] * (n - 1) + [float("inf")])))),
            ("bad_weights", seat0(lambda s: s.update(state=state(n, adam_v=[-0.5] + [0.0] * (n - 1))))),
            ("bad_field", lambda r: r.update(seats=r["seats"][:1])),
            ("bad_field", seat0(lambda s: s.update(id=s["id"] + 1 if s["id"] < 3 else 0))),
            ("bad_field", lambda r: r.update(scores=f32([float("nan"), 0.0, 1.0, -1.0]))),
            ("bad_field", lambda r: r.update(seconds=float("nan"))),          # §2 scalar floats
            ("bad_field", lambda r: r.update(scores=b"\0\0\0")),             # §2 vector size
            ("bad_field", lambda r: r.pop("n_episodes")),                      # missing field
            ("bad_field", lambda r: r.update(samples_per_s=-1.0)),            # out of range
        ]
        for code, fn in cases:
            r = p.call(result_for(a, mutate=fn))
            expect_error(r, code, aid, f"result refused as {code}")
        # A truncated result frame (malformed) still names its assignment.
        frame = msgpack.packb(result_for(a), use_bin_type=True)
        p.send_raw(frame[:len(frame) - 7])
        expect_error(p.recv(), "malformed", aid, "§3.8: truncated result names its id")
        # Nothing changed: the result is still accepted.
        r = p.call(result_for(a))
        check(r["type"] == "ack" and r["applied"] is True, f"after refusals: {r}")
    finally:
        p.close()


def test_not_yours_and_bounds():
    """§4.1: a heartbeat or result for an assignment in flight from a
    peer it was not given to (another socket, another worker_id) →
    error{not_yours, A}, checked before the §4.2 bounds (§3.5, §3.6 check
    order); nothing changes: the owner's heartbeat is still acked and its
    result applied. §3.5/§4.2: the owner's heartbeat with frames_done over
    n_envs*n_steps*iterations → bad_field, lease kept; a heartbeat for an
    assignment never issued → unknown_assignment; one for an applied
    assignment → unknown_assignment, whoever sends it."""
    c = cluster("A")
    owner, other = Peer(c.wep), Peer(c.wep)
    try:
        owner.hello()
        other.hello()
        a = owner.request()
        aid = a["assignment_id"]
        budget = 8 * 20 * 1                       # [ppo] n_envs × n_steps × iterations
        expect_error(other.heartbeat(aid, 0), "not_yours", aid, "§3.5 another worker's heartbeat")
        expect_error(other.call(result_for(a)), "not_yours", aid, "§3.6 another worker's result")
        # Ownership comes before the bounds: over-budget claims from a
        # stranger are still not_yours.
        expect_error(other.heartbeat(aid, budget + 1), "not_yours", aid, "§3.5 order: not_yours first")
        over = result_for(a, mutate=lambda r: r["seats"][0].update(frames=budget + 1))
        expect_error(other.call(over), "not_yours", aid, "§3.6 order: not_yours before the bounds")
        check(all(agent(c, s["id"])["busy"] for s in a["seats"]), "§4.1: not_yours freed the agents")
        # The owner's own over-budget claims are bad_field (§4.2) and change nothing.
        expect_error(owner.heartbeat(aid, budget + 1), "bad_field", aid, "§3.5/§4.2 frames_done over budget")
        expect_error(owner.call(over), "bad_field", aid, "§4.2 seats[0].frames over budget")
        r = owner.heartbeat(aid, budget)
        check(r["type"] == "ack" and r.get("assignment_id", 0) == aid and r.get("applied", False) is False,
              f"§4.1: the owner's heartbeat after not_yours must be ack{{A, applied:false}}: {r}")
        expect_error(owner.heartbeat(10 ** 12), "unknown_assignment", 10 ** 12, "§3.5 never issued")
        r = owner.call(result_for(a))
        check(r["type"] == "ack" and r.get("assignment_id", 0) == aid and r.get("applied") is True,
              f"§4.1: the owner's result after not_yours must be ack{{A, applied:true}}: {r}")
        expect_error(other.heartbeat(aid), "unknown_assignment", aid, "§3.5 heartbeat after done, from another worker")
    finally:
        owner.close()
        other.close()


def test_zero_episodes_accepted():
    """§3.6: n_episodes = 0 in a training result is accepted: new state
    (version + 1) and frames count, no match or rating changes."""
    c = cluster("A")
    p = Peer(c.wep)
    try:
        p.hello()
        a = p.request()
        before = {s["id"]: agent(c, s["id"]) for s in a["seats"]}
        r = p.call(result_for(a, n_episodes=0))
        check(r["type"] == "ack" and r["applied"] is True, f"n_episodes=0 refused: {r}")
        for s in a["seats"]:
            now, was = agent(c, s["id"]), before[s["id"]]
            check(now["version"] >= was["version"] + 1 and now["frames"] == was["frames"] + 160,
                  f"training not counted: {was} -> {now}")
            check(now["matches"] == was["matches"] and now["rating"] == was["rating"],
                  f"episodes or rating changed with n_episodes=0: {was} -> {now}")
    finally:
        p.close()


def test_decode_errors():
    """any + a frame that does not decode → malformed / bad_version /
    unknown_type / bad_field naming the problem (§2, §5); more than one
    frame → malformed; heartbeat frames name their id (§3.8); pbtd keeps
    serving (each probe is followed by a good hello)."""
    c = cluster("A")
    p = Peer(c.wep)
    try:
        hb = {"v": V, "type": "heartbeat", "assignment_id": 4242, "frames_done": 1}
        pk = lambda m: msgpack.packb(m, use_bin_type=True)  # noqa: E731
        probes = [
            (b"\xc1", "malformed", 0),                                     # reserved byte
            (b"\x93\x01\x02\x03", "malformed", 0),                        # top level not a map
            (pk({"v": V, "type": "request"}) + b"\x00", "malformed", 0),  # trailing bytes
            (pk({"v": V, "type": "request"})[:-3], "malformed", 0),       # truncated
            (b"\x81\xa1x\xd4\x01\x00", "malformed", 0),                   # ext type
            (b"\x81\xa1x" + b"\x91" * 31 + b"\x80", "malformed", 0),      # nesting 33 deep
            (pk({"type": "request"}), "bad_version", 0),
            (pk({"v": "1", "type": "request"}), "bad_version", 0),
            (pk({"v": 2, "type": "request"}), "bad_version", 0),
            (pk({"v": V}), "unknown_type", 0),
            (pk({"v": V, "type": 7}), "unknown_type", 0),
            (pk({"v": V, "type": "gossip"}), "unknown_type", 0),
            (pk({"v": V, "type": "hello"}), "bad_field", 0),               # worker_id missing
            (pk({"v": V, "type": "hello", "worker_id": "a\0b"}), "bad_field", 0),
            (pk({"v": V, "type": "hello", "worker_id": "x" * 256}), "bad_field", 0),
            (pk({"v": V, "type": "hello", "worker_id": "w", 1: 2}), "bad_field", 0),
            (b"\x83\xa1v\x01\xa4type\xa5hello\xa1v\x01", "bad_field", 0),  # duplicate key
            (pk({"v": V, "type": "bye", "returned": [0]}), "bad_field", 0),
            (pk({**hb, "frames_done": -1}), "bad_field", 4242),
            (pk({**hb, "frames_done": "many"}), "bad_field", 4242),
            (pk({**hb, "v": 9}), "bad_version", 4242),
            (pk({"v": V, "type": "heartbeat", "assignment_id": -4}), "bad_field", 0),
            (pk({**hb, "busy_ms": 5}), "bad_field", 4242),                 # uptime_ms missing
            (pk({**hb, "busy_ms": 5, "uptime_ms": 4}), "bad_field", 4242),  # busy > uptime
        ]
        for frame, code, aid in probes:
            p.send_raw(frame)
            expect_error(p.recv(), code, aid, f"frame {frame[:24]!r}")
        p.sock.send_multipart([b"", pk({"v": V, "type": "hello", "worker_id": "w"})])
        expect_error(p.recv(), "malformed", 0, "two frames (a REQ socket's delimiter)")
        # §2: unknown keys are ignored; any integer format is accepted.
        p.send_raw(b"\x85\xa1v\xcf" + (1).to_bytes(8, "big") + b"\xa4type\xa5hello\xa9worker_id\xa1w"
                   + b"\xa7comment\xa3new" + pk("envs") + pk(list(ENVS)))
        check(p.recv()["type"] == "welcome", "§2: uint64-encoded v and an unknown key")
        p.greeted = True
    finally:
        p.close()


def test_oversize_frame_drops_connection():
    """§1: a frame over 64 MiB is not answered: libzmq drops the
    connection; the DEALER reconnects as a new, UNKNOWN peer; pbtd keeps
    serving. (too_large cannot be provoked over ZeroMQ.)"""
    c = cluster("A")
    p = Peer(c.wep)
    try:
        p.hello()
        p.send_raw(b"\x80" + b"\0" * (64 << 20))
        check(p.quiet(1000), "§1: an oversize frame got a reply")
        # The new connection is a new peer: request is bad_state until hello.
        # (A message queued behind the big frame may go down with the old
        # connection, so ask until one is answered.)
        deadline = time.time() + 30
        reply = None
        while reply is None and time.time() < deadline:
            p.send({"v": V, "type": "request"})
            if p.sock.poll(1000):
                reply = p.recv()
        check(reply is not None, "no reply after the reconnect")
        expect_error(reply, "bad_state", 0, "§1: after the drop the peer is UNKNOWN")
        p.hello()
        check(status(c)["agents"], "pbtd still serving")
    finally:
        p.close()


def test_bye_returns_work():
    """§3.11 and §4 stop row: bye frees the peer's assignment at once (a
    later heartbeat or result for it gets expired), drops its parked
    request and forgets the peer; an assignment named in bye.returned by
    the same worker_id on another socket is returned too; another
    worker's named assignment is left alone."""
    c = cluster("A")
    owner, same, stranger = Peer(c.wep, "conf-owner"), Peer(c.wep, "conf-owner"), Peer(c.wep, "conf-stranger")
    try:
        owner.hello()
        a = owner.request()
        aid = a["assignment_id"]
        check(all(agent(c, s["id"])["busy"] for s in a["seats"]), "busy before bye")
        stranger.hello()
        r = stranger.bye([aid])
        check(r["type"] == "ack", f"stranger's bye {r}")
        stranger.greeted = False
        check(all(agent(c, s["id"])["busy"] for s in a["seats"]), "§3.11: another worker's bye freed it")
        check(owner.heartbeat(aid)["type"] == "ack", "owner's lease survives a stranger's bye")
        same.hello()
        r = same.bye([aid])
        check(r["type"] == "ack" and r.get("assignment_id", 0) == 0, f"§3.11 bye answer: {r}")
        same.greeted = False
        check(not any(agent(c, s["id"])["busy"] for s in a["seats"]), "§3.11: returned agents still busy")
        expect_error(owner.heartbeat(aid), "expired", aid, "§3.5 heartbeat after bye")
        expect_error(owner.call(result_for(a)), "expired", aid, "§3.11 result after bye")
        # Parked request and listing.
        check(ctl(c, "pause")["ok"], "pause")
        owner.send({"v": V, "type": "request"})
        wait_for(lambda: any(w["worker_id"] == "conf-owner" and w["waiting"] for w in workers(c)), "parking")
        r = owner.bye()
        check(r["type"] == "ack", f"bye {r}")
        owner.greeted = False
        check(not any(w["worker_id"] == "conf-owner" for w in workers(c)), "§3.11: peer still listed")
        check(ctl(c, "resume")["ok"], "resume")
        check(owner.quiet(500), "§3.11: an assign arrived for a withdrawn request")
        check(status(c)["assignments_in_flight"] == 0, "a withdrawn request got an assignment")
    finally:
        ctl(c, "resume")
        for p in (owner, same, stranger):
            p.close()


def test_holding_two_and_over_limit():
    """§4 pipelining: a worker may hold welcome.max_held (2) assignments;
    pbtd gives no agent to two of them, and forms the second only while
    it leaves a match's worth of agents idle (§3.3); a request beyond the limit is
    refused with error{over_limit} (id 0) and the worker keeps what it
    holds (both leases renew, both results apply); the duty cycle pbtd
    shows is the worker's own busy_ms/uptime_ms (§3.5)."""
    c = cluster("A")
    p = Peer(c.wep)
    try:
        check(p.hello().get("max_held") == 2, "welcome.max_held")
        a, b = p.request(), p.request()           # 6 idle, then 4: both formed
        check(sum(not x["busy"] for x in status(c)["agents"]) == 2, "two agents stay idle")
        seats_a = {s["id"] for s in a["seats"]}
        seats_b = {s["id"] for s in b["seats"]}
        check(not seats_a & seats_b, f"§4: one agent in two assignments: {seats_a} {seats_b}")
        expect_error(p.call({"v": V, "type": "request"}), "over_limit", 0, "§4 a third request")
        me = [w for w in workers(c) if w["worker_id"] == p.worker_id]
        check(me and me[0]["held"] == 2 and not me[0]["waiting"], f"the refused request was parked: {me}")
        for x in (a, b):
            r = p.heartbeat(x["assignment_id"], 0) if x is a else p.call(
                {"v": V, "type": "heartbeat", "assignment_id": x["assignment_id"], "frames_done": 0,
                 "busy_ms": 300, "uptime_ms": 1000})
            check(r["type"] == "ack" and r["assignment_id"] == x["assignment_id"], f"kept {x['assignment_id']}: {r}")
        duty = [w for w in workers(c) if w["worker_id"] == p.worker_id][0]["duty_cycle"]
        check(abs(duty - 0.3) < 1e-9, f"duty cycle from busy 300 / uptime 1000: {duty}")
        r = p.call({"v": V, "type": "heartbeat", "assignment_id": b["assignment_id"], "frames_done": 0,
                    "busy_ms": 900, "uptime_ms": 2000})
        duty = [w for w in workers(c) if w["worker_id"] == p.worker_id][0]["duty_cycle"]
        check(abs(duty - 0.6) < 1e-9, f"duty cycle over the window (900-300)/(2000-1000): {duty}")
        check(p.call(result_for(a))["applied"] is True, "result a")
        c3 = p.request()                              # one fewer held: asking is fine again
        # Holding two, with only two agents idle: another worker that holds
        # one is not given its second until a match's worth more are free.
        q = Peer(c.wep)
        q.hello()
        check(p.call(result_for(c3))["applied"] is True, "result c3")
        d = q.request()                               # q holds none: served first (4 idle)
        q.send({"v": V, "type": "request"})
        wait_for(lambda: any(w["worker_id"] == q.worker_id and w["waiting"] for w in workers(c)), "parking")
        check(q.quiet(300), "§3.3: a second assignment that leaves fewer than a match idle")
        check(p.call(result_for(b))["applied"] is True, "result b")
        e = q.recv()                                  # b's agents freed: 4 idle again
        check(e["type"] == "assign", f"the parked second assignment after b: {e}")
        for x in (d, e):
            check(q.call(result_for(x))["applied"] is True, f"result {x['assignment_id']}")
        q.close()
    finally:
        p.close()


# ---------------------------------------------------------------------------
# Leases (cluster B: lease_ms 1000)

def test_expiry_rows():
    """PLAYING + error{expired} (heartbeat after the lease lapsed),
    OWED + error{expired} (result after it), the agents released;
    KNOWN silent for 3 × lease_ms → forgotten (UNKNOWN again)."""
    c = cluster("B")
    p, silent = Peer(c.wep), Peer(c.wep)
    try:
        silent.hello()
        p.hello()
        a = p.request()
        aid = a["assignment_id"]
        wait_for(lambda: not any(agent(c, s["id"])["busy"] for s in a["seats"]), "the lease lapsing")
        expect_error(p.heartbeat(aid), "expired", aid, "§3.5 heartbeat after the lease")
        expect_error(p.call(result_for(a)), "expired", aid, "§3.6 result after the lease")
        wait_for(lambda: not any(w["worker_id"] == silent.worker_id for w in workers(c)),
                 "the silent peer being forgotten")
        expect_error(silent.call({"v": V, "type": "request"}), "bad_state", 0, "forgotten peer is UNKNOWN")
        silent.greeted = False
    finally:
        p.close()
        silent.close()


# ---------------------------------------------------------------------------
# Evaluation assignments and the control session (cluster C)

def test_untrained_seats_and_control():
    """§3.6: seats with train:false return no state (one is bad_field,
    naming the assignment) and an evaluation result with n_episodes 0 is
    accepted. Control session: ctl → ctl_reply; an admin command without
    the token → ctl_reply{ok:false} (not `denied`); a frame that does not
    decode → error; a message other than ctl → error{bad_state}."""
    c = cluster("C")
    p = Peer(c.wep)
    try:
        p.hello()
        a = p.request()
        aid = a["assignment_id"]
        check(all(s["train"] is False for s in a["seats"]), f"eval_rate=1 gives untrained seats: {a['seats']}")
        n = n_params(a["model"])
        r = p.call(result_for(a, mutate=lambda r: r["seats"][1].update(state=state(n))))
        expect_error(r, "bad_field", aid, "§3.6 a state on an untrained seat")
        versions = {s["id"]: agent(c, s["id"])["version"] for s in a["seats"]}
        r = p.call(result_for(a, n_episodes=0))
        check(r["type"] == "ack" and r["applied"] is True, f"evaluation with no episode: {r}")
        check({s["id"]: agent(c, s["id"])["version"] for s in a["seats"]} == versions,
              "an evaluation changed versions")
    finally:
        p.close()
    r = ctl(c, "pause")
    check(r["type"] == "ctl_reply" and r["ok"] is False and r.get("error"), f"§3.10 admin without token: {r}")
    r = ctl(c, "pause", token="wrong-token-0123456789")
    check(r["type"] == "ctl_reply" and r["ok"] is False, f"admin with a wrong token: {r}")
    r = ctl(c, "pause", token=TOKEN)
    check(r["type"] == "ctl_reply" and r["ok"] is True, f"admin with the token: {r}")
    check(ctl(c, "resume", token=TOKEN)["ok"], "resume")
    r = ctl(c, "no_such_command")
    check(r["type"] == "ctl_reply" and r["ok"] is False and "no_such_command" in r.get("error", ""), f"{r}")
    s = CTX.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(c.cep)
    try:
        for frame, code in ((b"\xc1", "malformed"), (msgpack.packb({"v": 3, "type": "ctl", "cmd": "status"}), "bad_version"),
                            (msgpack.packb({"v": V, "type": "ctl"}), "bad_field"),
                            (msgpack.packb({"v": V, "type": "request"}), "bad_state")):
            s.send(frame)
            check(s.poll(15000), "no reply on the control endpoint")
            r = msgpack.unpackb(s.recv(), raw=False)
            check(r.get("type") == "error" and r.get("code") == code, f"control endpoint, {frame!r}: {r}")
    finally:
        s.close(0)


# ---------------------------------------------------------------------------

UNPROVOKABLE = """
Rows and codes of PROTOCOL.md this test cannot provoke from outside:
- §5 too_large: over ZeroMQ an oversize frame drops the connection
  (test_oversize_frame_drops_connection checks that instead).
- §5 internal, and the OWED + error{internal} row: needs a database
  that fails to commit or renew (a failing disk); no test provokes it.
- §5 paused, denied, and the OWED + error{paused} row: pbtd never
  sends them (PROTOCOL.md §5 says so); admin refusals are ctl_reply{ok:false}.
- Worker-side rows driven by the worker's own timers or its own decoder
  (EXPECT_WELCOME / OWED "no reply within T", READY "a request out for 2 s",
  "a message that does not decode", stale replies): they concern what a
  client does, not what pbtd sends; pbt-worker's behaviour for them is
  exercised by test_failures.py (pbtd killed and restarted).
"""


def test_unprovokable():
    """What can be checked about the rows above: every error any test
    received had a code of §5's list (Peer.recv checks it), and a paused
    population still takes heartbeats and results, so `paused` is never
    needed."""
    c = cluster("A")
    p = Peer(c.wep)
    try:
        p.hello()
        a = p.request()
        check(ctl(c, "pause")["ok"], "pause")
        check(p.heartbeat(a["assignment_id"])["type"] == "ack", "paused: heartbeat refused")
        check(p.call(result_for(a))["applied"] is True, "paused: result refused")
    finally:
        ctl(c, "resume")
        p.close()


def main():
    print(UNPROVOKABLE.strip(), flush=True)
    try:
        harness.run_tests([test_session_happy_path, test_request_parking_hello_and_pause,
                           test_bad_state_rows, test_result_refusals, test_not_yours_and_bounds,
                           test_zero_episodes_accepted,
                           test_decode_errors, test_oversize_frame_drops_connection,
                           test_bye_returns_work, test_holding_two_and_over_limit, test_expiry_rows, test_untrained_seats_and_control,
                           test_unprovokable])
    finally:
        for c in CLUSTERS.values():
            c.stop()


if __name__ == "__main__":
    sys.exit(main())
