#!/usr/bin/python3
"""History at the grain of results, off the reactor: real pbtd, workers and
pbtctl.

- report and history in a loop while two workers train on a database
  holding a long run's history: every call succeeds, pbtd's housekeeping
  keeps ticking while it runs, no result is sent twice, no reply is lost;
- the per-result aggregates, series and payoff counters equal what the
  opt-in per-episode rows of the same run say;
- a version 4 database (episode rows only) upgrades with every agent's
  history carried over;
- bad queries get clear errors and pbtd keeps serving."""

import json
import os
import subprocess
import time

import harness
import synth
from harness import PBTCTL, Cluster, check, run_tests

PPO = """
[ppo]
n_envs = 8
n_steps = 20
iterations = 1
epochs = 2
minibatches = 2

[pbt]
t_select = 0.3
"""

# housekeeping every 20 ms: a call that took the reactor's time would show
# as ticks that stopped moving while it ran.
LOOP_CONFIG = """
[daemon]
housekeeping_ms = 20

[population]
size = 8
env = rps
""" + PPO

ROWS_CONFIG = """
[daemon]
episode_rows = true

[population]
size = 4
env = rps
""" + PPO


def logs(c, prefix):
    return "".join(open(os.path.join(c.dir, f), errors="replace").read()
                   for f in os.listdir(c.dir) if f.startswith(prefix) and f.endswith(".log"))


def test_queries_during_training_on_a_large_database():
    c = Cluster(LOOP_CONFIG, name="hist-loop")
    try:
        c.start_pbtd()
        c.stop(keep=True)
        levels = 10
        points = synth.fill(c.db, results=20000, levels=levels)
        c.start_pbtd()
        c.start_worker()
        c.start_worker()
        start = c.wait_results(c.status()["results"] + 4)
        out = os.path.join(c.dir, "report.html")
        observed = []
        for i in range(3):
            for args in (["report", "-o", out], ["history", "--json"]):
                # Output to a file: a pipe nobody reads would block pbtctl.
                with open(os.path.join(c.dir, "out.json"), "w+") as fout:
                    # A generous timeout: this asserts behaviour (ticks move, nothing
                    # resent), not speed, and an ASan build on a loaded machine is slow.
                    p = subprocess.Popen([PBTCTL, "--endpoint", c.cep, "--timeout", "30000"] + args, stdout=fout,
                                         stderr=subprocess.PIPE, text=True)
                    ticks = []
                    while p.poll() is None:
                        ticks.append(c.status()["housekeeping"]["ticks"])
                    stderr = p.communicate()[1]
                    fout.seek(0)
                    stdout = fout.read()
                check(p.returncode == 0, f"pbtctl {args[0]} failed ({p.returncode}): {stderr}")
                observed.append((args[0], ticks))
                if args[0] == "history":
                    hist = json.loads(stdout)
                    check(sorted(hist) == [f"agt_{k}" for k in range(8)], f"history agents {sorted(hist)}")
                    for name, h in hist.items():
                        page = h["page"]
                        # The whole synthesized run, merged: bounded, and it says so.
                        check(page["downsampled"] is True and page["total"] >= points - levels
                              and page["total"] <= points + synth.LEVEL_POINTS, f"{name} page {page}")
                        check(len(h["score"]) == page["count"] + 1 == len(h["ts"]) == len(h["frames"]),
                              f"{name}: {len(h['score'])} entries, page {page}")
                        check(h["ts"][1:] == sorted(h["ts"][1:]), f"{name}: entries not in time order")
        # While each call ran, status kept answering and the ticks moved on
        # (a call that blocked the reactor would hold status back with them).
        for cmd, ticks in observed:
            if len(ticks) >= 3:
                check(ticks[-1] > ticks[0], f"{cmd}: housekeeping ticks {ticks} did not advance during the call")
        check(sum(len(t) >= 3 for _, t in observed) >= 2,
              f"too few status answers during the calls to tell: {[len(t) for _, t in observed]}")
        end = c.status()
        check(end["results"] > start["results"], "training stopped during the loop")
        check(end["housekeeping"]["ticks"] > start["housekeeping"]["ticks"], "ticks did not advance")
        check(end["reader"]["served"] >= 6, f"reader served {end['reader']['served']}")
        c.stop(keep=True)
        pbtd_log, worker_log = logs(c, "pbtd"), logs(c, "worker")
        check("ctl_reply_failed" not in pbtd_log, "a control reply failed")
        check("code=duplicate" not in pbtd_log, "a result was sent twice")
        check("no_ack" not in worker_log, "a worker resent a result")
        # Retention worked the synthesized results off as new ones came in.
        kept = c.sql("SELECT COUNT(*) FROM assignments")[0][0]
        check(kept <= 20000 + end["results"], f"{kept} assignments kept")
    finally:
        c.stop()


