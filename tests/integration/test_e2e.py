#!/usr/bin/python3
"""End to end: real pbtd + two real pbt-worker processes training an RPS
population; checks the database and `pbtctl status --json` agree with the
rules (issue 2 part 8, issue 4 part 8)."""

import hashlib
import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import harness
from harness import FAST_CONFIG, PBTD, Cluster, check, run_tests

N_RESULTS = 30


def run_population(t_select, n_results=N_RESULTS):
    c = Cluster(FAST_CONFIG.format(size=8, t_select=t_select), name="e2e")
    c.start_pbtd()
    before = c.status()
    c.start_worker()
    c.start_worker()
    c.wait_results(n_results)
    return c, before


def test_loop_trains_and_records():
    c, before = run_population(t_select=1.0)
    try:
        after = c.status()
        agents = after["agents"]
        check(len(agents) == 8, f"expected 8 agents, got {len(agents)}")
        check(after["workers"] == 2, f"expected 2 workers connected, got {after['workers']}")
        for key in ("id", "rating", "matches", "frames", "lr", "gamma", "generation", "parent", "busy"):
            check(all(key in a for a in agents), f"status agents lack '{key}'")
        # Frames: every agent trained (0 at the start, > 0 now).
        frames0 = {a["id"]: a["frames"] for a in before["agents"]}
        for a in agents:
            check(a["frames"] > frames0[a["id"]], f"{a['id']} frames did not grow: {a['frames']}")
        c.stop(keep=True)

        # Ratings are zero-sum: the population's total never moves from N * initial (0).
        total = sum(r for (r,) in c.sql("SELECT rating FROM agents"))
        check(abs(total) < 1e-6, f"ratings not zero-sum: sum = {total}")

        # Match history is complete: every applied result has its episodes,
        # and each agent's match counter equals the rows that name it.
        done = c.sql("SELECT COUNT(*) FROM assignments WHERE state = 'done'")[0][0]
        check(done >= N_RESULTS, f"only {done} assignments done")
        no_matches = c.sql("SELECT COUNT(*) FROM assignments a WHERE state = 'done' AND NOT EXISTS "
                           "(SELECT 1 FROM matches m WHERE m.assignment_id = a.id)")[0][0]
        check(no_matches == 0, f"{no_matches} done assignments have no match rows")
        for (aid, matches) in c.sql("SELECT id, matches FROM agents"):
            rows = c.sql("SELECT COUNT(*) FROM match_seats WHERE agent_id = ? AND frozen_version IS NULL",
                         (aid,))[0][0]
            check(rows == matches, f"agt_{aid}: counter says {matches} matches, history has {rows}")
        # Each episode of 10 rounds scores in [-10, 10] and the game is zero-sum.
        bad = len(c.sql("SELECT match_id FROM match_seats GROUP BY match_id "
                        "HAVING SUM(score) != 0 OR MAX(ABS(score)) > 10 OR COUNT(*) != 2"))
        check(bad == 0, f"{bad} match rows are not zero-sum RPS scores")

        # With T_select = 1 an evolution must happen (P(win) < 1 always).
        evo = c.sql("SELECT COUNT(*) FROM evolutions")[0][0]
        check(evo >= 1, "no inheritance happened with t_select = 1")
        gens = c.sql("SELECT MAX(generation) FROM agents")[0][0]
        check(gens >= 1, "no agent has generation >= 1")
        ok = c.sql("PRAGMA integrity_check")[0][0]
        check(ok == "ok", f"integrity_check: {ok}")
    finally:
        c.stop()


def test_t_select_zero_never_evolves():
    c, _ = run_population(t_select=0.0, n_results=16)
    try:
        st = c.status()
        check(st["evolutions"] == 0, f"{st['evolutions']} evolutions with t_select = 0")
        check(all(a["generation"] == 0 for a in st["agents"]), "an agent evolved with t_select = 0")
        check(c.sql("SELECT COUNT(*) FROM evolutions")[0][0] == 0, "evolutions rows with t_select = 0")
    finally:
        c.stop()


