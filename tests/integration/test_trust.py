#!/usr/bin/python3
"""Trust no peer, with real processes: a hostile worker written in Python
(Debian's python3-zmq and python3-msgpack, independent of proto/), a fake
pbtd for the real worker, damaged state stores, a second pbtd, slow and
oversize frames, log injection, key files."""
import json
import os
import re
import signal
import socket
import sqlite3
import stat
import struct
import subprocess
import time

import msgpack
import zmq
import zmq.auth

import harness
from harness import FAST_CONFIG, PBTCTL, PBTD, WORKER, Cluster, check, run_tests

# FAST_CONFIG's budget: 8 envs x 20 steps x 1 iteration = 160 frames per
# seat; rps episodes last 10 steps, so at most 8 x 2 = 16 episodes.
BUDGET_FRAMES = 8 * 20 * 1
BUDGET_EPISODES = 8 * (20 // 10)

LEASE_CONFIG = FAST_CONFIG + """
[daemon]
lease_ms = {lease_ms}
heartbeat_ms = 500
housekeeping_ms = 200
"""

PORT = 47321            # tcp ports of this file: 47321..47329


class Peer:
    """A worker that says only what the test tells it to."""

    def __init__(self, endpoint, worker_id, curve=None):
        self.worker_id = worker_id
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        if curve:
            server_public, public, secret = curve
            self.sock.curve_serverkey = server_public
            self.sock.curve_publickey = public
            self.sock.curve_secretkey = secret
        self.sock.connect(endpoint)

    def send(self, type_, **fields):
        self.sock.send(msgpack.packb(dict(v=1, type=type_, **fields), use_bin_type=True))

    def recv(self, timeout=5000):
        if not self.sock.poll(timeout):
            return None
        return msgpack.unpackb(self.sock.recv(), raw=False)

    def expect(self, type_, timeout=5000):
        """The next message of type_, skipping heartbeat acks and the like."""
        deadline = time.time() + timeout / 1000
        while time.time() < deadline:
            m = self.recv(int(max(1, (deadline - time.time()) * 1000)))
            if m is not None and m["type"] == type_:
                return m
            if m is not None and m["type"] == "error" and type_ != "error":
                raise harness.Failure(f"{self.worker_id} expected {type_}, got error {m}")
        raise harness.Failure(f"{self.worker_id}: no {type_} within {timeout} ms")

    def hello(self, **extra):
        extra.setdefault("envs", harness.ENVS)
        self.send("hello", worker_id=self.worker_id, **extra)
        return self.expect("welcome")

    def get_assignment(self):
        self.send("request")
        return self.expect("assign", timeout=20000)

    def close(self):
        self.sock.close(0)


def n_params(model):
    """PROTOCOL.md §3.4.1: actor and critic MLPs, weights plus biases."""
    total = 0
    for outputs in (model["n_actions"], 1):
        inp = model["obs_dim"]
        for h in model["hidden"]:
            total += inp * h + h
            inp = h
        total += inp * outputs + outputs
    return total


def result_for(assign, frames=None, n_episodes=0, **override):
    """A result echoing the assignment's states back (so it is valid)."""
    seats = []
    for s in assign["seats"]:
        seat = {"id": s["id"], "version": s["version"],
                "frames": BUDGET_FRAMES if frames is None else frames}
        if s["train"] and "state" in s:
            seat["state"] = s["state"]
        elif s["train"]:
            # A never-trained agent comes as init_seed (PROTOCOL.md §8): any
            # finite weights of the model's size are a valid state.
            n = n_params(assign["model"])
            z = struct.pack(f"<{n}f", *([0.0] * n))
            seat["state"] = dict(n_params=n, params=z, adam_m=z, adam_v=z, adam_t=1)
        seats.append(seat)
    scores = struct.pack(f"<{n_episodes * len(seats)}f",
                         *([1.0, -1.0] * (n_episodes * len(seats) // 2)))
    msg = dict(assignment_id=assign["assignment_id"], samples_per_s=1.0, seconds=0.5,
               seats=seats, n_episodes=n_episodes, scores=scores)
    msg.update(override)
    return msg


def agent_rows(c, ids):
    return {i: c.sql("SELECT version, frames, matches FROM agents WHERE id = ?", (i,))[0] for i in ids}


def log_text(c):
    return "".join(open(os.path.join(c.dir, n), errors="replace").read()
                   for n in sorted(os.listdir(c.dir)) if n.endswith(".log"))


def pbtd_log(c):
    return "".join(open(os.path.join(c.dir, n), errors="replace").read()
                   for n in sorted(os.listdir(c.dir)) if n.startswith("pbtd-"))


def run_pbtd(c, *extra, timeout=30):
    """pbtd in the foreground, for starts that must fail: (exit code, log)."""
    r = subprocess.run([PBTD, "--config", c.cfg, "--db", c.db, "--worker-endpoint", c.wep,
                        "--control-endpoint", c.cep] + list(extra),
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stderr


# ---------------------------------------------------------------------------
# Work bound to its peer


def test_work_bound_to_its_worker():
    """Another peer's result and heartbeats for an assignment get not_yours
    and change nothing; the owner's still count; with the owner gone, a
    foreign heartbeat keeps no lease alive."""
    c = Cluster(LEASE_CONFIG.format(size=4, t_select=0.3, lease_ms=1500), name="bound")
    real = hijacker = None
    try:
        c.start_pbtd()
        real, hijacker = Peer(c.wep, "real-worker"), Peer(c.wep, "hijacker")
        real.hello()
        hijacker.hello()
        a = real.get_assignment()
        aid = a["assignment_id"]
        ids = [s["id"] for s in a["seats"]]
        before = agent_rows(c, ids)
        hijacker.send("heartbeat", assignment_id=aid, frames_done=1)
        e = hijacker.expect("error")
        check(e["code"] == "not_yours" and e["assignment_id"] == aid, f"foreign heartbeat: {e}")
        hijacker.send("result", **result_for(a))
        e = hijacker.expect("error")
        check(e["code"] == "not_yours", f"foreign result: {e}")
        check(agent_rows(c, ids) == before, "a foreign result changed the agents")
        state = c.sql("SELECT state, worker FROM assignments WHERE id = ?", (aid,))[0]
        check(state == ("leased", "real-worker"), f"assignment after the foreign result: {state}")
        # The owner's heartbeat and result still count.
        real.send("heartbeat", assignment_id=aid, frames_done=10)
        ack = real.expect("ack")
        check(ack["assignment_id"] == aid and not ack.get("applied"), f"owner's heartbeat: {ack}")
        real.send("result", **result_for(a, n_episodes=2))
        ack = real.expect("ack")
        check(ack["assignment_id"] == aid and ack["applied"] is True, f"owner's result: {ack}")
        after = agent_rows(c, ids)
        for i in ids:
            check(after[i][0] == before[i][0] + 1 and after[i][1] == before[i][1] + BUDGET_FRAMES,
                  f"agt_{i}: {before[i]} -> {after[i]}")
        # Zombie lease: the owner goes silent, the hijacker heartbeats it.
        a2 = real.get_assignment()
        real.close()
        real = None
        refused = 0
        deadline = time.time() + 4
        while time.time() < deadline:
            hijacker.send("heartbeat", assignment_id=a2["assignment_id"], frames_done=1)
            e = hijacker.expect("error")
            check(e["code"] in ("not_yours", "expired"), f"foreign heartbeat: {e}")
            refused += e["code"] == "not_yours"
            if e["code"] == "expired":
                break
            time.sleep(0.2)
        check(refused >= 3, f"only {refused} foreign heartbeats were refused")
        state = c.sql("SELECT state FROM assignments WHERE id = ?", (a2["assignment_id"],))[0][0]
        check(state == "expired", f"the abandoned lease is {state}, foreign heartbeats kept it")
        check(not any(x["busy"] for x in c.status()["agents"]), "agents still busy")
    finally:
        for p in (real, hijacker):
            if p:
                p.close()
        c.stop()


def test_binding_survives_restart_plaintext():
    """pbtd restarts with a lease in flight: the worker that re-hellos
    with the same worker_id (from a new connection) may deliver it; a peer
    with another worker_id may not."""
    c = Cluster(LEASE_CONFIG.format(size=4, t_select=0.3, lease_ms=20000), name="rebind")
    real = other = None
    try:
        c.start_pbtd()
        real = Peer(c.wep, "node-a")
        real.hello()
        a = real.get_assignment()
        # An assign goes out before its batch commits (PROTOCOL.md §3.4):
        # the lease survives a SIGKILL once its row is committed.
        wait_committed(c, a["assignment_id"])
        kill9_and_restart(c, real)
        other = Peer(c.wep, "node-b")
        other.hello()
        other.send("result", **result_for(a))
        check(other.expect("error")["code"] == "not_yours", "a stranger delivered the lease after restart")
        real = Peer(c.wep, "node-a")
        real.hello()
        real.send("result", **result_for(a))
        ack = real.expect("ack")
        check(ack["applied"] is True, f"the owner's result after restart: {ack}")
        check("lease_rebound" in pbtd_log(c), "pbtd did not log the rebinding")
    finally:
        for p in (real, other):
            if p:
                p.close()
        c.stop()


def committed(c, assignment_id):
    """Whether another connection sees the assignment's row."""
    con = sqlite3.connect(f"file:{c.db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT 1 FROM assignments WHERE id = ?", (assignment_id,)).fetchone() is not None
    finally:
        con.close()


def wait_committed(c, assignment_id, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if committed(c, assignment_id):
            return
        time.sleep(0.05)
    raise harness.Failure(f"assignment {assignment_id} was not committed within {timeout} s")


def kill9_and_restart(c, *peers):
    """SIGKILL pbtd, close the peers' sockets, start pbtd again."""
    c.pbtd.send_signal(signal.SIGKILL)
    c.pbtd.wait()
    for p in peers:
        p.close()
    c.start_pbtd()


def test_assign_lost_in_a_crash_is_never_reissued():
    """pbtd sends an assign before its batch is durable (PROTOCOL.md §3.4).
    Killed before that batch commits, pbtd restarts without it: the result
    that freed the agents was not acknowledged, so it is taken again; the
    lost assignment is unknown_assignment; and its id is never issued
    again."""
    c = Cluster(LEASE_CONFIG.format(size=4, t_select=0.3, lease_ms=20000), name="lostassign")
    peer = None
    try:
        c.start_pbtd()
        peer = Peer(c.wep, "node-a")
        peer.send("hello", worker_id="node-a", envs=harness.ENVS)
        peer.expect("welcome", timeout=20000)   # behind a delayed housekeeping batch
        a1 = peer.get_assignment()
        wait_committed(c, a1["assignment_id"])
        # Restart with a slow commit thread (a test hook): each batch that writes states
        # (a1's result, and a2 with it) waits 6 s for its store sync; one
        # of housekeeping's may be waiting already, hence the long recv.
        c.pbtd.send_signal(signal.SIGTERM)
        c.pbtd.wait()
        peer.close()
        os.environ["PBTD_TEST_STORE_DELAY_MS"] = "6000"
        try:
            c.start_pbtd()
        finally:
            del os.environ["PBTD_TEST_STORE_DELAY_MS"]
        peer = Peer(c.wep, "node-a")
        peer.send("hello", worker_id="node-a", envs=harness.ENVS)
        peer.expect("welcome", timeout=20000)   # behind a delayed housekeeping batch
        # Holding a1, this request waits by rule (4 agents, 2 busy): a2 is
        # formed in a1's result's batch, when that frees the agents. (One
        # socket: pbtd reads the two in the order sent.)
        peer.send("request")
        peer.send("result", **result_for(a1))
        m = peer.recv(timeout=15000)
        check(m is not None and m["type"] == "assign",
              f"no assign before the batch's (delayed) commit: {m}")
        a2 = m
        check(not committed(c, a2["assignment_id"]), "a2's batch was already committed: the test proves nothing")
        kill9_and_restart(c, peer)
        peer = Peer(c.wep, "node-a")
        peer.hello()
        peer.send("heartbeat", assignment_id=a2["assignment_id"], frames_done=1)
        e = peer.expect("error")
        check(e["code"] == "unknown_assignment" and e.get("assignment_id") == a2["assignment_id"],
              f"the lost assignment after restart: {e}")
        peer.send("result", **result_for(a1))
        ack = peer.expect("ack")
        check(ack["applied"] is True, f"a1's result, never acknowledged, after restart: {ack}")
        a3 = peer.get_assignment()
        check(a3["assignment_id"] > a2["assignment_id"],
              f"id {a3['assignment_id']} issued after a crash that lost {a2['assignment_id']}")
    finally:
        if peer:
            peer.close()
        c.stop()


def keygen(path, *extra):
    return subprocess.run([PBTCTL, "keygen", path] + list(extra), capture_output=True, text=True)


def test_binding_by_curve_key():
    """Over CURVE a lease belongs to the key it was given to: a second
    allowed key saying the same worker_id gets not_yours, before and after
    a pbtd restart (the key is in the database), and the owner's key gets
    its result in after the restart."""
    c = Cluster(LEASE_CONFIG.format(size=4, t_select=0.3, lease_ms=20000), name="curvebind")
    peers = []
    try:
        keys = os.path.join(c.dir, "keys")
        os.mkdir(keys)
        for name in ("server", "owner", "thief"):
            r = keygen(os.path.join(c.dir, f"{name}.cert"))
            check(r.returncode == 0, f"keygen: {r.stderr}")
        for name in ("owner", "thief"):
            with open(os.path.join(c.dir, f"{name}.cert")) as src, open(os.path.join(keys, f"{name}.cert"), "w") as dst:
                dst.write(src.read())
        server_public, _ = zmq.auth.load_certificate(os.path.join(c.dir, "server.cert"))
        owner = zmq.auth.load_certificate(os.path.join(c.dir, "owner.cert_secret"))
        thief = zmq.auth.load_certificate(os.path.join(c.dir, "thief.cert_secret"))
        c.wep = f"tcp://127.0.0.1:{PORT}"
        c.extra_args = ["--cert", os.path.join(c.dir, "server.cert"), "--allowed-keys", keys]
        c.start_pbtd()

        def peer(key):
            p = Peer(c.wep, "node-a", curve=(server_public,) + key)
            peers.append(p)
            p.hello()
            return p
        p_owner = peer(owner)
        a = p_owner.get_assignment()
        wait_committed(c, a["assignment_id"])
        stored = c.sql("SELECT worker_key FROM assignments WHERE id = ?", (a["assignment_id"],))[0][0]
        check(stored == owner[0].decode(), f"assignment bound to key {stored!r}")
        p_thief = peer(thief)
        p_thief.send("heartbeat", assignment_id=a["assignment_id"], frames_done=1)
        check(p_thief.expect("error")["code"] == "not_yours", "another key heartbeat the lease")
        c.pbtd.send_signal(signal.SIGKILL)
        c.pbtd.wait()
        c.start_pbtd()
        p_thief = peer(thief)
        p_thief.send("result", **result_for(a))
        check(p_thief.expect("error")["code"] == "not_yours", "another key delivered after restart")
        p_owner = peer(owner)
        p_owner.send("result", **result_for(a))
        check(p_owner.expect("ack")["applied"] is True, "the owner's key could not deliver after restart")
    finally:
        for p in peers:
            p.close()
        c.stop()


# ---------------------------------------------------------------------------
# The worker's ack check, against a fake pbtd


def test_worker_waits_for_applied_ack():
    """A real pbt-worker takes only ack{applied:true} as its result's ack:
    after ack{applied:false} (what a heartbeat gets) it sends the result
    again."""
    c = Cluster(FAST_CONFIG.format(size=2, t_select=0.3), name="fakepbtd")
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.linger = 0
    worker = None
    try:
        sock.bind(c.wep)
        worker = c.start_worker()

        def recv(timeout=10000):
            check(sock.poll(timeout), "the worker went quiet")
            rid, body = sock.recv_multipart()
            return rid, msgpack.unpackb(body, raw=False)

        def send(rid, type_, **fields):
            sock.send_multipart([rid, msgpack.packb(dict(v=1, type=type_, **fields), use_bin_type=True)])
        rid, m = recv()
        check(m["type"] == "hello", f"first message {m}")
        send(rid, "welcome", heartbeat_ms=200, lease_ms=60000)
        while m["type"] != "request":
            rid, m = recv()
        n = (4 * 3 + 4) + (3 * 4 + 3) + (4 * 3 + 4) + (1 * 4 + 1)
        zeros = bytes(4 * n)
        state = dict(n_params=n, params=zeros, adam_m=zeros, adam_v=zeros, adam_t=0)
        seats = [dict(id=i, version=1, slot=i, train=True, state=state) for i in (0, 1)]
        send(rid, "assign", assignment_id=41, seed=7, lease_ms=60000, env="rps", env_options={},
             ppo=dict(n_envs=2, n_steps=10, iterations=1, epochs=1, minibatches=1),
             model=dict(obs_dim=3, n_actions=3, hidden=[4], activation="tanh"), seats=seats)
        while m["type"] != "result":
            rid, m = recv()
        check(m["assignment_id"] == 41, f"result for {m['assignment_id']}")
        send(rid, "ack", assignment_id=41, applied=False)
        rid, m = recv()
        while m["type"] == "heartbeat":
            rid, m = recv()
        check(m["type"] == "result" and m["assignment_id"] == 41,
              f"after ack{{applied:false}} the worker sent {m['type']}, not its result again")
        send(rid, "ack", assignment_id=41, applied=True)
        rid, m = recv()
        while m["type"] == "heartbeat":
            rid, m = recv()
        check(m["type"] == "request", f"after ack{{applied:true}} the worker sent {m['type']}")
        log = open(worker.log_path).read()
        check(log.count("event=result_acked assignment=41") == 1, "result_acked not logged exactly once")
    finally:
        sock.close(0)
        c.stop()


# ---------------------------------------------------------------------------
# Counters bounded by the assignment


def test_result_counters_bounded():
    """frames over the budget (2^64 - 1000, 2^63), episodes over what the
    budget can produce (2^20) and heartbeat progress over the budget get
    bad_field and change nothing; pbtd keeps answering status meanwhile;
    a result at the bounds applies."""
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3), name="bounds")
    p = None
    try:
        c.start_pbtd()
        p = Peer(c.wep, "greedy")
        p.hello()
        a = p.get_assignment()
        ids = [s["id"] for s in a["seats"]]
        before = agent_rows(c, ids)
        for frames in (2**64 - 1000, 2**63, BUDGET_FRAMES + 1):
            p.send("result", **result_for(a, frames=frames))
            e = p.expect("error")
            check(e["code"] == "bad_field" and "frames" in e["message"], f"frames={frames}: {e}")
        p.send("result", **result_for(a, n_episodes=1 << 20))
        e = p.expect("error", timeout=20000)
        check(e["code"] == "bad_field" and "n_episodes" in e["message"], f"2^20 episodes: {e}")
        check(c.ctl("status", "--json", timeout=3000).returncode == 0, "status failed after the big claim")
        p.send("result", **result_for(a, n_episodes=BUDGET_EPISODES + 1))
        check(p.expect("error")["code"] == "bad_field", "one episode over the bound was taken")
        p.send("heartbeat", assignment_id=a["assignment_id"], frames_done=2**64 - 1)
        check(p.expect("error")["code"] == "bad_field", "heartbeat progress over the budget was taken")
        check(agent_rows(c, ids) == before, "a refused result changed the agents")
        p.send("result", **result_for(a, n_episodes=BUDGET_EPISODES))
        check(p.expect("ack")["applied"] is True, "a result at the bounds was refused")
        after = agent_rows(c, ids)
        for i in ids:
            check(after[i][1] == before[i][1] + BUDGET_FRAMES, f"agt_{i} frames {before[i][1]} -> {after[i][1]}")
            check(after[i][2] == before[i][2] + BUDGET_EPISODES, f"agt_{i} matches {before[i][2]} -> {after[i][2]}")
    finally:
        if p:
            p.close()
        c.stop()


# ---------------------------------------------------------------------------
# The state store


def newest_record(c, agent):
    seg, off, length, version = c.sql(
        "SELECT seg, off, len, version FROM snapshots s WHERE agent_id = ? AND version = "
        "(SELECT version FROM agents WHERE id = ?)", (agent, agent))[0]
    return os.path.join(c.db + "-states", "seg-%08x.pbts" % seg), off, length, version


def flip_byte(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0xFF]))


def trained_cluster(name, extra=""):
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3) + extra, name=name)
    c.start_pbtd()
    c.start_worker()
    c.wait_results(6)
    c.stop(keep=True)
    c.workers = []
    return c


