#!/usr/bin/python3
"""Failure behaviour with real processes (issue 5): workers and pbtd killed
with SIGKILL mid-run, hostile input, SIGTERM."""
import json
import os
import random
import re
import signal
import subprocess
import time

import harness
from harness import BUILD, FAST_CONFIG, Cluster, check, run_tests

HOSTILE = os.path.join(BUILD, "tests", "integration", "hostile")

LEASE_CONFIG = FAST_CONFIG + """
[daemon]
lease_ms = {lease_ms}
heartbeat_ms = 500
housekeeping_ms = 200
"""


def long_assignments(cfg, iterations):
    """Assignments of a few seconds each (64 envs x 128 steps per iteration),
    so a kill surely lands while they are in flight. Episodes of 1000
    rounds keep each result to a few hundred episodes: with 10 it would
    carry tens of thousands, whose rows take pbtd seconds to write under
    ASan, longer than pbtctl's timeout."""
    return (cfg.replace("n_envs = 8", "n_envs = 64").replace("n_steps = 20", "n_steps = 128")
               .replace("iterations = 1", f"iterations = {iterations}")
            + "\n[env]\nepisode_len = 1000\n")


def acked_results(c):
    """Results acknowledged to workers, from the workers' own logs: id -> episodes."""
    finished, acked = {}, set()
    for name in os.listdir(c.dir):
        if not name.startswith("worker"):
            continue
        for line in open(os.path.join(c.dir, name)):
            m = re.search(r"event=assignment_finished assignment=(\d+) episodes=(\d+)", line)
            if m:
                finished[int(m.group(1))] = int(m.group(2))
            m = re.search(r"event=result_acked assignment=(\d+)", line)
            if m:
                acked.add(int(m.group(1)))
    return {a: finished[a] for a in acked}


def check_no_loss_no_double(c):
    acked = acked_results(c)
    check(len(acked) > 0, "no result was acknowledged")
    for aid, episodes in acked.items():
        state = c.sql("SELECT state FROM assignments WHERE id = ?", (aid,))
        check(state and state[0][0] == "done", f"acknowledged assignment {aid} is not done in the database: {state}")
        rows = c.sql("SELECT COUNT(*), COUNT(DISTINCT episode) FROM matches WHERE assignment_id = ?", (aid,))[0]
        check(rows[0] == episodes, f"assignment {aid}: {rows[0]} match rows, worker reported {episodes} episodes")
        check(rows[1] == rows[0], f"assignment {aid}: duplicated episodes")
    for (aid, matches) in c.sql("SELECT id, matches FROM agents"):
        rows = c.sql("SELECT COUNT(*) FROM match_seats WHERE agent_id = ?", (aid,))[0][0]
        check(rows == matches, f"agt_{aid}: counter {matches} != history rows {rows}")
    total = sum(r for (r,) in c.sql("SELECT rating FROM agents"))
    check(abs(total) < 1e-6, f"ratings no longer zero-sum: {total}")
    ok = c.sql("PRAGMA integrity_check")[0][0]
    check(ok == "ok", f"integrity_check: {ok}")
    return acked


def test_worker_killed_mid_assignment():
    cfg = long_assignments(LEASE_CONFIG.format(size=4, t_select=0.3, lease_ms=2000), 40)
    c = Cluster(cfg, name="wkill")
    try:
        c.start_pbtd()
        victim = c.start_worker()
        c.start_worker()
        # Wait until the victim is inside an assignment, then kill it.
        deadline = time.time() + 30
        started = False
        while time.time() < deadline and not started:
            started = "assignment_started" in open(victim.log_path).read()
            time.sleep(0.05)
        check(started, "the victim never started an assignment")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        c.workers.remove(victim)
        before = c.status()["results"]
        c.wait_results(before + 3, timeout=120)
        # Stop the survivor, let leases lapse: nobody may stay busy.
        for w in c.workers:
            w.send_signal(signal.SIGTERM)
        for w in c.workers:
            w.wait(timeout=20)
        time.sleep(3)
        st = c.status()
        busy = [a["id"] for a in st["agents"] if a["busy"]]
        check(not busy, f"agents stuck busy after the lease expired: {busy}")
        leased = c.sql("SELECT COUNT(*) FROM assignments WHERE state = 'leased'")[0][0]
        check(leased == 0, f"{leased} assignments still leased")
        expired = c.sql("SELECT COUNT(*) FROM assignments WHERE state = 'expired'")[0][0]
        check(expired >= 1, "the killed worker's assignment never expired")
    finally:
        c.stop()


def workers_listed(c):
    return json.loads(c.ctl("workers", "--json").stdout)