def test_eligibility_frames_respected():
    """With E set, no agent evolves before it has trained E frames since it
    was created or last evolved (t_select = 1 makes every eligible agent try)."""
    E = 4000    # each assignment trains 8 envs x 20 steps = 160 frames per agent
    cfg = FAST_CONFIG.format(size=4, t_select=1.0) + f"eligible_frames = {E}\n"
    c = Cluster(cfg, name="elig")
    try:
        c.start_pbtd()
        c.start_worker()
        c.start_worker()
        c.wait_results(120)
        c.stop(keep=True)
        rows = c.sql("SELECT agent_id, frames FROM evolutions ORDER BY id")
        check(len(rows) >= 1, "no evolution happened even though agents passed E frames")
        last = {}
        for agent, frames in rows:
            since = frames - last.get(agent, 0)
            check(since >= E, f"agt_{agent} evolved after only {since} frames (E = {E})")
            last[agent] = frames
    finally:
        c.stop()


def test_history_and_lineage():
    c, _ = run_population(t_select=1.0, n_results=20)
    try:
        # Quiesce: with no workers the history cannot move under us.
        for w in c.workers:
            w.terminate()
            w.wait(timeout=20)
        hist = json.loads(c.ctl("history", "agt_0", "--json").stdout)
        check(list(hist) == ["agt_0"], f"history keys: {list(hist)}")
        h = hist["agt_0"]
        for key in ("hyperparameters", "opponent", "score", "rating", "step"):
            check(key in h, f"history lacks '{key}'")
        check("lr" in h["hyperparameters"] and "gamma" in h["hyperparameters"], "history lacks lr/gamma series")
        # One entry per result (fewer than 128: none merged yet), after the
        # seed format's placeholder ('NA', 0, initial rating).
        rows = c.sql("SELECT r.opponent, r.score_sum / r.episodes, r.rating_after, r.ts FROM result_seats r "
                     "WHERE r.agent_id = 0 AND r.frozen_version IS NULL ORDER BY r.assignment_id")
        n = len(rows)
        check(len(h["score"]) == n + 1 and len(h["opponent"]) == len(h["score"]) == len(h["rating"])
              == len(h["ts"]) == len(h["frames"]),
              f"history series lengths: score {len(h['score'])}, opponent {len(h['opponent'])}, "
              f"rating {len(h['rating'])}; agt_0 played {n} results")
        check(h["page"]["downsampled"] is False and h["page"]["total"] == n, f"page: {h['page']}")
        for k, (opp, mean, rating, ts) in enumerate(rows):
            check(h["opponent"][k + 1] == opp and abs(h["score"][k + 1] - mean) < 1e-9
                  and h["rating"][k + 1] == rating and h["ts"][k + 1] == ts,
                  f"entry {k + 1}: {h['opponent'][k + 1]}, {h['score'][k + 1]}, {h['rating'][k + 1]} "
                  f"!= result row {opp}, {mean}, {rating}")
        # The mean score over the episode rows of agt_0's live seats equals the series'.
        raw = c.sql("SELECT AVG(score), COUNT(*) FROM match_seats WHERE agent_id = 0 AND frozen_version IS NULL")[0]
        eps = sum(h["episodes"][1:])
        mean = sum(s * e for s, e in zip(h["score"][1:], h["episodes"][1:])) / eps
        check(eps == raw[1] and abs(mean - raw[0]) < 1e-9, f"history: {eps} episodes mean {mean}; rows: {raw}")
        bad = c.ctl("history", "--offset", str(n + 5), "agt_0", check_rc=False)
        check(bad.returncode == 1 and "past the end" in bad.stderr, f"page past the end: {bad.returncode} {bad.stderr}")
        allh = json.loads(c.ctl("history", "--json").stdout)
        check(sorted(allh) == sorted(f"agt_{i}" for i in range(8)), f"history for all: {sorted(allh)}")
        evolved = c.sql("SELECT agent_id, COUNT(*) FROM evolutions GROUP BY agent_id ORDER BY 2 DESC LIMIT 1")
        check(evolved, "no evolution to trace")
        agent, count = evolved[0]
        lin = c.ctl("lineage", f"agt_{agent}", "--json")
        check(lin.returncode == 0, f"lineage failed: {lin.stderr}")
        check(lin.stdout.count("donor") >= count, f"lineage of agt_{agent} shows fewer than {count} donors")
    finally:
        c.stop()


