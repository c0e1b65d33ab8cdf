"""Training statistics from the worker to pbtd, pbtctl and the report, with
real pbtd, pbt-worker and pbtctl processes.

A small RPS population trains with one worker that logs, at debug level,
every statistic it puts in a result (full precision). Then:
  - what pbtd stores (pbtctl curves --csv) equals what the worker computed,
    result by result, with the count each mean is over as the weight, and
    there is one point per result the agent trained in;
  - --json, --metric and unknown metrics behave;
  - export-run writes one CSV per series that csv and pandas read, with
    every point, and evolutions.csv with every evolution;
  - status shows each agent's recent return and entropy, recomputed here
    from the points;
  - the report has one learning curve per agent and metric, and each
    evolution of an agent on every one of its charts.
Run with /usr/bin/python3 (pandas). Standard library + pandas only.
"""
import csv
import io
import json
import math
import os
import re
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
from harness import check  # noqa: E402

STATS = ["game_return", "shaped_return", "episode_length", "policy_loss", "value_loss", "entropy",
         "approx_kl", "clip_fraction", "explained_variance", "grad_norm", "lr"]
PER_EPISODE = {"game_return", "shaped_return", "episode_length"}
REPORT_METRICS = ["game_return", "entropy", "approx_kl", "value_loss", "explained_variance"]
SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"

cluster = None
tmp = tempfile.mkdtemp(prefix="pbt-stats-")


def setup():
    global cluster
    # Per-episode Elo with K 8: ratings spread fast enough for evolutions to happen (and be marked).
    cluster = harness.Cluster(harness.FAST_CONFIG.format(size=4, t_select=0.45) + "rating = episode\nelo_k = 8\n", name="stats")
    cluster.start_pbtd()
    cluster.start_worker("--log-level", "debug")
    cluster.wait_results(40, timeout=90)
    cluster.ctl("pause")
    # The assignment in flight still lands; wait until nothing is leased.
    deadline = time.time() + 30
    while cluster.status().get("assignments_in_flight", 0) and time.time() < deadline:
        time.sleep(0.2)
    check(cluster.status().get("assignments_in_flight", 0) == 0, "an assignment is still in flight")


def worker_stats():
    """{agent: {metric: [(value, weight), ...]}} in result order, for the
    results pbtd acknowledged, from the worker's seat_stats lines."""
    with open(cluster.workers[0].log_path) as f:
        lines = f.read().splitlines()
    acked = {int(m.group(1)) for m in (re.search(r"event=result_acked assignment=(\d+)", ln) for ln in lines) if m}
    out = {}
    for ln in lines:
        if "event=seat_stats" not in ln:
            continue
        kv = dict(re.findall(r"(\w+)=(\S+)", ln))
        if int(kv["assignment"]) not in acked:
            continue
        agent = f"agt_{kv['agent']}"
        for m in STATS:
            if m in kv:
                w = kv["episodes"] if m in PER_EPISODE else kv["updates"]
                if m == "explained_variance":
                    w = None        # over iterations; not logged, checked in C tests
                out.setdefault(agent, {}).setdefault(m, []).append((float(kv[m]), w))
    return out