def test_damaged_store_at_start():
    """A flipped byte in an agent's current record: pbtd refuses to start,
    naming the record; with --repair that agent falls back to its newest
    intact snapshot (logged, counted in status) and training goes on."""
    c = trained_cluster("storestart")
    try:
        v_before = dict(c.sql("SELECT id, version FROM agents"))
        path, off, length, version = newest_record(c, 0)
        check(version >= 2, f"agt_0 is still at version {version}")
        flip_byte(path, off + length - 5)
        rc, log = run_pbtd(c)
        check(rc != 0, "pbtd started on a damaged store")
        check("event=store_mismatch" in log and "first=agt_0@" in log and "--repair" in log,
              f"no clear refusal: {log[-800:]}")
        c.extra_args = ["--repair"]
        c.start_pbtd()
        st = c.status()
        check(st["state_fallbacks"] >= 1, f"state_fallbacks {st['state_fallbacks']}")
        check(re.search(r"event=state_fallback agent=agt_0 ", pbtd_log(c)), "no state_fallback line for agt_0")
        v_after = dict(c.sql("SELECT id, version FROM agents"))
        check(v_after[0] == v_before[0] + 1, f"agt_0 version {v_before[0]} -> {v_after[0]}")
        c.start_worker()
        c.wait_results(st["results"] + 4, timeout=120)
        check(harness.check_state_store(c.db) > 0, "no records")
    finally:
        c.stop()


