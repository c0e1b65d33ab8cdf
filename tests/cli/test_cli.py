"""pbtctl export / eval / report against a real pbtd and pbt-worker.

One small RPS population trains for a few seconds; then:
  - export writes a safetensors file that PyTorch loads (strict) and whose
    policy and value match the worker's own forward pass within 1e-5
    (scripts/check-export.py), with the sizes the architecture implies;
  - eval against the uniform "random" script reproduces the game's exact
    outcome distribution (worked out below), and its intervals are the
    Wilson / t intervals recomputed here;
  - report writes one well-formed, self-contained page with every agent's
    series, and renders identically from its saved data; a synthetic
    bundle with evolutions and metrics draws every evolution.
Run with /usr/bin/python3 (torch). Standard library + torch only.
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import mpack  # noqa: E402
from harness import check  # noqa: E402

CHECK_EXPORT = os.path.join(harness.SOURCE, "scripts", "check-export.py")
SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"

cluster = None
tmp = tempfile.mkdtemp(prefix="pbt-cli-")


def setup():
    global cluster
    cluster = SanitizedCluster(harness.FAST_CONFIG.format(size=4, t_select=0.3), name="cli")
    cluster.start_pbtd()
    cluster.start_worker()
    cluster.wait_results(30, timeout=60)
    # Freeze the population so every command sees the same weights.
    cluster.ctl("pause")


class SanitizedCluster(harness.Cluster):
    """Every pbtctl run also fails the test on a sanitizer report (the
    sanitizer build exits 1, which some tests expect for other reasons)."""

    def ctl(self, *args, **kw):
        r = super().ctl(*args, **kw)
        check("Sanitizer" not in r.stderr and "runtime error" not in r.stderr,
              f"pbtctl {' '.join(args)}: {r.stderr}")
        return r


def agents():
    return [a["id"] for a in cluster.status()["agents"]]


def test_export_roundtrip():
    obs = os.path.join(tmp, "obs.txt")
    probs = os.path.join(tmp, "probs.txt")
    out = os.path.join(tmp, "agt_1.safetensors")
    # RPS observations are one-hot; include off-distribution rows too so a
    # swapped weight or a missing bias cannot hide.
    rows = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.3, -1.2, 2.5], [-4, 0.5, 1], [0, 0, 0]]
    with open(obs, "w") as f:
        for r in rows:
            f.write(" ".join(str(x) for x in r) + "\n")
    cluster.ctl("export", "agt_1", "-o", out, "--probe-obs", obs, "--probe-out", probs)
    # Sizes from the architecture alone: 3 -> 64 -> 64 -> 3 actor, -> 1 critic.
    n_params = (3 * 64 + 64 + 64 * 64 + 64 + 64 * 3 + 3) + (3 * 64 + 64 + 64 * 64 + 64 + 64 + 1)
    with open(out, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    check(n % 8 == 0, f"header length {n} not a multiple of 8")
    check(len(blob) == 8 + n + 4 * n_params, f"file has {len(blob)} bytes, expected {8 + n + 4 * n_params}")
    header = json.loads(blob[8:8 + n])
    meta = header["__metadata__"]
    check(meta["agent"] == "agt_1" and meta["env"] == "rps", f"metadata {meta}")
    check("one-hot" in meta["observation"], meta["observation"])
    check(json.loads(meta["actor_layers"]) == [3, 64, 64, 3], meta["actor_layers"])
    check("lr" in json.loads(meta["hyperparameters"]), meta["hyperparameters"])
    check(header["actor.2.weight"]["shape"] == [64, 64], header["actor.2.weight"])
    check(header["critic.4.bias"]["data_offsets"][1] == 4 * n_params, header["critic.4.bias"])
    r = subprocess.run(["/usr/bin/python3", CHECK_EXPORT, out, "--obs", obs, "--expect", probs, "--tol", "1e-5"],
                       capture_output=True, text=True, timeout=60)
    print(r.stdout.strip().splitlines()[-2])
    check(r.returncode == 0, f"check-export failed:\n{r.stdout}{r.stderr}")
    # --json
    j = json.loads(cluster.ctl("export", "agt_1", "-o", out, "--json").stdout)
    check(j["params"] == n_params and j["agent"] == "agt_1", j)


def test_export_errors():
    check(cluster.ctl("export", "agt_1", check_rc=False).returncode == 2, "export without -o must be a usage error")
    r = cluster.ctl("export", "agt_99", "-o", os.path.join(tmp, "x"), check_rc=False)
    check(r.returncode == 1, f"unknown agent: rc {r.returncode}")
    r = subprocess.run([harness.PBTCTL, "--endpoint", f"ipc://{tmp}/nobody.sock", "--timeout", "200",
                        "export", "agt_0", "-o", os.path.join(tmp, "y")], capture_output=True, timeout=30)
    check(r.returncode == 3, f"no pbtd: rc {r.returncode}")


def rps_exact(probs, episode_len=10):
    """Best-response value against a policy table probs[opp_prev][move]
    (obs_both = 0), by the dynamic program over the responder's previous
    move, written out here from env_rps's rules."""
    v = [0.0, 0.0, 0.0]
    for _ in range(episode_len):
        v = [max(sum(probs[b][x] * ((0, 1, -1)[(m - x) % 3] + v[m]) for x in range(3))
                 for m in range(3)) for b in range(3)]
    return v[0]