AGG_MISMATCH = (
    "SELECT COUNT(*) FROM result_seats r WHERE "
    "r.episodes != (SELECT COUNT(*) FROM match_seats s JOIN matches m ON m.id = s.match_id "
    "  WHERE m.assignment_id = r.assignment_id AND s.slot = r.slot) "
    "OR abs(r.score_sum - (SELECT SUM(s.score) FROM match_seats s JOIN matches m ON m.id = s.match_id "
    "  WHERE m.assignment_id = r.assignment_id AND s.slot = r.slot)) > 1e-6 "
    "OR r.rating_after != (SELECT s.rating_after FROM match_seats s JOIN matches m ON m.id = s.match_id "
    "  WHERE m.assignment_id = r.assignment_id AND s.slot = r.slot ORDER BY m.id DESC LIMIT 1) "
    "OR r.wins != (SELECT COUNT(*) FROM match_seats s JOIN match_seats o ON o.match_id = s.match_id "
    "  AND o.team != s.team JOIN matches m ON m.id = s.match_id "
    "  WHERE m.assignment_id = r.assignment_id AND s.slot = r.slot AND s.score > o.score) "
    "OR r.draws != (SELECT COUNT(*) FROM match_seats s JOIN match_seats o ON o.match_id = s.match_id "
    "  AND o.team != s.team JOIN matches m ON m.id = s.match_id "
    "  WHERE m.assignment_id = r.assignment_id AND s.slot = r.slot AND s.score = o.score)")

PAYOFF_FROM_ROWS = (
    "SELECT s.agent_id, o.agent_id, COUNT(*), SUM(s.score > o.score), SUM(s.score = o.score), "
    "SUM(s.score < o.score), SUM(s.score) FROM match_seats s JOIN match_seats o "
    "ON o.match_id = s.match_id AND o.team != s.team GROUP BY 1, 2 ORDER BY 1, 2")


def test_aggregates_equal_episode_rows():
    c = Cluster(ROWS_CONFIG, name="hist-rows")
    try:
        c.start_pbtd()
        c.start_worker()
        c.start_worker()
        c.wait_results(12)
        for w in c.workers:
            w.terminate()
            w.wait(timeout=20)
        payoff = json.loads(c.ctl("payoff").stdout)
        hist = json.loads(c.ctl("history", "--json").stdout)
        c.stop(keep=True)
        check(c.sql("SELECT COUNT(*) FROM result_seats")[0][0] > 0, "no result rows")
        check(c.sql(AGG_MISMATCH)[0][0] == 0, "result_seats disagree with the episode rows")
        rows = c.sql(PAYOFF_FROM_ROWS)
        cells = {(x["agent"], x["opp"]): x["all"] for x in payoff["cells"]}
        check(len(cells) == len(rows), f"payoff has {len(cells)} cells, the rows {len(rows)} pairings")
        for a, b, n, w, d, l, s in rows:
            got = cells[(f"agt_{a}", f"agt_{b}")]
            check((got["episodes"], got["wins"], got["draws"], got["losses"]) == (n, w, d, l)
                  and abs(got["score_sum"] - s) < 1e-6, f"agt_{a} vs agt_{b}: payoff {got}, rows {(n, w, d, l, s)}")
        for aid, matches, rating in c.sql("SELECT id, matches, rating FROM agents"):
            h = hist[f"agt_{aid}"]
            eps = sum(h["episodes"][1:])
            check(eps == matches, f"agt_{aid}: history counts {eps} episodes, agents.matches {matches}")
            mean = c.sql("SELECT AVG(score) FROM match_seats WHERE agent_id = ?", (aid,))[0][0]
            got = sum(s * e for s, e in zip(h["score"][1:], h["episodes"][1:])) / eps
            check(abs(got - mean) < 1e-6, f"agt_{aid}: history mean score {got}, rows {mean}")
            check(h["rating"][-1] == rating, f"agt_{aid}: history ends at {h['rating'][-1]}, rating {rating}")
    finally:
        c.stop()