def curves_csv(*args):
    r = cluster.ctl("curves", *args, "--csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    check(rows, "curves --csv printed no rows")
    return rows


def test_stored_equals_computed():
    ws = worker_stats()
    check(len(ws) == 4, f"statistics from {sorted(ws)} only")
    rows = curves_csv()
    stored = {}
    for row in rows:
        check(int(row["level"]) == 0 and int(row["samples"]) == 1, f"a merged point in a short run: {row}")
        stored.setdefault(row["agent"], {}).setdefault(row["metric"], []).append(row)
    for agent, metrics in ws.items():
        for m, points in metrics.items():
            got = stored.get(agent, {}).get(m, [])
            # One point per result the agent trained in, oldest first.
            check(len(got) == len(points), f"{agent} {m}: {len(got)} points stored, {len(points)} results")
            for k, ((v, w), row) in enumerate(zip(points, got)):
                check(float(row["value"]) == v, f"{agent} {m}[{k}]: stored {row['value']}, worker {v!r}")
                if w is not None:
                    check(float(row["weight"]) == float(w), f"{agent} {m}[{k}]: weight {row['weight']}, count {w}")
                check(row["label"] == "population", row)
            # Points are in time order and carry the population's frames.
            ts = [int(r["t_ms"]) for r in got]
            fr = [int(r["frames"]) for r in got]
            check(ts == sorted(ts) and fr == sorted(fr) and fr[0] > 0, f"{agent} {m}: t {ts} frames {fr}")
    # rps: every episode is 10 decisions, no shaping.
    for row in rows:
        if row["metric"] == "episode_length":
            check(float(row["value"]) == 10.0, row)
        if row["metric"] == "shaped_return":
            check(float(row["value"]) == 0.0, row)


def test_curves_json_and_metric():
    j = json.loads(cluster.ctl("curves", "agt_1", "--metric", "entropy", "--json").stdout)
    check(list(j["agents"]) == ["agt_1"], j.keys())
    check(list(j["agents"]["agt_1"]) == ["entropy"], list(j["agents"]["agt_1"]))
    e = j["agents"]["agt_1"]["entropy"]
    n = len(e["value"])
    check(n > 0 and all(len(e[c]) == n for c in ("t_ms", "frames", "weight", "samples")), e.keys())
    check(all(0 <= v <= math.log(3) + 1e-6 for v in e["value"]), e["value"])
    last3 = json.loads(cluster.ctl("curves", "agt_1", "--metric", "entropy", "--last", "3", "--json").stdout)
    check(last3["agents"]["agt_1"]["entropy"]["value"] == e["value"][-3:], "--last 3 is not the newest 3")
    r = cluster.ctl("curves", "agt_1", "--metric", "no_such_metric", check_rc=False)
    check(r.returncode == 1 and "no series 'no_such_metric'" in r.stderr, (r.returncode, r.stderr))
    r = cluster.ctl("curves", "agt_77", check_rc=False)
    check(r.returncode == 1 and "agt_77" in r.stderr, (r.returncode, r.stderr))
    r = cluster.ctl("curves", "--csv", "--json", check_rc=False)
    check(r.returncode == 2, r.returncode)


def test_export_run():
    out = os.path.join(tmp, "run")
    cluster.ctl("export-run", out)
    rows = curves_csv()
    for m in STATS:
        path = os.path.join(out, f"{m}.csv")
        check(os.path.exists(path), f"{path} missing")
        with open(path, newline="") as f:
            got = list(csv.DictReader(f))
        want = [r for r in rows if r["metric"] == m]
        check([(r["agent"], r["value"], r["t_ms"]) for r in got] == [(r["agent"], r["value"], r["t_ms"]) for r in want],
              f"{m}.csv differs from curves --csv")
        import pandas as pd
        df = pd.read_csv(path)
        check(len(df) == len(want) and {"agent", "t_ms", "seconds", "frames", "value"} <= set(df.columns),
              f"pandas read {df.shape} {list(df.columns)}")
        check(df["seconds"].min() >= 0, "seconds before the start of the run")
    # The population's own series (throughput, appended every 10 s) too.
    r = cluster.ctl("curves", "population", "--csv", check_rc=False)
    pop = list(csv.DictReader(io.StringIO(r.stdout))) if r.returncode == 0 else []
    path = os.path.join(out, "samples_per_s.csv")
    if pop:
        with open(path, newline="") as f:
            got = list(csv.DictReader(f))
        check([(g["agent"], g["value"]) for g in got] == [("population", p["value"]) for p in pop],
              "samples_per_s.csv differs from curves population")
    else:
        check(not os.path.exists(path), "samples_per_s.csv without population points")
    with open(os.path.join(out, "evolutions.csv"), newline="") as f:
        evs = list(csv.DictReader(f))
    n_evo = sum(len(json.loads(cluster.ctl("lineage", a, "--json").stdout)["evolutions"])
                for a in ("agt_0", "agt_1", "agt_2", "agt_3"))
    check(len(evs) == n_evo, f"evolutions.csv has {len(evs)} rows, lineage {n_evo}")
    check(cluster.ctl("export-run", check_rc=False).returncode == 2, "export-run without DIR")


def recent(rows, agent, metric, n=20):
    pts = [r for r in rows if r["agent"] == agent and r["metric"] == metric][-n:]
    newer = pts[len(pts) // 2:]
    return sum(float(r["value"]) * float(r["weight"]) for r in newer) / sum(float(r["weight"]) for r in newer)


def test_status_columns():
    text = cluster.ctl("status").stdout
    head = text.splitlines()[0].split()
    check(head[-4:] == ["return", "trend", "entropy", "trend"], head)
    rows = curves_csv()
    for line in text.splitlines()[1:5]:
        agent = line.split()[0]
        m = re.search(r"(-?\d+\.\d+) (up|down|flat) \S+\s+(-?\d+\.\d+) (up|down|flat) ", line)
        check(m, f"no learning columns in: {line}")
        check(abs(float(m.group(1)) - recent(rows, agent, "game_return")) <= 5.1e-4,
              f"{line}: return {recent(rows, agent, 'game_return')}")
        check(abs(float(m.group(3)) - recent(rows, agent, "entropy")) <= 5.1e-5,
              f"{line}: entropy {recent(rows, agent, 'entropy')}")


def test_report_learning_curves():
    out = os.path.join(tmp, "report.html")
    cluster.ctl("report", "-o", out)
    root = ET.parse(out).getroot()
    curves = [g for g in root.iter(f"{SVG}g") if g.get("class") == "curve"]
    # One curve per agent and metric on each x axis (time, population frames).
    pairs = [(g.get("data-agent"), g.get("data-metric"), g.get("data-x")) for g in curves]
    want = [(f"agt_{i}", m, x) for i in range(4) for m in REPORT_METRICS for x in ("time", "frames")]
    check(sorted(pairs) == sorted(want), f"curves {sorted(pairs)}")
    for g in curves:
        lines = g.findall(f"{SVG}polyline")
        check(len(lines) == 2, f"raw and smoothed lines expected, {len(lines)}")
        check(len(lines[0].get("points").split()) >= 6, "a curve with hardly any points")
    # Every evolution of an agent on each of its five charts.
    total = 0
    for i in range(4):
        agent = f"agt_{i}"
        n_evo = len([e for e in json.loads(cluster.ctl("lineage", agent, "--json").stdout)["evolutions"]])
        rows = [d for d in root.iter(f"{XHTML}div") if d.get("class") == "lrow" and d.get("data-agent") == agent]
        check(sorted(r.get("data-x") for r in rows) == ["frames", "time"], f"{len(rows)} rows for {agent}")
        for row in rows:
            marks = [ln for ln in row.iter(f"{SVG}line") if ln.get("class") == "evo"]
            check(len(marks) == 5 * n_evo, f"{agent} ({row.get('data-x')}): {len(marks)} evolution marks, "
                  f"{n_evo} evolutions x 5 charts")
        total += n_evo
    check(total > 0, "no evolution happened, so none could be marked")
    check(harness.check_tick_labels_fit(root) > 0, "no y tick labels found")
    # Without smoothing: the points only.
    raw = os.path.join(tmp, "raw.html")
    cluster.ctl("report", "-o", raw, "--smooth", "0")
    root = ET.parse(raw).getroot()
    check(all(len(g.findall(f"{SVG}polyline")) == 1 for g in root.iter(f"{SVG}g") if g.get("class") == "curve"),
          "--smooth 0 still draws a smoothed line")
    check(cluster.ctl("report", "-o", raw, "--smooth", "1", check_rc=False).returncode == 2, "--smooth 1")


if __name__ == "__main__":
    try:
        setup()
        harness.run_tests([test_stored_equals_computed, test_curves_json_and_metric, test_export_run,
                           test_status_columns, test_report_learning_curves])
    finally:
        if cluster:
            cluster.stop()