def payoff_gap(weights):
    """The mixture's gap in the meta-game read straight from the payoff
    table: max over players i of sum_j A_ij w_j, A = (M - M^T) / 2, M the
    mean score (recent window, else whole run)."""
    rows = cluster.sql("SELECT agent_id, version, opp_id, opp_version, episodes, score, "
                       "cur_episodes + prev_episodes, cur_score + prev_score FROM payoff")
    name = lambda a, v: f"agt_{a}" + (f"@{v}" if v else "")
    m = {}
    for a, v, o, ov, n, sc, rn, rsc in rows:
        if rn:
            m[(name(a, v), name(o, ov))] = rsc / rn
        elif n:
            m[(name(a, v), name(o, ov))] = sc / n
    players = list(weights)
    return max(sum(0.5 * (m.get((i, j), 0) - m.get((j, i), 0)) * weights[j] for j in players)
               for i in players)


def test_nash_and_exploit():
    nash = json.loads(cluster.ctl("nash", "--json").stdout)
    weights = {p["id"]: p["weight"] for p in nash["players"]}
    check(abs(sum(weights.values()) - 1) < 1e-9 and min(weights.values()) >= 0, f"weights {weights}")
    check(payoff_gap(weights) <= 1e-6, f"the mixture is not an equilibrium: gap {payoff_gap(weights)}")
    live = {k: w for k, w in weights.items() if "@" not in k}
    rec = nash["recommended"]
    check(rec in live and live[rec] >= max(live.values()) - 1e-9, f"recommended {rec}, weights {live}")
    st = cluster.status()
    check(st["recommended"] == rec, f"status recommends {st['recommended']}, nash {rec}")
    for a in st["agents"]:
        if a["id"] in weights:
            check(abs(a["nash_weight"] - weights[a["id"]]) < 1e-12, f"{a['id']}: status and nash differ")
    text = cluster.ctl("status").stdout
    check(f"{rec} " in text and "<- recommended" in text, text)

    # Exact exploitability against the worker's own policy table.
    obs, out = os.path.join(tmp, "eye.txt"), os.path.join(tmp, "eye-probs.txt")
    with open(obs, "w") as f:
        f.write("1 0 0\n0 1 0\n0 0 1\n")
    cluster.ctl("export", "agt_2", "-o", os.path.join(tmp, "a2.safetensors"), "--probe-obs", obs,
                "--probe-out", out)
    with open(out) as f:
        probs = [[float(x) for x in line.split()[:3]] for line in f]
    ex = json.loads(cluster.ctl("exploit", "agt_2", "--exact", "--json").stdout)
    check(abs(ex["exact"] - rps_exact(probs)) < 1e-4, f"exact {ex['exact']}, recomputed {rps_exact(probs)}")

    # A small RL best response: a curve, an interval, never far above exact.
    j = json.loads(cluster.ctl("exploit", "agt_2", "--frames", "40960", "--points", "4", "--episodes", "400",
                               "--json", timeout=30000).stdout)
    check(len(j["curve"]) == 4 and j["curve"][-1]["frames"] == j["frames"] >= 40960, j["curve"])
    lo, hi = j["best_response"]["ci95"]
    check(lo <= j["best_response"]["mean_score"] <= hi and j["best_response"]["episodes"] == 400, j)
    check(lo <= j["exact"] + 0.3, f"best response {lo}..{hi} beats the exact value {j['exact']}")

    # Bad input: clear errors, and pbtd keeps serving.
    r = cluster.ctl("exploit", "agt_2", "--frames", "0", check_rc=False)
    check(r.returncode == 2 and "budget" in r.stderr, r.stderr)
    r = cluster.ctl("exploit", "agt_2@999", "--exact", check_rc=False)
    check(r.returncode == 1 and "agt_2" in r.stderr, r.stderr)
    r = cluster.ctl("exploit", "agt_99", check_rc=False)
    check(r.returncode == 1 and "agt_99" in r.stderr, r.stderr)
    check(cluster.status()["results"] > 0, "pbtd stopped serving")

    # The mixture as one file: every policy loads in PyTorch, and policy 0
    # is the heaviest player's own forward pass.
    mix = os.path.join(tmp, "mix.safetensors")
    e = json.loads(cluster.ctl("export", "--nash", "-o", mix, "--json").stdout)
    top = e["mixture"][0]
    name = f"{top['agent']}@{top['version']}"
    check(abs(top["weight"] - max(weights.values())) < 1e-6, f"{e} vs {weights}")
    check(abs(sum(m["weight"] for m in e["mixture"]) - 1) < 1e-6, e)
    cluster.ctl("export", name, "-o", os.path.join(tmp, "top.safetensors"), "--probe-obs", obs, "--probe-out", out)
    r = subprocess.run(["/usr/bin/python3", CHECK_EXPORT, mix, "--policy", "0", "--obs", obs, "--expect", out],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and "OK" in r.stdout, f"{name}: {r.stdout}{r.stderr}")


