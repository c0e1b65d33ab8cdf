"""Shared helpers for the integration tests: real pbtd, pbt-worker and
pbtctl processes over ipc sockets in a temporary directory, and the real
SQLite file they write. Standard library only."""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("PBT_BUILD_ROOT") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
SOURCE = os.environ.get("PBT_SOURCE_ROOT") or os.path.join(os.path.dirname(__file__), "..", "..")
PBTD = os.path.join(BUILD, "daemon", "pbtd")
WORKER = os.path.join(BUILD, "worker", "pbt-worker")
PBTCTL = os.path.join(BUILD, "cli", "pbtctl")

# A small, fast RPS configuration: each assignment is one short PPO iteration.
FAST_CONFIG = """
[daemon]
# The checks compare the per-result aggregates against these rows.
episode_rows = true

[population]
size = {size}
env = rps
preset = seed

[ppo]
n_envs = 8
n_steps = 20
iterations = 1
epochs = 2
minibatches = 2

[pbt]
t_select = {t_select}
"""


# The game of the pbtd started last, as a hello's envs (start_pbtd).
ENVS = []


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


class Cluster:
    """A pbtd plus workers in a fresh temporary directory."""

    def __init__(self, config_text, name="pbt", extra_args=()):
        self.dir = tempfile.mkdtemp(prefix=f"pbt-{name}-")
        self.db = os.path.join(self.dir, "pbt.db")
        self.cfg = os.path.join(self.dir, "pbtd.ini")
        with open(self.cfg, "w") as f:
            f.write(config_text)
        self.wep = f"ipc://{self.dir}/w.sock"
        self.cep = f"ipc://{self.dir}/c.sock"
        self.extra_args = list(extra_args)
        self.pbtd = None
        self.pbtd_prefix = []        # e.g. ["ip", "netns", "exec", NS] to run it on another "host"
        self.workers = []
        self.n_logs = 0

    def log(self, name):
        self.n_logs += 1
        self.last_log = os.path.join(self.dir, f"{name}-{self.n_logs}.log")
        return open(self.last_log, "w")

    def start_pbtd(self):
        self.pbtd = subprocess.Popen(
            self.pbtd_prefix + [PBTD, "--config", self.cfg, "--db", self.db, "--worker-endpoint", self.wep,
             "--control-endpoint", self.cep] + self.extra_args,
            stderr=self.log("pbtd"), stdout=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            check(self.pbtd.poll() is None, f"pbtd exited early with {self.pbtd.returncode}; see {self.dir}")
            if self.ctl("status", timeout=300, check_rc=False).returncode == 0:
                # What a hand-made worker's hello must announce (PROTOCOL.md §8).
                global ENVS
                st = self.status()
                ENVS = [{"name": st["env"], "version": "test", "hash": st["env_hash"]}]
                return
            time.sleep(0.1)
        raise Failure("pbtd did not answer status within 20 s")

    def start_worker(self, *args, prefix=()):
        p = subprocess.Popen(list(prefix) + [WORKER, "--connect", self.wep, "--reply-timeout-ms", "1000"] + list(args),
                             stderr=self.log("worker"), stdout=subprocess.DEVNULL)
        p.log_path = self.last_log
        self.workers.append(p)
        return p

    def ctl(self, *args, timeout=3000, check_rc=True):
        r = subprocess.run([PBTCTL, "--endpoint", self.cep, "--timeout", str(timeout)] + list(args),
                           capture_output=True, text=True, timeout=60)
        if check_rc and r.returncode != 0:
            raise Failure(f"pbtctl {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def status(self):
        return json.loads(self.ctl("status", "--json").stdout)

    def wait_results(self, n, timeout=240):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.status()
            if st.get("results", 0) >= n:
                return st
            for w in self.workers:
                check(w.poll() is None, f"a worker exited with {w.returncode}; see {self.dir}")
            time.sleep(0.5)
        raise Failure(f"fewer than {n} results after {timeout} s; see {self.dir}")

    def sql(self, query, args=()):
        con = sqlite3.connect(self.db, timeout=10)
        try:
            return con.execute(query, args).fetchall()
        finally:
            con.close()

    def stop(self, keep=False):
        for w in self.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
        rc = None
        if self.pbtd and self.pbtd.poll() is None:
            self.pbtd.send_signal(signal.SIGTERM)
            try:
                rc = self.pbtd.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.pbtd.kill()
                rc = "timeout"
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return rc


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli), written from its definition, independent of store.c."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC32C[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


def check_tick_labels_fit(root):
    """Every y tick label of a pbtctl report (an ElementTree root) lies
    inside its chart and right of the rotated axis label (x = 14 when the
    chart has one): 11 px sans-serif is at most ~6 px a character for
    digits, '.', '-', 'e', 'k'. Returns the number of labels checked."""
    svg_ns = "{http://www.w3.org/2000/svg}"
    n = 0
    for svg in root.iter(f"{svg_ns}svg"):
        texts = list(svg.iter(f"{svg_ns}text"))
        has_ylabel = any(t.get("transform", "").startswith("translate(14") and t.text for t in texts)
        for t in texts:
            if t.get("text-anchor") == "end" and t.text:
                left = float(t.get("x")) - 6.0 * len(t.text)
                check(left >= (22 if has_ylabel else 0),
                      f"tick label {t.text!r} at x={t.get('x')} starts at {left:.1f}: cut off "
                      f"in {svg.get('aria-label')!r}")
                n += 1
    return n


def check_state_store(db_path):
    """Every snapshot row names a whole, intact record in the state store
    (docs/schema.md): magic, format, n_params, length and both checksums;
    rows of agents never trained (seg -1) name none.
    Returns the number of records checked."""
    import struct
    con = sqlite3.connect(db_path, timeout=10)
    rows = con.execute("SELECT agent_id, version, seg, off, len, n_params FROM snapshots").fetchall()
    con.close()
    for agent, version, seg, off, length, n_params in rows:
        where = f"agt_{agent}@{version} (seg {seg} off {off})"
        if seg == -1:
            # Never trained: no record; off holds the init seed (docs/schema.md).
            check(length == 0 and n_params == 0, f"{where}: a row without weights has len {length}")
            continue
        path = os.path.join(db_path + "-states", "seg-%08x.pbts" % seg)
        check(os.path.exists(path), f"{where}: segment file missing")
        with open(path, "rb") as f:
            f.seek(off)
            rec = f.read(length)
        check(len(rec) == length, f"{where}: record cut short")
        magic, fmt, _, _, _, n, pcrc, hcrc, _ = struct.unpack("<IIqQQIIII", rec[:48])
        check(magic == 0x53544250 and fmt == 1, f"{where}: bad magic/format")
        check(hcrc == crc32c(rec[:40]), f"{where}: header checksum")
        check(n == n_params and length == 48 + 12 * n, f"{where}: n_params {n}, row {n_params}, len {length}")
        check(pcrc == crc32c(rec[48:]), f"{where}: payload checksum")
    return len(rows)


def run_tests(tests):
    """Run named test functions; print a closing line; exit non-zero on failure."""
    passed = failed = 0
    only = sys.argv[1:]
    for fn in tests:
        if only and fn.__name__ not in only:
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print(f"PASS {fn.__name__} ({time.time() - t0:.1f} s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            failed += 1
            print(f"FAIL {fn.__name__}: {type(e).__name__}: {e}", flush=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
