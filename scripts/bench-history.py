#!/usr/bin/env python3
"""Looking at a long run costs training nothing: the figures of
docs/scaling.md ("Looking at a long run"). Prints key=value lines.

1. Databases. A: the equivalent of a 1-hour default run (~16,500 results of
   3,264 episodes; made by pbtd itself under `pbt-bench load`, one
   107 KiB state per seat as the default model's). B: 10^7 episodes with the
   opt-in per-episode rows on: pbtd writes them under `pbt-bench load` for
   150 s (~3 results/s here: each result is ~10,000 row inserts), then
   SQL tops the rows up to 10^7 `matches` and 2x10^7 `match_seats` rows
   (TOPUP below; they are only read by retention and the upgrade).
2. On each, pbtd serves `pbtctl report`, `history`, `matches`, `lineage`
   and `status` (5 calls each; the slowest is printed) and pbtctl report's
   peak RSS is read from wait4.
3. Live load: pbtd on its embedded default config with two real workers,
   its database filled with a week of synthesized history (100,000
   results, every agent's series 12 levels deep; tests/integration/synth.py),
   30 s phases, each on a fresh pbtd: quiet, one call a second (report and
   history alternately), quiet, calls back to back, quiet; each phase with
   calls is compared with the quiet ones either side: samples/s, pbtd's
   assignment turnaround p99, the
   housekeeping slip, results resent (pbtd's error_sent code=duplicate,
   workers' no_ack) and control replies lost (ctl_reply_failed).

Usage: scripts/bench-history.py [build-dir] [--skip-b] [--live-only]
                                 [--phases quiet,queries_1s,quiet,queries,quiet]
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else
                        os.path.join(ROOT, "build"))
PBTD = os.path.join(BUILD, "daemon", "pbtd")
PBTCTL = os.path.join(BUILD, "cli", "pbtctl")
WORKER = os.path.join(BUILD, "worker", "pbt-worker")
BENCH = os.path.join(BUILD, "bench", "pbt-bench")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import synth  # noqa: E402


def out(**kv):
    print(" ".join(f"{k}={v}" for k, v in kv.items()), flush=True)


TOPUP = """
CREATE TEMP TABLE base AS SELECT MAX(id) AS m FROM matches;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n
                        WHERE i < 10000000 - (SELECT COUNT(*) FROM matches) - 1)
INSERT INTO matches (assignment_id, episode, ts)
  SELECT (SELECT MIN(id) FROM assignments) + i % 500, 3264 + i / 500, 0 FROM n;
INSERT INTO match_seats (match_id, slot, agent_id, team, score, rating_after, frozen_version)
  SELECT id, 0, id % 8, 0, 1.0, 0.0, NULL FROM matches WHERE id > (SELECT m FROM temp.base);
INSERT INTO match_seats (match_id, slot, agent_id, team, score, rating_after, frozen_version)
  SELECT id, 1, (id + 1) % 8, 1, -1.0, 0.0, NULL FROM matches WHERE id > (SELECT m FROM temp.base);