def test_nash_without_games():
    fresh = SanitizedCluster(harness.FAST_CONFIG.format(size=3, t_select=0.3), name="cli-nogames")
    try:
        fresh.start_pbtd()
        r = fresh.ctl("nash", check_rc=False)
        check(r.returncode == 1 and "no games" in r.stderr, r.stderr)
        check(fresh.status()["recommended"] is None, "a recommendation without games")
        # The table says "-" where there is no Nash weight yet, never nan.
        text = fresh.ctl("status").stdout
        rows = [l for l in text.splitlines() if l.startswith("agt_")]
        check(len(rows) == 3 and all(l.split()[2] == "-" and l.split()[3] == "-" for l in rows),
              f"nash columns before any game:\n{text}")
        check("nan" not in text.lower(), f"status prints nan:\n{text}")
    finally:
        fresh.stop()


def wilson(k, n, z=1.959963984540054):
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def test_eval_vs_random():
    # Against a uniform random opponent every round is +1/0/-1 with
    # probability 1/3 each, whatever the agent plays. An episode is 10
    # rounds: score mean 0, variance 10 * 2/3; a draw needs the sum to be 0,
    # P = (central trinomial coefficient of 10) / 3^10 = 8953 / 59049.
    n = 6000
    j = json.loads(cluster.ctl("eval", "agt_0", "--vs", "random", "--episodes", str(n), "--json").stdout)
    check(j["episodes"] == n and j["opponent_kind"] == "script", j)
    w, d, l = j["win"]["count"], j["draw"]["count"], j["loss"]["count"]
    check(w + d + l == n, f"counts {w}+{d}+{l} != {n}")
    p_draw = 8953 / 59049
    p_win = (1 - p_draw) / 2
    for name, k, p in (("draw", d, p_draw), ("win", w, p_win), ("loss", l, p_win)):
        sigma = math.sqrt(p * (1 - p) / n)
        check(abs(k / n - p) < 4 * sigma, f"{name} rate {k / n:.4f}, expected {p:.4f} +- {4 * sigma:.4f}")
        lo, hi = wilson(k, n)
        got = j[name]["ci95"]
        check(abs(got[0] - lo) < 1e-5 and abs(got[1] - hi) < 1e-5, f"{name} CI {got}, Wilson {lo, hi}")
    sd = math.sqrt(20 / 3)
    check(abs(j["mean_score"]) < 4 * sd / math.sqrt(n), f"mean {j['mean_score']}")
    check(abs(j["score_sd"] - sd) < 0.1, f"sd {j['score_sd']}, expected {sd:.3f}")
    half = 1.96 * j["score_sd"] / math.sqrt(n)      # t ~ normal at this n
    lo, hi = j["mean_ci95"]
    check(abs((hi - lo) / 2 - half) < 1e-3 * half + 1e-6, f"mean CI {lo, hi}, half width {half}")
    print(f"vs random: win {w} draw {d} loss {l} of {n}; expected rates {p_win:.4f}/{p_draw:.4f}/{p_win:.4f}")