SOCCER_CONFIG = """
[daemon]
episode_rows = true

[population]
size = 6
env = soccer
preset = paper

[env]
episode_steps = 200

[ppo]
n_envs = 4
n_steps = 64
iterations = 4
epochs = 1
minibatches = 2

[pbt]
elo_k = 16
"""


def test_soccer_population():
    """Soccer is selectable in the config: four distinct agents per match,
    two per team, team Elo, shaping weights evolve as hyperparameters, and
    an agent's episode can be replayed as SVG."""
    c = Cluster(SOCCER_CONFIG, name="soccer")
    try:
        c.start_pbtd()
        c.start_worker()
        c.wait_results(6)
        st = c.status()
        for a in st["agents"]:
            check("shape_vel_to_ball" in a["hparams"] and "shape_vel_ball_to_goal" in a["hparams"],
                  f"{a['id']} lacks the shaping weights: {sorted(a['hparams'])}")
        svg = os.path.join(c.dir, "replay.svg")
        r = c.ctl("replay", "agt_0", "--vs", "chaser", "-o", svg, "--steps", "200")
        check(r.returncode == 0, f"replay failed: {r.stderr}")
        root = ET.parse(svg).getroot()
        check(root.tag.endswith("svg"), "replay is not an SVG document")
        check(len(root.findall(".//{http://www.w3.org/2000/svg}animate")) >= 10, "replay has no animation")
        c.stop(keep=True)
        seats = c.sql("SELECT match_id, COUNT(*), COUNT(DISTINCT agent_id), SUM(team) FROM match_seats GROUP BY match_id")
        check(len(seats) > 0, "no soccer matches recorded")
        for mid, n, distinct, teams in seats:
            check(n == 4 and distinct == 4 and teams == 2, f"match {mid}: {n} seats, {distinct} agents, team sum {teams}")
        # Team scores are +1/-1 for a goal, 0 at time-out, equal within a team.
        bad = c.sql("SELECT match_id FROM match_seats GROUP BY match_id, team HAVING MIN(score) != MAX(score) "
                    "OR ABS(MIN(score)) > 1")
        check(not bad, f"team scores differ within a team in matches {bad[:5]}")
    finally:
        c.stop()