def test_upgrade_from_schema_4_keeps_history():
    c = Cluster(ROWS_CONFIG, name="hist-v4")
    try:
        c.start_pbtd()
        c.start_worker()
        c.wait_results(8)
        c.stop(keep=True)
        want = {}
        for aid, opp, mean, rating, ts in c.sql(
                "SELECT agent_id, opponent, score_sum / episodes, rating_after, ts FROM result_seats "
                "ORDER BY assignment_id"):
            want.setdefault(aid, []).append((opp, round(mean, 9), rating, ts))
        # What a version 4 pbtd left: per-episode rows only.
        con = __import__("sqlite3").connect(c.db)
        con.executescript("DROP TABLE result_seats; DROP TABLE series_points; DROP TABLE series; "
                          "DROP TABLE payoff; PRAGMA user_version = 4;")
        con.close()
        c.start_pbtd()
        hist = json.loads(c.ctl("history", "--json").stdout)
        check(c.sql("PRAGMA user_version")[0][0] == 5, "not upgraded")
        for aid in range(4):
            h = hist[f"agt_{aid}"]
            got = [(o, round(s, 9), r, t) for o, s, r, t in
                   zip(h["opponent"][1:], h["score"][1:], h["rating"][1:], h["ts"][1:])]
            check(got == want.get(aid, []), f"agt_{aid}: history after the upgrade {got[:3]}... "
                                            f"!= before {want.get(aid, [])[:3]}...")
        check("db_migrated_history" in logs(c, "pbtd"), "no upgrade logged")
    finally:
        c.stop()


def test_bad_queries_are_refused():
    c = Cluster(ROWS_CONFIG, name="hist-bad")
    try:
        c.start_pbtd()
        cases = [
            (["history", "agt_99"], "no agent 'agt_99'"),
            (["history", "--offset", "5", "agt_0"], "past the end"),
            (["history", "--limit", "0"], "limit"),
            (["lineage", "agt_-1"], "no agent"),
            (["payoff", "--offset", "10"], "past the end"),
        ]
        for args, text in cases:
            r = c.ctl(*args, check_rc=False)
            check(r.returncode == 1 and text in r.stderr, f"pbtctl {' '.join(args)}: {r.returncode} {r.stderr!r}")
        check(c.status()["agents"], "pbtd stopped serving")
        # Malformed or, for matches, out-of-range numbers are pbtctl's usage
        # errors (exit 2) naming the argument; pbtd is not asked.
        for args, text in [(["history", "--offset", "x"], "history --offset"),
                           (["history", "--offset", "-3"], "history --offset"),
                           (["matches", "--limit", "5000"], "matches --limit")]:
            r = c.ctl(*args, check_rc=False)
            check(r.returncode == 2 and text in r.stderr, f"pbtctl {' '.join(args)}: {r.returncode} {r.stderr!r}")
    finally:
        c.stop()


if __name__ == "__main__":
    run_tests([test_queries_during_training_on_a_large_database, test_aggregates_equal_episode_rows,
               test_upgrade_from_schema_4_keeps_history, test_bad_queries_are_refused])