def test_eval_vs_agent():
    # An agent against itself: the game is symmetric, so the mean is 0.
    n = 4000
    j = json.loads(cluster.ctl("eval", "agt_2", "--vs", "agt_2", "--episodes", str(n), "--json").stdout)
    check(j["opponent_kind"] == "agent" and j["episodes"] == n, j)
    check(abs(j["mean_score"]) < 4 * j["score_sd"] / math.sqrt(n), f"self-play mean {j['mean_score']}")
    check(abs(j["win"]["rate"] - j["loss"]["rate"]) < 4 * math.sqrt(0.5 / n) * 1.5,
          f"self-play win {j['win']['rate']} loss {j['loss']['rate']}")
    # Table output and a few episodes (fewer than one env batch).
    r = cluster.ctl("eval", "agt_0", "--vs", "agt_3", "--episodes", "7")
    check("7 episodes" in r.stdout and "win rate" in r.stdout, r.stdout)
    r = cluster.ctl("eval", "agt_0", "--vs", "nobody", "--episodes", "7", check_rc=False)
    check(r.returncode == 1 and "script" in r.stderr, f"rc {r.returncode}: {r.stderr}")
    check(cluster.ctl("eval", "agt_0", "--episodes", "7", check_rc=False).returncode == 2, "no --vs")


SOCCER_CONFIG = """
[population]
size = 4
env = soccer
preset = seed

[env]
episode_steps = 150

[ppo]
n_envs = 4
n_steps = 32
iterations = 1
epochs = 1
minibatches = 2
"""


def test_eval_soccer():
    # 2 v 2: the agent takes both seats of team 0. A goal gives +1 to every
    # seat of the scoring team and -1 to the other, no goal 0, so the team
    # score is +1/0/-1 and the mean score must be (wins - losses) / n.
    sc = SanitizedCluster(SOCCER_CONFIG, name="cli-soccer")
    try:
        sc.start_pbtd()
        sc.start_worker()
        sc.wait_results(1, timeout=60)
        sc.ctl("pause")
        for vs in ("chaser", "random", "agt_1"):
            n = 120
            j = json.loads(sc.ctl("eval", "agt_0", "--vs", vs, "--episodes", str(n), "--json").stdout)
            w, d, l = j["win"]["count"], j["draw"]["count"], j["loss"]["count"]
            check(j["env"] == "soccer" and w + d + l == n, j)
            check(abs(j["mean_score"] - (w - l) / n) < 1e-6, f"vs {vs}: mean {j['mean_score']}, W-L {w - l}")
            print(f"soccer agt_0 vs {vs}: W {w} D {d} L {l}")
        r = sc.ctl("eval", "agt_0", "--vs", "beat-last", "--episodes", "5", check_rc=False)
        check(r.returncode == 1, "beat-last is not a soccer script")
    finally:
        sc.stop()