def test_soccer_scripted_training_matches():
    """script_rate: some training matches put two agents (one whole team)
    against a scripted team. They train the agents and are recorded, but
    move no rating: the population's ratings stay zero-sum. Evaluation can
    play full-time games (--env full_time=1)."""
    c = Cluster(SOCCER_CONFIG + "script_rate = 0.5\nscript_opponents = random, chaser\n",
                name="soccer-scripted")
    try:
        c.start_pbtd()
        c.start_worker()
        c.wait_results(16)
        out = c.ctl("matches", "--limit", "1000").stdout
        check("vs script" in out, "pbtctl matches shows no scripted match")
        ev = json.loads(c.ctl("eval", "agt_0", "--vs", "random", "--episodes", "20", "--env", "full_time=1",
                              "--json").stdout)
        check(ev["env_options"].get("full_time") == 1 and ev["episodes"] == 20,
              f"eval did not play full-time games: {ev}")
        bad = c.ctl("eval", "agt_0", "--vs", "random", "--env", "full_time=2", check_rc=False)
        check(bad.returncode != 0 and "full_time" in bad.stderr, f"bad --env accepted: {bad.stderr!r}")
        c.stop(keep=True)
        scripted = c.sql("SELECT id, script, script_seats FROM assignments WHERE script IS NOT NULL AND state = 'done'")
        plain = c.sql("SELECT COUNT(*) FROM assignments WHERE script IS NULL AND state = 'done'")[0][0]
        check(scripted and plain > 0, f"{len(scripted)} scripted and {plain} population assignments done")
        for aid, script, n in scripted:
            check(script in ("random", "chaser") and n == 2, f"assignment {aid}: script {script}, {n} seats")
            seats = c.sql("SELECT COUNT(DISTINCT agent_id), COUNT(DISTINCT slot / 2), SUM(train) "
                          "FROM assignment_seats WHERE assignment_id = ?", (aid,))[0]
            check(seats == (2, 1, 2), f"assignment {aid}: agents/teams/trained = {seats}")
        # Every scripted episode is recorded for its two agents, on one team.
        rows = c.sql("SELECT m.id, COUNT(*), COUNT(DISTINCT s.team) FROM matches m "
                     "JOIN assignments a ON a.id = m.assignment_id JOIN match_seats s ON s.match_id = m.id "
                     "WHERE a.script IS NOT NULL GROUP BY m.id")
        check(rows and all(n == 2 and t == 1 for (_, n, t) in rows), f"scripted match rows: {rows[:5]}")
        # Ratings move only in population play: along each agent's history
        # a scripted episode leaves its rating where the previous episode
        # left it, and agents.matches counts population episodes only.
        decisive = 0
        for (agent,) in c.sql("SELECT id FROM agents"):
            hist = c.sql("SELECT a.script, s.rating_after, s.score FROM match_seats s "
                         "JOIN matches m ON m.id = s.match_id JOIN assignments a ON a.id = m.assignment_id "
                         "WHERE s.agent_id = ? ORDER BY s.match_id", (agent,))
            last = 0.0
            for script, rating, score in hist:
                if script is not None:
                    check(rating == last, f"agt_{agent}: a scripted episode moved its rating {last} -> {rating}")
                    decisive += score != 0
                last = rating
            played = c.sql("SELECT matches FROM agents WHERE id = ?", (agent,))[0][0]
            check(played == sum(1 for h in hist if h[0] is None),
                  f"agt_{agent}: matches = {played}, population episodes = {sum(1 for h in hist if h[0] is None)}")
        check(decisive > 0, "no scripted episode had a winner (nothing to move a rating)")
        # History names the scripted team as the opponent.
        who = c.sql("SELECT s.agent_id FROM assignment_seats s JOIN assignments a ON a.id = s.assignment_id "
                    "WHERE a.script IS NOT NULL AND a.state = 'done' LIMIT 1")[0][0]
        c.start_pbtd()
        hist = json.loads(c.ctl("history", f"agt_{who}", "--json").stdout)
        text = json.dumps(hist)
        check("script:random" in text or "script:chaser" in text, "history shows no scripted opponent")
        def opponents(node):
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "opponent":
                        yield v
                    else:
                        yield from opponents(v)
            elif isinstance(node, list):
                for v in node:
                    yield from opponents(v)
        for series in opponents(hist):
            # The series starts with the seed's "NA" for the initial point; no episode is unnamed.
            check("NA" not in series[1:], f"history has an opponent it could not name: {series[:8]}")
        # The agents of scripted matches trained: their versions moved on.
        trained = c.sql("SELECT COUNT(*) FROM assignment_seats s JOIN assignments a ON a.id = s.assignment_id "
                        "JOIN agents g ON g.id = s.agent_id AND g.version > s.version "
                        "WHERE a.script IS NOT NULL AND a.state = 'done'")[0][0]
        check(trained == 2 * len(scripted), f"{trained} of {2 * len(scripted)} scripted seats trained")
    finally:
        c.stop()