"""


def make_db(tmp, name, seconds, extra):
    """pbt-bench load until it stops; returns the kept directory."""
    r = subprocess.run(["nice", "-n", "5", BENCH, "load", "--population", "8", "--workers", "8",
                        "--episodes", "3264", "--state-kib", "107", "--seconds", str(seconds), "--keep",
                        "--tmpdir", tmp] + extra, capture_output=True, text=True)
    kept = re.search(r"kept (\S+)", r.stdout + r.stderr)
    res = re.search(r"^results=(\d+)", r.stdout, re.M)
    if not kept:
        sys.exit(f"pbt-bench load failed: {r.stdout}\n{r.stderr}")
    d = kept.group(1)
    out(db=name, results=res.group(1) if res else "?", dir=d)
    return d


class Pbtd:
    def __init__(self, d, cfg, db):
        self.dir, self.cep = d, f"ipc://{d}/hc.sock"
        self.wep = f"ipc://{d}/hw.sock"
        self.log = open(os.path.join(d, "hist-pbtd.log"), "w")
        args = [PBTD, "--db", db, "--worker-endpoint", self.wep, "--control-endpoint", self.cep]
        if cfg:
            args += ["--config", cfg]
        self.p = subprocess.Popen(args, stderr=self.log, stdout=subprocess.DEVNULL)
        self.workers = []
        for _ in range(600):
            if self.ctl("status", timeout=300).returncode == 0:
                return
            time.sleep(0.1)
        sys.exit("pbtd did not start")

    def ctl(self, *args, timeout=3000):
        return subprocess.run([PBTCTL, "--endpoint", self.cep, "--timeout", str(timeout)] + list(args),
                              capture_output=True, text=True)

    def status(self):
        return json.loads(self.ctl("status", "--json").stdout)

    def worker(self):
        log = open(os.path.join(self.dir, f"hist-worker-{len(self.workers)}.log"), "w")
        self.workers.append(subprocess.Popen([WORKER, "--connect", self.wep], stderr=log,
                                             stdout=subprocess.DEVNULL))

    def stop(self):
        for w in self.workers:
            w.send_signal(signal.SIGTERM)
        for w in self.workers:
            w.wait(timeout=30)
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=60)
        self.log.close()


def timed(p, args):
    """Wall time and peak RSS (MB) of one pbtctl call."""
    t = time.time()
    proc = subprocess.Popen([PBTCTL, "--endpoint", p.cep] + args, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    dt = time.time() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"pbtctl {' '.join(args)} failed: {proc.stderr.read().decode()}")
    return dt, ru.ru_maxrss / 1024


def queries(name, d, calls=5):
    db = os.path.join(d, "pbt.db")
    p = Pbtd(d, os.path.join(d, "pbtd.ini"), db)
    try:
        html = os.path.join(d, "report.html")
        for label, args in (("report", ["report", "-o", html]), ("history", ["history", "--json"]),
                            ("history_agent", ["history", "agt_0", "--json"]),
                            ("matches", ["matches", "--limit", "1000", "--json"]),
                            ("lineage", ["lineage", "agt_0", "--json"]), ("status", ["status", "--json"])):
            runs = [timed(p, args) for _ in range(calls)]
            out(db=name, cmd=label, max_s=f"{max(r[0] for r in runs):.3f}",
                median_s=f"{sorted(r[0] for r in runs)[calls // 2]:.3f}",
                peak_rss_mb=f"{max(r[1] for r in runs):.1f}")
    finally:
        p.stop()
    size = lambda f: os.path.getsize(f) if os.path.exists(f) else 0  # noqa: E731
    store = sum(size(os.path.join(db + "-states", f)) for f in os.listdir(db + "-states"))
    con = sqlite3.connect(db)
    counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("result_seats", "series_points", "payoff", "matches", "match_seats", "assignments")}
    con.close()
    out(db=name, db_file_mb=f"{size(db) / 2**20:.1f}", wal_mb=f"{size(db + '-wal') / 2**20:.1f}",
        states_mb=f"{store / 2**20:.1f}", **counts)


def live(tmp, seconds=30):
    """Phases on fresh pbtds over the same week-long database: quiet, calls
    back to back, one call a second, quiet again (other users of a shared
    machine come and go: the two quiet phases bracket the others)."""
    d = tempfile.mkdtemp(prefix="pbt-hist-live-", dir=tmp)
    db = os.path.join(d, "pbt.db")
    p = Pbtd(d, None, db)
    p.stop()
    synth.fill(db, results=100000, levels=12)
    # Quiet phases between the others: the machine's own speed drifts
    # (other users, thermal), so each phase with queries is compared with
    # the mean of the quiet phases either side of it.
    phases = ("quiet", "queries_1s", "quiet", "queries", "quiet")
    if "--phases" in sys.argv:
        phases = sys.argv[sys.argv.index("--phases") + 1].split(",")
    rates = []
    for phase in phases:
        p = Pbtd(d, None, db)
        p.worker()
        p.worker()
        time.sleep(10)      # workers warm up
        s0 = p.status()
        t0 = time.time()
        n_calls = 0
        html = os.path.join(d, "report.html")
        while time.time() - t0 < seconds:
            if phase.startswith("queries"):
                for args in (["report", "-o", html], ["history", "--json"]):
                    timed(p, args)
                    n_calls += 1
                    if phase == "queries_1s":
                        time.sleep(1)
            else:
                time.sleep(0.5)
        s1 = p.status()
        dt = time.time() - t0
        p.stop()
        logs = "".join(open(os.path.join(d, f), errors="replace").read()
                       for f in os.listdir(d) if f.startswith("hist-"))
        rates.append((s1['samples'] - s0['samples']) / dt)
        out(phase=phase, seconds=f"{dt:.1f}", samples_per_s=f"{rates[-1]:.0f}",
            results=s1["results"] - s0["results"], calls=n_calls,
            turnaround_p99_ms=f"{s1['assign_turnaround_ms']['p99']:.2f}",
            turnaround_max_ms=f"{s1['assign_turnaround_ms']['max']:.2f}",
            tick_slip_max_ms=f"{s1['housekeeping']['slip_ms_max']:.1f}",
            ticks=s1["housekeeping"]["ticks"] - s0["housekeeping"]["ticks"],
            resent=logs.count("code=duplicate") + logs.count("no_ack"),
            ctl_reply_failed=logs.count("ctl_reply_failed"),
            wal_truncates=logs.count("checkpoint_truncate"))
        if os.environ.get("PBT_BENCH_KEEP_LOGS"):
            shutil.copy(os.path.join(d, "hist-pbtd.log"),
                        os.path.join(os.environ["PBT_BENCH_KEEP_LOGS"], f"pbtd-{phase}.log"))
        for f in os.listdir(d):
            if f.startswith("hist-"):
                os.remove(os.path.join(d, f))
    for i, phase in enumerate(phases):
        near = [rates[j] for j in (i - 1, i + 1) if 0 <= j < len(phases) and phases[j] == "quiet"]
        if phase != "quiet" and near:
            base = sum(near) / len(near)
            out(phase=phase, samples_per_s_vs_quiet_either_side=f"{100 * (rates[i] / base - 1):+.1f}%")
    shutil.rmtree(d, ignore_errors=True)


def main():
    tmp = tempfile.mkdtemp(prefix="pbt-bench-history-")
    try:
        out(load=os.getloadavg()[0], cpus=os.cpu_count())
        if "--live-only" not in sys.argv:
            a = make_db(tmp, "A_1h_default", 95, [])
            queries("A_1h_default", a)
            shutil.rmtree(a, ignore_errors=True)
        if "--skip-b" not in sys.argv and "--live-only" not in sys.argv:
            b = make_db(tmp, "B_1e7_episode_rows", 150, ["--episode-rows", "--matches-keep", "0"])
            con = sqlite3.connect(os.path.join(b, "pbt.db"))
            con.executescript("BEGIN;" + TOPUP + "COMMIT;")
            con.close()
            queries("B_1e7_episode_rows", b)
            shutil.rmtree(b, ignore_errors=True)
        live(tmp)
        out(load_after=os.getloadavg()[0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