def parse_report(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    root = ET.fromstring(text)      # well-formed XML, or this raises
    low = text.lower()
    check("<script" not in low and "<link" not in low and " src=" not in low, "report refers to outside resources")
    for attr in ("href", "src"):
        for el in root.iter():
            v = el.get(attr)
            check(v is None or v.startswith("#"), f"{el.tag} {attr}={v} is not a local anchor")
    return root, text


def groups(root, kind):
    return {g.get("data-agent") for g in root.iter(f"{SVG}g") if g.get("class") == kind}


def test_report_live():
    out = os.path.join(tmp, "report.html")
    data = os.path.join(tmp, "report.mp")
    r = cluster.ctl("report", "-o", out, "--save-data", data, "--json")
    check(json.loads(r.stdout)["bytes"] == os.path.getsize(out), r.stdout)
    root, text = parse_report(out)
    ids = agents()
    check(len(ids) == 4, ids)
    for kind in ("elo", "lineage-row"):
        check(groups(root, kind) == set(ids), f"{kind} series {groups(root, kind)} != {ids}")
    check(groups(root, "hparam") >= set(ids), f"hparam series {groups(root, 'hparam')}")
    rows = {tr.get("data-agent") for tr in root.iter(f"{XHTML}tr") if tr.get("data-agent")}
    check(rows == set(ids), rows)
    for section in ("elo", "hparams", "lineage", "winrate", "throughput"):
        check(f'id="{section}"' in text, f"section {section} missing")
    # Every off-diagonal matrix cell has a count; RPS episodes are pairs.
    cells = [td for td in root.iter(f"{XHTML}td") if td.get("title", "").startswith("W ")]
    check(len(cells) == 12, f"{len(cells)} matrix cells with matches, expected 4*3")
    # The saved data renders the same page.
    again = os.path.join(tmp, "again.html")
    cluster.ctl("report", "-o", again, "--data", data)
    with open(again, encoding="utf-8") as f:
        check(f.read() == text, "report from saved data differs")


def test_report_fixture():
    # Two agents; agt_1 evolved twice from agt_0; metrics say 500 samples/s.
    t0 = 1_700_000_000_000
    evs = [{"donor": "agt_0", "ts": t0 + 20000, "frames": 2000, "generation": 2},
           {"donor": "agt_0", "ts": t0 + 10000, "frames": 1000, "generation": 1}]
    bundle = {
        "generated_ms": t0 + 30000,
        "status": {"agents": [{"id": "agt_0", "rating": 0.5, "frames": 3000, "parent": None, "hparams": {"lr": 1e-3}},
                              {"id": "agt_1", "rating": -0.5, "frames": 3000, "parent": "agt_0", "hparams": {"lr": 2e-3}}],
                   "env": "rps"},
        "history": {"agt_0": {"hyperparameters": {"lr": [1e-3]}, "rating": [0.0, 0.25, 0.5], "step": [0]},
                    "agt_1": {"hyperparameters": {"lr": [4e-4, 1e-3, 2e-3]}, "rating": [0.0, -0.25, -0.5],
                              "step": [0, 1000, 2000]}},
        "lineage": {"agt_0": {"agent": "agt_0", "evolutions": []}, "agt_1": {"agent": "agt_1", "evolutions": evs}},
        "matches": [{"ts": t0 + 5000, "seats": [{"agent": "agt_0", "team": 0, "score": 3.0},
                                                 {"agent": "agt_1", "team": 1, "score": -3.0}]}],
        "metrics": [{"ts": t0 + 1000 * k, "samples": 500 * k} for k in range(0, 31, 5)],
    }
    data = os.path.join(tmp, "fixture.mp")
    with open(data, "wb") as f:
        f.write(mpack.packb(bundle))
    out = os.path.join(tmp, "fixture.html")
    cluster.ctl("report", "-o", out, "--data", data)
    root, text = parse_report(out)
    evo = [c for g in root.iter(f"{SVG}g") if g.get("class") == "hparam" and g.get("data-agent") == "agt_1"
           for c in g.iter(f"{SVG}circle")]
    check(len(evo) == 2, f"{len(evo)} evolution markers for agt_1, expected 2")
    arrows = [ln for g in root.iter(f"{SVG}g") if g.get("class") == "lineage" for ln in g.iter(f"{SVG}line")
              if ln.get("marker-end")]
    check(len(arrows) == 2, f"{len(arrows)} lineage arrows, expected 2")
    check("samples per second" in text, "throughput should come from metrics")
    # 500 samples/s everywhere: a flat line (every point has the same y).
    tp = [g for g in root.iter(f"{SVG}g") if g.get("class") == "throughput"][0]
    ys = {p.split(",")[1] for p in tp.find(f"{SVG}polyline").get("points").split()}
    check(len(ys) == 1, f"throughput points {ys}")
    # agt_0 beat agt_1 in the one match.
    cells = {td.get("title"): td.text for td in root.iter(f"{XHTML}td") if td.get("title")}
    check(cells.get("W 1, D 0, L 0") == "1.00" and cells.get("W 0, D 0, L 1") == "0.00", cells)
    check(harness.check_tick_labels_fit(root) > 0, "no y tick labels")
    # Ratings whose ticks are long (-0.0001 ... -0.0005) still fit left of the chart.
    bundle["history"]["agt_0"]["rating"] = [0.0, 0.00025, 0.0005]
    bundle["history"]["agt_1"]["rating"] = [0.0, -0.00025, -0.0005]
    with open(data, "wb") as f:
        f.write(mpack.packb(bundle))
    cluster.ctl("report", "-o", out, "--data", data)
    root, text = parse_report(out)
    check(">-0.000" in text, "the long tick labels are not in the report")
    check(harness.check_tick_labels_fit(root) > 0, "no y tick labels")


if __name__ == "__main__":
    try:
        setup()
        harness.run_tests([test_export_roundtrip, test_export_errors, test_eval_vs_random,
                           test_eval_vs_agent, test_eval_soccer, test_report_live, test_report_fixture,
                           test_nash_and_exploit, test_nash_without_games])
    finally:
        if cluster:
            cluster.stop()