def test_damaged_store_at_run_time():
    """A record damaged under a running pbtd (states read from the store,
    state_cache_mb = 0): the agent falls back and every agent keeps
    training; nothing stalls."""
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3) + "\n[daemon]\nstate_cache_mb = 0\n", name="storerun")
    try:
        c.start_pbtd()
        c.start_worker()
        c.start_worker()
        c.wait_results(6)
        # Paused and idle, so the damaged records are the ones read next.
        c.ctl("pause")
        deadline = time.time() + 30
        while time.time() < deadline and any(a["busy"] for a in c.status()["agents"]):
            time.sleep(0.1)
        for agent in range(4):
            path, off, length, _ = newest_record(c, agent)
            flip_byte(path, off + 60)
        st = c.status()
        c.ctl("resume")
        st = c.wait_results(st["results"] + 10, timeout=120)
        check(st["state_fallbacks"] >= 1, f"state_fallbacks {st['state_fallbacks']}")
        check(st["agents_unreadable"] == 0, f"{st['agents_unreadable']} agents left out")
        check("event=state_fallback" in pbtd_log(c), "no state_fallback logged")
        for w in c.workers:
            check(w.poll() is None, "a worker died")
    finally:
        c.stop()


def test_truncated_or_missing_store_refused():
    c = trained_cluster("storegone")
    try:
        segs = sorted(f for f in os.listdir(c.db + "-states") if f.startswith("seg-"))
        biggest = max(segs, key=lambda f: os.path.getsize(os.path.join(c.db + "-states", f)))
        with open(os.path.join(c.db + "-states", biggest), "r+b") as f:
            f.truncate(os.path.getsize(f.name) // 2)
        rc, log = run_pbtd(c)
        check(rc != 0 and "event=store_mismatch" in log, f"truncated segment: rc={rc} {log[-500:]}")
        os.rename(c.db + "-states", c.db + "-states.gone")
        rc, log = run_pbtd(c)
        check(rc != 0 and "event=store_mismatch" in log, f"missing store: rc={rc} {log[-500:]}")
        rc, log = run_pbtd(c, "--repair")
        check(rc != 0 and "event=repair_failed" in log and "restore" in log,
              f"--repair on a missing store: rc={rc} {log[-500:]}")
    finally:
        c.stop()


def test_empty_database_beside_store_refused():
    c = trained_cluster("emptydb")
    try:
        states = c.db + "-states"
        before = sorted((f, os.path.getsize(os.path.join(states, f))) for f in os.listdir(states))
        for suffix in ("-wal", "-shm"):
            if os.path.exists(c.db + suffix):
                os.unlink(c.db + suffix)
        open(c.db, "w").close()
        rc, log = run_pbtd(c)
        check(rc != 0 and "event=db_empty_store_full" in log and "move" in log and "restore" in log,
              f"empty db: rc={rc} {log[-600:]}")
        check("population_created" not in log, "pbtd made a new population")
        os.unlink(c.db)
        rc, log = run_pbtd(c)
        check(rc != 0 and "event=db_empty_store_full" in log, f"missing db: rc={rc}")
        after = sorted((f, os.path.getsize(os.path.join(states, f))) for f in os.listdir(states)
                       if os.path.getsize(os.path.join(states, f)) > 0)
        check(after == [x for x in before if x[1] > 0], f"the store changed: {before} -> {after}")
    finally:
        c.stop()


def test_second_pbtd_refused():
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3), name="twice")
    try:
        c.start_pbtd()
        c.start_worker()
        c.wait_results(2)
        r = subprocess.run([PBTD, "--config", c.cfg, "--db", c.db,
                            "--worker-endpoint", f"ipc://{c.dir}/w2.sock",
                            "--control-endpoint", f"ipc://{c.dir}/c2.sock"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode != 0, "a second pbtd started on the same database")
        check("event=db_locked" in r.stderr and f"holder_pid={c.pbtd.pid}" in r.stderr,
              f"no clear message: {r.stderr[-500:]}")
        st = c.status()
        c.wait_results(st["results"] + 2)
        check(c.sql("PRAGMA integrity_check")[0][0] == "ok", "integrity_check")
    finally:
        c.stop()


# ---------------------------------------------------------------------------
# Frames bounded in time and size


def zmtp_null_dealer(path):
    """A raw ZMTP 3.1 NULL-mechanism DEALER over a unix socket: enough to
    send a frame header and then only part of the frame."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 1]) + b"NULL".ljust(20, b"\x00") + b"\x00" * 32)
    body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
    s.sendall(b"\x04" + bytes([len(body)]) + body)
    return s


def test_slow_partial_frame_dropped():
    """A peer that announces a 32 MiB frame and sends 1 MiB of it is
    disconnected after frame_timeout_ms; a real worker on the same
    endpoint keeps training."""
    cfg = FAST_CONFIG.format(size=4, t_select=0.3) + "\n[daemon]\nframe_timeout_ms = 1000\n"
    c = Cluster(cfg, name="slow")
    s = None
    try:
        c.start_pbtd()
        c.start_worker()
        s = zmtp_null_dealer(c.wep[len("ipc://"):])
        s.sendall(b"\x02" + struct.pack(">Q", 32 << 20) + b"x" * (1 << 20))
        s.settimeout(0.5)
        closed = False
        deadline = time.time() + 20
        while time.time() < deadline and not closed:
            try:
                closed = s.recv(65536) == b""
            except socket.timeout:
                pass
            except OSError:
                closed = True
        check(closed, "the partial frame's connection stayed open")
        st = c.wait_results(3)
        c.wait_results(st["results"] + 3)
    finally:
        if s:
            s.close()
        c.stop()


def test_oversize_frame_dropped_without_reply():
    """As the README says: a frame of exactly 64 MiB is decoded and
    answered; one byte more and libzmq drops it with its connection, no
    reply; the peer's socket reconnects and is served."""
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3), name="oversize")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        c.start_pbtd()
        sock.connect(c.wep)
        sock.send(b"\x00" * (64 << 20))
        check(sock.poll(10000), "no reply to a 64 MiB frame")
        m = msgpack.unpackb(sock.recv(), raw=False)
        check(m["type"] == "error" and m["code"] == "malformed", f"64 MiB frame: {m}")
        sock.send(b"\x00" * ((64 << 20) + 1))
        check(not sock.poll(3000), "an oversize frame got a reply")
        check(c.pbtd.poll() is None, "pbtd died")
        sock.send(msgpack.packb(dict(v=1, type="hello", worker_id="after", envs=harness.ENVS), use_bin_type=True))
        check(sock.poll(10000), "no reply after the reconnect")
        check(msgpack.unpackb(sock.recv(), raw=False)["type"] == "welcome", "not welcomed")
    finally:
        sock.close(0)
        c.stop()