def test_worker_sigterm_says_bye():
    """SIGTERM to a worker mid-assignment, holding a second one it has not
    started (pipelining, max_held 2): it hands both back with bye before
    exiting, so their agents are free and it is no longer listed as soon
    as it has exited; the 60 s lease and the housekeeping timer play no
    part. Then a worker whose request is parked (population paused)
    withdraws it the same way."""
    cfg = long_assignments(LEASE_CONFIG.format(size=6, t_select=0.3, lease_ms=60000), 40)
    cfg = cfg.replace("housekeeping_ms = 200", "housekeeping_ms = 1000")
    c = Cluster(cfg, name="bye")
    try:
        c.start_pbtd()
        w = c.start_worker()
        # Two assignments of the 6 agents are this worker's: one playing, one
        # waiting (the second leaves two agents idle, as pbtd requires).
        deadline = time.time() + 30
        while time.time() < deadline and not ("assignment_started" in open(w.log_path).read()
                                              and c.status()["assignments_in_flight"] == 2):
            time.sleep(0.05)
        check(c.status()["assignments_in_flight"] == 2, "the worker never held two assignments")
        held = [r[0] for r in c.sql("SELECT id FROM assignments WHERE state = 'leased'")]
        check(len(held) == 2, f"leased in the database: {held}")
        check(sum(a["busy"] for a in c.status()["agents"]) == 4, "the assignments' agents are not busy")
        listed = workers_listed(c)
        check(len(listed) == 1 and listed[0]["held"] == 2, f"workers: {listed}")
        w.send_signal(signal.SIGTERM)
        rc = w.wait(timeout=30)
        c.workers.remove(w)
        check(rc == 0, f"worker exit code on SIGTERM: {rc}")
        log = open(w.log_path).read()
        m = re.search(r"event=bye_answered returned=([\d,]+)", log)
        check(m and sorted(int(x) for x in m.group(1).split(",")) == sorted(held),
              f"the bye did not return {held}:\n{log[-800:]}")
        st = c.status()
        busy = [a["id"] for a in st["agents"] if a["busy"]]
        check(not busy, f"agents still busy after the worker said bye: {busy}")
        check(st["assignments_in_flight"] == 0, f"{st['assignments_in_flight']} assignments in flight")
        check(workers_listed(c) == [], f"the worker is still listed: {workers_listed(c)}")
        for aid in held:
            state = c.sql("SELECT state FROM assignments WHERE id = ?", (aid,))[0][0]
            check(state == "expired", f"returned assignment {aid} is '{state}', expected expired")

        # A waiting worker: its parked request goes with it.
        c.ctl("pause")
        w2 = c.start_worker()
        deadline = time.time() + 30
        while time.time() < deadline and not any(x["waiting"] for x in workers_listed(c)):
            time.sleep(0.05)
        check(any(x["waiting"] for x in workers_listed(c)), "the second worker never parked a request")
        w2.send_signal(signal.SIGTERM)
        check(w2.wait(timeout=30) == 0, "second worker's exit code")
        c.workers.remove(w2)
        check(workers_listed(c) == [], f"the waiting worker is still listed: {workers_listed(c)}")
        check("event=bye_answered returned=0" in open(w2.log_path).read(), "the waiting worker's bye")
        # pbtd kept serving: a new worker trains once resumed.
        c.ctl("resume")
        c.start_worker()
        c.wait_results(1, timeout=120)
    finally:
        c.stop()


def test_worker_killed_holding_two():
    """A pipelined worker SIGKILLed with two assignments in hand (one
    playing, one waiting): both leases lapse, their agents are released,
    another worker trains on, and nothing acknowledged is lost or doubled."""
    cfg = long_assignments(LEASE_CONFIG.format(size=6, t_select=0.3, lease_ms=2000), 40)
    c = Cluster(cfg, name="wkill2")
    try:
        c.start_pbtd()
        victim = c.start_worker()
        deadline = time.time() + 30
        while time.time() < deadline and not ("assignment_started" in open(victim.log_path).read()
                                              and c.status()["assignments_in_flight"] == 2):
            time.sleep(0.05)
        check(c.status()["assignments_in_flight"] == 2, "the victim never held two assignments")
        held = [r[0] for r in c.sql("SELECT id FROM assignments WHERE state = 'leased'")]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        c.workers.remove(victim)
        deadline = time.time() + 30
        while time.time() < deadline and c.status()["assignments_in_flight"] > 0:
            time.sleep(0.1)
        for aid in held:
            state = c.sql("SELECT state FROM assignments WHERE id = ?", (aid,))[0][0]
            check(state == "expired", f"assignment {aid} held by the killed worker is '{state}'")
        check(not any(a["busy"] for a in c.status()["agents"]), "agents stuck busy")
        c.start_worker()
        c.wait_results(2, timeout=120)
        rc = c.stop(keep=True)
        check(rc == 0, f"pbtd exit code on SIGTERM: {rc}")
        check_no_loss_no_double(c)
    finally:
        c.stop()