def test_lineage_keep_serves_donor_versions():
    """[daemon] lineage_keep: the versions evolutions copied outlive
    snapshots_keep, and pbtctl serves them as agt_N@V (export, eval)."""
    cfg = "[daemon]\nsnapshots_keep = 1\nlineage_keep = true\n" + FAST_CONFIG.format(size=4, t_select=1.0)
    c = Cluster(cfg, name="lineage")
    try:
        c.start_pbtd()
        c.start_worker()
        old = []
        deadline = time.time() + 60
        while not old and time.time() < deadline:
            c.wait_results(c.status()["results"] + 4)
            old = c.sql("SELECT e.donor_id, e.donor_version FROM evolutions e JOIN agents a ON a.id = e.donor_id "
                        "WHERE e.donor_version < a.version ORDER BY e.id LIMIT 1")
        check(old, "no evolution copied a version its donor has since moved past")
        donor, version = old[0]
        out = os.path.join(c.dir, "old.safetensors")
        j = json.loads(c.ctl("export", f"agt_{donor}@{version}", "-o", out, "--json").stdout)
        check(j["version"] == version and j["agent"] == f"agt_{donor}", f"export of agt_{donor}@{version}: {j}")
        ev = json.loads(c.ctl("eval", f"agt_{donor}@{version}", "--vs", "random", "--episodes", "20",
                              "--json").stdout)
        check(ev["episodes"] == 20, f"eval of an old version: {ev}")
        # A version that is not kept is refused, saying which are.
        r = c.ctl("export", f"agt_{donor}@999999", "-o", out, check_rc=False)
        check(r.returncode != 0 and "no snapshot" in r.stderr and "lineage_keep" in r.stderr,
              f"export of a missing version: rc {r.returncode} {r.stderr!r}")
        r = c.ctl("export", f"agt_{donor}@x", "-o", out, check_rc=False)
        check(r.returncode == 2, f"export agt_N@x: rc {r.returncode}")
        c.stop(keep=True)
        kept = c.sql("SELECT COUNT(*) FROM evolutions e WHERE NOT EXISTS (SELECT 1 FROM snapshots s "
                     "WHERE s.agent_id = e.donor_id AND s.version = e.donor_version)")[0][0]
        check(kept == 0, f"{kept} copied versions were deleted despite lineage_keep")
    finally:
        c.stop()


def test_replay_scripts_without_pbtd():
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3), name="replay")
    try:
        svg = os.path.join(c.dir, "r.svg")
        r = c.ctl("replay", "chaser", "--vs", "random", "-o", svg, "--seed", "3", check_rc=False)
        check(r.returncode == 0, f"scripted replay failed: {r.stderr}")
        ET.parse(svg)
    finally:
        c.stop()


def test_bad_config_refused():
    """An invalid file names file:line, the key and what was expected, and
    pbtd refuses to start."""
    cases = [
        ("[pbt]\nt_select = lots\n", ":2:", "t_select", "expected a number"),
        ("[population]\nsize = 8\n[ppo]\nepochz = 3\n", ":4:", "epochz", "unknown key"),
        ("[daemon]\nlease_ms = 5\n", ":2:", "lease_ms", "expected"),
        ("[nonsense]\n", ":1:", "nonsense", "unknown section"),
        ("[hparam.lr]\nprior = gaussian\n", ":2:", "prior", "expected"),
        ("[pbt]\nscript_opponents = nope\n", ":2:", "script_opponents", "not a script of rps"),
    ]
    for text, line, key, expected in cases:
        c = Cluster(text, name="badcfg")
        try:
            r = subprocess.run([PBTD, "--config", c.cfg, "--db", c.db, "--worker-endpoint", c.wep,
                                "--control-endpoint", c.cep], capture_output=True, text=True, timeout=30)
            check(r.returncode != 0, f"pbtd started on a bad config: {text!r}")
            msg = r.stderr
            check(c.cfg + line in msg and key in msg and expected in msg,
                  f"unclear error for {text!r}: {msg!r}")
            check(not os.path.exists(c.db), "pbtd created a database from a bad config")
        finally:
            c.stop()