# ---------------------------------------------------------------------------
# Logs and identities


def logfmt(line):
    """Parse one logfmt line strictly; raise on anything malformed."""
    pairs, i = {}, 0
    while i < len(line):
        m = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=').match(line, i)
        check(m, f"no key at {i}: {line!r}")
        key, i = m.group(1), m.end()
        if i < len(line) and line[i] == '"':
            j, val = i + 1, []
            while line[j] != '"':
                if line[j] == "\\":
                    j += 1
                val.append(line[j])
                j += 1
            i = j + 1
            pairs[key] = "".join(val)
        else:
            j = line.find(" ", i)
            j = len(line) if j < 0 else j
            pairs[key] = line[i:j]
            i = j
        check(i == len(line) or line[i] == " ", f"junk after {key}: {line!r}")
        i += 1
    return pairs


def test_log_injection_and_identities():
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3), name="logs")
    p = None
    try:
        c.start_pbtd()
        p = Peer(c.wep, 'w" event=FORGED_LINE x="\\')
        p.hello(host='h"ost', software="s=1 2")
        for bad in ("a\nts=0 level=error comp=pbtd event=FORGED_LINE", "a\x1b[31m"):
            p.send("hello", worker_id=bad)
            e = p.expect("error")
            check(e["code"] == "bad_field" and "hello.worker_id: control character" in e["message"], f"{bad!r}: {e}")
        p.sock.send(msgpack.packb({"v": 1, "type": "hello", "worker_id": b"ab\xff"},
                                  use_bin_type=False))
        e = p.expect("error")
        check(e["code"] == "bad_field" and "invalid UTF-8" in e["message"], f"invalid UTF-8: {e}")
        p.send("hello", worker_id="x" * 256)
        check(p.expect("error")["code"] == "bad_field", "a 256-byte worker_id was taken")
        ctl = zmq.Context.instance().socket(zmq.DEALER)
        ctl.linger = 0
        ctl.connect(c.cep)
        ctl.send(msgpack.packb(dict(v=1, type="ctl", cmd="x\nts=0 level=error event=FORGED_LINE"), use_bin_type=True))
        check(ctl.poll(5000), "no ctl reply")
        ctl.close(0)
        c.ctl("status")
        lines = pbtd_log(c).splitlines()
        hello = [logfmt(x) for x in lines if "event=hello " in x]
        check(any(h.get("worker") == 'w" event=FORGED_LINE x="\\' and h.get("host") == 'h"ost'
                  and h.get("software") == "s=1 2" for h in hello), f"hello not logged as sent: {hello}")
        for x in lines:
            check(logfmt(x).get("event") != "FORGED_LINE", f"forged line: {x!r}")
    finally:
        if p:
            p.close()
        c.stop()