def test_pbtd_killed_and_restarted():
    c = Cluster(LEASE_CONFIG.format(size=6, t_select=0.5, lease_ms=4000), name="dkill")
    rnd = random.Random(7)
    try:
        c.start_pbtd()
        c.start_worker()
        c.start_worker()
        for cycle in range(3):
            c.wait_results(4 * (cycle + 1), timeout=120)
            time.sleep(rnd.uniform(0.0, 1.0))      # kill at an arbitrary moment
            c.pbtd.send_signal(signal.SIGKILL)
            c.pbtd.wait()
            ok = c.sql("PRAGMA integrity_check")[0][0]
            check(ok == "ok", f"integrity_check after SIGKILL: {ok}")
            n = harness.check_state_store(c.db)
            check(n >= 6, f"only {n} snapshot records after SIGKILL")
            c.start_pbtd()
        # Workers reconnect by themselves and training carries on.
        results = c.status()["results"]
        c.wait_results(results + 4, timeout=120)
        for w in c.workers:
            check(w.poll() is None, "a worker died when pbtd restarted")
        rc = c.stop(keep=True)
        check(rc == 0, f"pbtd exit code on SIGTERM: {rc}")
        acked = check_no_loss_no_double(c)
        check(len(acked) >= 16, f"only {len(acked)} acknowledged results")
    finally:
        c.stop()


def test_restart_with_leases_in_flight_then_expiry():
    """pbtd restarts on a database with several leased assignments whose
    workers are gone: the leases survive the restart, then lapse together,
    the agents are released, and pbtd keeps serving."""
    cfg = long_assignments(LEASE_CONFIG.format(size=8, t_select=0.3, lease_ms=4000), 20)
    c = Cluster(cfg, name="leases")
    try:
        c.start_pbtd()
        for _ in range(3):
            c.start_worker()
        deadline = time.time() + 30
        while time.time() < deadline:
            if sum(a["busy"] for a in c.status()["agents"]) >= 6:
                break
            time.sleep(0.05)
        check(sum(a["busy"] for a in c.status()["agents"]) >= 6, "three assignments never ran at once")
        c.pbtd.send_signal(signal.SIGKILL)
        c.pbtd.wait()
        for w in c.workers:
            w.send_signal(signal.SIGKILL)
            w.wait()
        c.workers = []
        leased = c.sql("SELECT COUNT(*) FROM assignments WHERE state = 'leased'")[0][0]
        check(leased >= 3, f"only {leased} leases were in flight at the kill")
        c.start_pbtd()
        check(sum(a["busy"] for a in c.status()["agents"]) >= 6, "leases did not survive the restart")
        time.sleep(6.0)
        check(c.pbtd.poll() is None, f"pbtd died when the leases lapsed (exit {c.pbtd.returncode})")
        st = c.status()
        check(not any(a["busy"] for a in st["agents"]), "agents still busy after their leases lapsed")
        c.start_worker()
        c.wait_results(st["results"] + 2, timeout=60)
    finally:
        c.stop()


def test_hostile_messages():
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3), name="hostile")
    try:
        c.start_pbtd()
        c.start_worker()
        c.wait_results(2)
        r = subprocess.run([HOSTILE, c.wep, "10000", "1"], capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, f"hostile sender: {r.stdout} {r.stderr}")
        check("errors=10000" in r.stdout, f"not every malformed message got an error reply: {r.stdout}")
        check(c.pbtd.poll() is None, "pbtd died under malformed input")
        results = c.status()["results"]
        c.wait_results(results + 2, timeout=120)
    finally:
        c.stop()


def test_sigterm_exits_zero():
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3), name="term")
    try:
        c.start_pbtd()
        c.start_worker()
        c.wait_results(2)
        c.pbtd.send_signal(signal.SIGTERM)
        rc = c.pbtd.wait(timeout=30)
        check(rc == 0, f"pbtd exit code on SIGTERM: {rc}")
        ok = c.sql("PRAGMA integrity_check")[0][0]
        check(ok == "ok", f"integrity_check: {ok}")
    finally:
        c.stop()


if __name__ == "__main__":
    run_tests([test_worker_killed_mid_assignment, test_worker_sigterm_says_bye,
               test_worker_killed_holding_two,
               test_pbtd_killed_and_restarted,
               test_restart_with_leases_in_flight_then_expiry,
               test_hostile_messages, test_sigterm_exits_zero])