def test_sighup_reloads_pbt_settings():
    """SIGHUP re-reads [pbt]: t_select 0 -> 1 turns evolution on."""
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.0), name="hup")
    try:
        c.start_pbtd()
        c.start_worker()
        c.wait_results(10)
        check(c.status()["evolutions"] == 0, "evolutions with t_select = 0")
        with open(c.cfg, "w") as f:
            f.write(FAST_CONFIG.format(size=4, t_select=1.0))
        c.pbtd.send_signal(signal.SIGHUP)
        results = c.status()["results"]
        c.wait_results(results + 10)
        check(c.status()["evolutions"] > 0, "no evolution after reloading t_select = 1")
        # A broken file on reload is refused and the old settings stay.
        with open(c.cfg, "w") as f:
            f.write("[pbt]\nt_select = nope\n")
        c.pbtd.send_signal(signal.SIGHUP)
        results = c.status()["results"]
        c.wait_results(results + 4)
        check(c.pbtd.poll() is None, "pbtd died on a bad reload")
    finally:
        c.stop()


def test_pause_resume_workers_watch():
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3), name="pause")
    try:
        c.start_pbtd()
        c.start_worker("--id", "w-one")
        c.wait_results(3)
        ws = json.loads(c.ctl("workers", "--json").stdout)
        check(len(ws) == 1 and ws[0]["worker_id"] == "w-one" and ws[0]["pid"] == c.workers[0].pid,
              f"workers: {ws}")
        for key in ("host", "assignment", "samples_per_s", "last_seen_ms_ago"):
            check(key in ws[0], f"workers lacks {key}")
        r = c.ctl("pause")
        check("paused" in r.stdout, f"pause said {r.stdout!r}")
        check(c.status()["paused"] is True, "status does not show paused")
        time.sleep(1.0)     # let an assignment in flight finish
        n = c.status()["results"]
        time.sleep(1.5)
        check(c.status()["results"] == n, "results kept coming while paused")
        check(not any(a["busy"] for a in c.status()["agents"]), "agents busy while paused")
        c.ctl("resume")
        c.wait_results(n + 3)
        # watch prints plain lines when stdout is not a tty.
        r = c.ctl("watch", "--seconds", "1", "--interval", "0.5")
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        check(len(lines) >= 2 and all("results" in l and "samples/s" in l for l in lines),
              f"watch output: {r.stdout!r}")
        check("\r" not in r.stdout and "\033" not in r.stdout, "watch wrote terminal controls to a pipe")
    finally:
        c.stop()