# ---------------------------------------------------------------------------
# Keys and files


def test_keygen_never_overwrites_or_follows_links():
    c = Cluster(FAST_CONFIG.format(size=2, t_select=0.3), name="keygen")
    try:
        cert = os.path.join(c.dir, "k.cert")
        old = os.umask(0)
        try:
            r = keygen(cert)
        finally:
            os.umask(old)
        check(r.returncode == 0, r.stderr)
        check(stat.S_IMODE(os.stat(cert + "_secret").st_mode) == 0o600, "secret not 0600 under umask 0")
        first = open(cert + "_secret").read()
        r = keygen(cert)
        check(r.returncode == 1 and "--force" in r.stderr, f"second keygen: {r.returncode} {r.stderr}")
        check(open(cert + "_secret").read() == first, "the key pair was replaced")
        # A symlink planted at FILE_secret is never followed.
        target = os.path.join(c.dir, "target")
        link = os.path.join(c.dir, "l.cert")
        os.symlink(target, link + "_secret")
        r = keygen(link)
        check(r.returncode == 1 and not os.path.exists(target), "keygen followed a symlink")
        r = keygen(link, "--force")
        check(r.returncode == 0, r.stderr)
        check(not os.path.exists(target) and not os.path.islink(link + "_secret"), "--force wrote through the link")
        check(stat.S_IMODE(os.stat(link + "_secret").st_mode) == 0o600, "secret not 0600")
        r = keygen(cert, "--force")
        check(r.returncode == 0 and open(cert + "_secret").read() != first, "--force did not replace")
        # CZMQ's wildcard is refused.
        c.wep = f"tcp://127.0.0.1:{PORT + 1}"
        rc, log = run_pbtd(c, "--cert", cert, "--allowed-keys", "*")
        check(rc != 0 and "event=allowed_keys_wildcard" in log, f"allowed_keys = *: rc={rc} {log[-400:]}")
    finally:
        c.stop()