def test_admin_commands_need_token():
    """With an admin token configured, admin commands need it;
    read-only commands do not."""
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3), name="admin")
    try:
        token = os.path.join(c.dir, "admin.token")
        with open(token, "w") as f:
            f.write("s3cret-token-0123456789\n")
        with open(c.cfg, "a") as f:
            f.write(f"\n[security]\nadmin_token_file = {token}\n")
        c.start_pbtd()
        r = c.ctl("pause", check_rc=False)
        check(r.returncode == 1 and "admin" in r.stderr, f"pause without token: {r.returncode} {r.stderr!r}")
        check(c.status()["paused"] is False, "refused pause still paused")
        r = subprocess.run([harness.PBTCTL, "--endpoint", c.cep, "--token-file", token, "pause"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, f"pause with token failed: {r.stderr!r}")
        check(c.status()["paused"] is True, "pause with token did not pause")
    finally:
        c.stop()


def test_eval_rate_matches_rate_but_do_not_train():
    """eval_rate = 1: every assignment is evaluation-only: ratings and match
    history move, weights, frames and versions do not."""
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3) + "eval_rate = 1\n", name="evalrate")
    try:
        c.start_pbtd()
        before = {a["id"]: a for a in c.status()["agents"]}
        c.start_worker()
        c.wait_results(8)
        c.stop(keep=True)
        rows = c.sql("SELECT id, frames, version, matches, rating FROM agents")
        check(all(f == 0 for _, f, _, _, _ in rows), f"frames grew in evaluation-only matches: {rows}")
        check(all(v == before[f"agt_{i}"]["version"] for i, _, v, _, _ in rows), "versions moved")
        check(sum(m for _, _, _, m, _ in rows) > 0, "no matches recorded")
        check(any(abs(r) > 0 for *_, r in rows), "ratings never moved")
        kinds = c.sql("SELECT DISTINCT kind FROM assignments")
        check(kinds == [("eval",)], f"assignment kinds: {kinds}")
        trained = c.sql("SELECT COUNT(*) FROM assignment_seats WHERE train != 0")[0][0]
        check(trained == 0, f"{trained} seats were asked to train")
    finally:
        c.stop()


def test_unreachable_pbtctl():
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3), name="noserver")
    try:
        r = c.ctl("status", timeout=500, check_rc=False)
        check(r.returncode == 3, f"pbtctl exit code {r.returncode} when pbtd is down, expected 3")
        check("no reply" in r.stderr, f"unclear message: {r.stderr!r}")
    finally:
        c.stop()