def test_database_files_private():
    """pbt.db, its WAL and SHM, the lock and the state store are created
    readable by pbtd's user only, whatever the umask it was started with."""
    c = Cluster(FAST_CONFIG.format(size=2, t_select=0.3), name="modes")
    old = os.umask(0)
    try:
        c.start_pbtd()
    finally:
        os.umask(old)
    try:
        c.start_worker()
        c.wait_results(2)
        files = [c.db, c.db + "-wal", c.db + "-shm", c.db + ".lock"]
        files += [os.path.join(c.db + "-states", f) for f in os.listdir(c.db + "-states")]
        for f in files:
            mode = stat.S_IMODE(os.stat(f).st_mode)
            check(mode == 0o600, f"{f} has mode {oct(mode)}")
        mode = stat.S_IMODE(os.stat(c.db + "-states").st_mode)
        check(mode == 0o700, f"state directory mode {oct(mode)}")
    finally:
        c.stop()


# ---------------------------------------------------------------------------
# Disk full


def test_disk_full_then_space_back():
    """On a 4 MiB tmpfs the database and store fill up: nothing is
    acknowledged that is not on disk, status keeps answering, and once the
    mount grows training resumes by itself. Needs the right to mount
    (root); says so and passes without running otherwise."""
    # Leases far longer than the test: training must resume because the
    # in-flight work is still bound to its workers, not because it expired.
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3)
                + "\n[daemon]\nsegment_mb = 1\nlease_ms = 600000\n", name="full")
    mnt = os.path.join(c.dir, "mnt")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"SKIP test_disk_full_then_space_back: cannot mount a tmpfs here ({r.stderr.strip()})")
        c.stop()
        return
    try:
        c.db = os.path.join(mnt, "pbt.db")
        c.start_pbtd()
        c.start_worker()
        c.start_worker()
        deadline, last, still = time.time() + 120, -1, 0
        while time.time() < deadline and still < 6:
            n = c.status()["results"]
            still = still + 1 if n == last else 0
            last = n
            time.sleep(0.5)
        check(still >= 6, "results never stopped on a 4 MiB disk")
        check("No space left on device" in pbtd_log(c) or "disk is full" in pbtd_log(c),
              "pbtd never met a full disk")
        subprocess.run(["mount", "-o", "remount,size=256m", mnt], check=True)
        c.wait_results(last + 5, timeout=120)
        log = pbtd_log(c)
        check("not_yours" not in log and "lease_expired" not in log,
              "after the lost batches a worker's own work was refused or expired: "
              + " | ".join(l for l in log.splitlines() if "not_yours" in l or "lease_expired" in l)[:600])
        c.stop(keep=True)
        check(c.sql("PRAGMA integrity_check")[0][0] == "ok", "integrity_check")
        check(harness.check_state_store(c.db) > 0, "no records")
    finally:
        c.stop(keep=True)
        subprocess.run(["umount", mnt], capture_output=True)
        c.stop()


if __name__ == "__main__":
    run_tests([test_work_bound_to_its_worker, test_binding_survives_restart_plaintext,
               test_assign_lost_in_a_crash_is_never_reissued,
               test_binding_by_curve_key, test_worker_waits_for_applied_ack,
               test_result_counters_bounded, test_damaged_store_at_start,
               test_damaged_store_at_run_time, test_truncated_or_missing_store_refused,
               test_empty_database_beside_store_refused, test_second_pbtd_refused,
               test_slow_partial_frame_dropped, test_oversize_frame_dropped_without_reply,
               test_log_injection_and_identities, test_keygen_never_overwrites_or_follows_links,
               test_database_files_private, test_disk_full_then_space_back])