def test_pfsp_frozen_snapshots():
    """PFSP over frozen past snapshots: with snapshot_prob = 1 and t_select = 1,
    evolutions freeze past selves and later matches play against them."""
    keep = 2
    cfg = FAST_CONFIG.format(size=4, t_select=1.0) + f"matchmaking = pfsp\nsnapshot_prob = 1\nfrozen_keep = {keep}\n"
    c = Cluster(cfg, name="pfsp")
    c.start_pbtd()
    c.start_worker()

    def record(seg, off, length):
        # The state store's record (docs/schema.md): read from its segment file.
        with open(os.path.join(c.db + "-states", "seg-%08x.pbts" % seg), "rb") as f:
            f.seek(off)
            data = f.read(length)
        check(len(data) == length, f"record seg {seg} off {off} is cut short")
        return data

    def frozen_blobs():
        return {(a, v): hashlib.sha256(record(seg, off, n)).hexdigest() for (a, v, seg, off, n) in c.sql(
            "SELECT s.agent_id, s.version, s.seg, s.off, s.len FROM snapshots s "
            "JOIN frozen f ON f.agent_id = s.agent_id AND f.version = s.version")}
    try:
        c.wait_results(12)
        first = frozen_blobs()
        check(first, "no frozen snapshot after 12 results with t_select = 1")
        st = c.wait_results(40)
        later = frozen_blobs()
        for key in first.keys() & later.keys():
            check(first[key] == later[key], f"frozen snapshot agt_{key[0]}@{key[1]} changed")
        check(st["frozen_snapshots"] > 0, f"status frozen_snapshots = {st['frozen_snapshots']}")
        c.stop(keep=True)

        n_frozen = c.sql("SELECT COUNT(*) FROM frozen")[0][0]
        evo = c.sql("SELECT COUNT(*) FROM evolutions")[0][0]
        over = c.sql("SELECT agent_id, COUNT(*) FROM frozen GROUP BY agent_id HAVING COUNT(*) > ?", (keep,))
        check(not over, f"agents over frozen_keep = {keep}: {over}")
        # Each evolution froze one past self; the oldest beyond the cap were forgotten.
        per_agent = c.sql("SELECT agent_id, COUNT(*) FROM evolutions GROUP BY agent_id")
        expect = sum(min(n, keep) for (_, n) in per_agent)
        check(n_frozen == expect, f"{n_frozen} frozen rows, expected {expect} from {evo} evolutions")
        flagged = set(c.sql("SELECT agent_id, version FROM snapshots WHERE frozen = 1"))
        check(flagged == set(c.sql("SELECT agent_id, version FROM frozen")),
              "snapshots.frozen and the frozen table disagree")
        seats = c.sql("SELECT COUNT(*) FROM assignment_seats s JOIN assignments a ON a.id = s.assignment_id "
                      "WHERE s.frozen = 1 AND a.state = 'done' AND s.train = 0")[0][0]
        check(seats > 0, "no applied assignment had a frozen seat")
        bad = c.sql("SELECT COUNT(*) FROM assignment_seats WHERE frozen = 1 AND train != 0")[0][0]
        check(bad == 0, f"{bad} frozen seats train")
        fm = c.sql("SELECT COUNT(*) FROM match_seats WHERE frozen_version IS NOT NULL")[0][0]
        check(fm > 0, "no match row against a frozen snapshot")
        logs = "".join(open(os.path.join(c.dir, f)).read() for f in os.listdir(c.dir) if f.startswith("pbtd"))
        check("stale_version" not in logs, "a result was refused as stale")
        # Live counters count live seats only.
        for (aid, matches) in c.sql("SELECT id, matches FROM agents"):
            rows = c.sql("SELECT COUNT(*) FROM match_seats WHERE agent_id = ? AND frozen_version IS NULL",
                         (aid,))[0][0]
            check(rows == matches, f"agt_{aid}: counter says {matches} matches, history has {rows}")
        for (aid, ver, m) in c.sql("SELECT agent_id, version, matches FROM frozen"):
            rows = c.sql("SELECT COUNT(*) FROM match_seats WHERE agent_id = ? AND frozen_version = ?",
                         (aid, ver))[0][0]
            check(rows == m, f"agt_{aid}@{ver}: frozen counter {m}, history {rows}")
        # Elo stays zero-sum over live + frozen: every episode moves the live
        # agent and its opponent (live or snapshot) by opposite amounts, a
        # snapshot starts at its agent's rating at freeze time, and a
        # forgotten snapshot's drift is kept in meta, so
        # sum(agents.rating) + sum(frozen.rating - rating_at_freeze)
        #   + frozen_evicted_drift == N * elo_initial (0).
        live = c.sql("SELECT SUM(rating) FROM agents")[0][0]
        drift = c.sql("SELECT COALESCE(SUM(rating - rating_at_freeze), 0) FROM frozen")[0][0]
        ev = c.sql("SELECT value FROM meta WHERE key = 'frozen_evicted_drift'")
        evicted = float(ev[0][0]) if ev else 0.0
        total = live + drift + evicted
        check(abs(total) < 1e-6, f"not zero-sum: live {live} + frozen drift {drift} + evicted {evicted} = {total}")
        check(abs(drift) + abs(evicted) > 0, "frozen ratings never moved")
        print(f"pfsp: results={st['results']} evolutions={evo} frozen={n_frozen} frozen_seats={seats} "
              f"frozen_match_rows={fm} live_sum={live:.6f} frozen_drift={drift:.6f} evicted={evicted:.6f}")
        ok = c.sql("PRAGMA integrity_check")[0][0]
        check(ok == "ok", f"integrity_check: {ok}")
    finally:
        c.stop()


if __name__ == "__main__":
    run_tests([test_loop_trains_and_records, test_t_select_zero_never_evolves,
               test_eligibility_frames_respected, test_history_and_lineage, test_soccer_population,
               test_soccer_scripted_training_matches, test_lineage_keep_serves_donor_versions,
               test_replay_scripts_without_pbtd, test_bad_config_refused,
               test_sighup_reloads_pbt_settings, test_pause_resume_workers_watch,
               test_admin_commands_need_token, test_eval_rate_matches_rate_but_do_not_train,
               test_unreachable_pbtctl, test_pfsp_frozen_snapshots])
