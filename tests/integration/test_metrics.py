"""pbtd's Prometheus endpoint, against a real pbtd with a real worker
training, scraped over HTTP (urllib) and parsed with Debian's
python3-prometheus-client, the parser Prometheus' own client uses.

  - off by default: a pbtd with no [metrics] section listens on no TCP port;
  - counters advance while the worker trains; once paused and idle, the
    totals agree with what the worker was acknowledged and the per-agent
    series with the agents table in the SQLite file, for every agent;
  - the histogram is well formed, build info and start time are right;
  - a stalled HTTP client holds up neither other scrapes nor pbtctl;
  - a lease that runs out shows in pbt_leases_expired_total;
  - an IPv6 listen address ([::1]:PORT) serves too;
  - a malformed or unusable listen address stops pbtd at start, saying
    which file, line and key, or which address and why.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

METRICS_CONFIG = harness.FAST_CONFIG + """
[daemon]
lease_ms = 1500
heartbeat_ms = 200

[metrics]
enabled = true
listen = 127.0.0.1:{port}
"""


def free_port():
    """A port nobody listens on now (the OS picks it), so parallel runs
    of the suite do not collide."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.headers.get("Content-Type"), r.read().decode()


def samples(text):
    """{(sample name, frozenset(labels)): value} of every sample."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(ss, name, **labels):
    key = (name, frozenset(labels.items()))
    check(key in ss, f"no sample {name}{labels or ''}")
    return ss[key]


def listening_tcp_ports(pid):
    """TCP ports the process pid listens on: its socket inodes matched
    against /proc/net/tcp{,6} rows in state 0A (LISTEN)."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    ports.add(int(cols[1].split(":")[1], 16))
    return ports


def project_version():
    """meson's own record of the project version, not pbtd's."""
    r = subprocess.run(["meson", "introspect", "--projectinfo", harness.BUILD],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"meson introspect: {r.stderr}")
    return json.loads(r.stdout)["version"]


def test_off_by_default():
    c = harness.Cluster(harness.FAST_CONFIG.format(size=4, t_select=0.3), name="metrics-off")
    try:
        c.start_pbtd()
        # Worker and control endpoints are ipc://: nothing at all may listen on TCP.
        ports = listening_tcp_ports(c.pbtd.pid)
        check(ports == set(), f"pbtd without [metrics] listens on TCP ports {ports}")
    finally:
        c.stop()


def test_ipv6_listen():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        port = s.getsockname()[1]
        s.close()
    except OSError as e:
        print(f"SKIP test_ipv6_listen: no IPv6 loopback here ({e})")
        return
    cfg = harness.FAST_CONFIG.format(size=4, t_select=0.3) + f"\n[metrics]\nenabled = true\nlisten = [::1]:{port}\n"
    c = harness.Cluster(cfg, name="metrics6")
    try:
        c.start_pbtd()
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://[::1]:{port}/metrics", timeout=10) as r:
                    text = r.read().decode()
                break
            except urllib.error.HTTPError as e:
                check(e.code == 503 and time.time() < deadline, f"[::1]:{port}: HTTP {e.code}")
                time.sleep(0.2)
        check(value(samples(text), "pbt_workers_connected") == 0, "no workers yet")
        rc = c.stop(keep=True)
        check(rc == 0, f"pbtd stopped with {rc}; see {c.dir}")
    finally:
        c.stop()


def wait_metrics(port, cond, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ss = samples(scrape(port)[1])
        if cond(ss):
            return ss
        time.sleep(0.3)
    raise harness.Failure(f"metrics: {what} not seen within {timeout} s")


def test_scrape_while_training():
    port = free_port()
    t0 = time.time()
    c = harness.Cluster(METRICS_CONFIG.format(size=4, t_select=0.3, port=port), name="metrics")
    try:
        c.start_pbtd()
        check(listening_tcp_ports(c.pbtd.pid) == {port}, "pbtd should listen on the metrics port only")
        worker = c.start_worker()
        c.wait_results(3, timeout=60)
        ctype, text = scrape(port)
        check(ctype.startswith("text/plain") and "version=0.0.4" in ctype, f"Content-Type {ctype}")
        first = samples(text)
        c.wait_results(value(first, "pbt_results_total") + 3, timeout=60)
        second = wait_metrics(port, lambda ss: value(ss, "pbt_results_total") > value(first, "pbt_results_total"),
                              "pbt_results_total advancing")
        for name in ("pbt_commits_total", "pbt_samples_total", "pbt_commit_duration_seconds_count"):
            check(value(second, name) > value(first, name), f"{name} did not advance")
        check(value(second, "pbt_results_per_second") > 0, "no results per second while training")
        check(value(second, "pbt_workers_connected") == 1, "one worker is connected")
        check(value(second, "pbt_build_info", version=project_version()) == 1, "build info")
        start = value(second, "process_start_time_seconds")
        check(t0 - 1 <= start <= time.time(), f"process_start_time_seconds {start}, test began at {t0}")

        # A client that connects and sends nothing holds the HTTP thread up
        # for no one: another scrape and a control request still answer.
        stalled = socket.create_connection(("127.0.0.1", port))
        try:
            scrape(port)
            c.ctl("status", timeout=2000)
        finally:
            stalled.close()
        try:
            scrape(port, "/nothing")
            check(False, "/nothing should be 404")
        except urllib.error.HTTPError as e:
            check(e.code == 404, f"/nothing: HTTP {e.code}")

        # Paused and idle, the totals are final: compare them with the
        # worker's acknowledgements and the agents table.
        c.ctl("pause")
        ss = wait_metrics(port, lambda ss: value(ss, "pbt_leases_in_flight") == 0 and value(ss, "pbt_paused") == 1,
                          "no lease in flight after pause")
        deadline = time.time() + 10
        while True:
            with open(worker.log_path) as f:
                acked = sum(1 for line in f if "event=result_acked" in line)
            if acked == value(ss, "pbt_results_total") or time.time() > deadline:
                break
            time.sleep(0.2)
        check(acked == value(ss, "pbt_results_total"),
              f"worker acked {acked} results, metrics say {value(ss, 'pbt_results_total')}")
        check_histogram(ss)
        rows = c.sql("SELECT id, rating, frames, matches, generation FROM agents ORDER BY id")
        check(len(rows) == 4, f"{len(rows)} agents in the database")
        for agent_id, rating, frames, matches, generation in rows:
            a = f"agt_{agent_id}"
            check(abs(value(ss, "pbt_agent_rating", agent=a) - rating) < 1e-9, f"{a} rating")
            check(value(ss, "pbt_agent_frames_total", agent=a) == frames, f"{a} frames")
            check(value(ss, "pbt_agent_matches_total", agent=a) == matches, f"{a} matches")
            check(value(ss, "pbt_agent_generation", agent=a) == generation, f"{a} generation")
            check(value(ss, "pbt_agent_busy", agent=a) == 0, f"{a} busy while paused and idle")
        check(frames > 0, "agents trained")
        agent_series = {k for k in ss if k[0] == "pbt_agent_rating"}
        check(len(agent_series) == 4, f"rating series {agent_series}")
        states = c.db + "-states"
        on_disk = sum(os.path.getsize(os.path.join(states, n)) for n in os.listdir(states))
        check(value(ss, "pbt_state_store_bytes") == on_disk,
              f"state store {value(ss, 'pbt_state_store_bytes')} bytes, {on_disk} on disk")
        check(value(ss, "pbt_database_bytes") > 0, "database bytes")
        check(value(ss, "pbt_metrics_render_seconds") >= 0, "render time")
        check(value(ss, "pbt_wal_bytes") >= 0, "wal bytes")

        # A worker stopped mid-assignment loses its lease (lease_ms 1500).
        # (On a loaded machine a lease may already have lapsed: count from here.)
        before = value(ss, "pbt_leases_expired_total")
        c.ctl("resume")
        try:
            stop_inside_assignment(worker)
            ss = wait_metrics(port, lambda ss: value(ss, "pbt_leases_expired_total") > before, "an expired lease")
            expired = c.sql("SELECT COUNT(*) FROM assignments WHERE state = 'expired'")[0][0]
            check(value(ss, "pbt_leases_expired_total") == expired,
                  f"{value(ss, 'pbt_leases_expired_total')} expired in metrics, {expired} in the database")
        finally:
            worker.send_signal(signal.SIGCONT)
        # A clean stop joins the HTTP thread (and, under ASan, leaks nothing).
        rc = c.stop(keep=True)
        check(rc == 0, f"pbtd stopped with {rc}; see {c.dir}")
    finally:
        c.stop()


def stop_inside_assignment(worker, tries=500):
    """SIGSTOP the worker while it is inside an assignment: its log's last
    event is assignment_started (it logs assignment_finished before it
    sends the result, so the result cannot have gone out)."""
    for _ in range(tries):
        worker.send_signal(signal.SIGSTOP)
        with open(worker.log_path) as f:
            events = [ln for ln in f if "event=assignment_" in ln or "event=result_acked" in ln]
        if events and "event=assignment_started" in events[-1]:
            return
        worker.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise harness.Failure("never caught the worker inside an assignment")


def check_histogram(ss):
    buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in ss.items()
                      if k[0] == "pbt_commit_duration_seconds_bucket"))
    check(len(buckets) >= 2 and buckets[-1][0] == float("inf"), f"buckets {buckets}")
    counts = [v for _, v in buckets]
    check(counts == sorted(counts), f"buckets not cumulative: {buckets}")
    count = value(ss, "pbt_commit_duration_seconds_count")
    check(counts[-1] == count > 0, f"+Inf bucket {counts[-1]}, count {count}")
    check(count <= value(ss, "pbt_commits_total"), "more observed commits than commits")
    check(value(ss, "pbt_commit_duration_seconds_sum") > 0, "commit time sum")


def start_bad(config_text, name):
    c = harness.Cluster(config_text, name=name)
    p = subprocess.run([harness.PBTD, "--config", c.cfg, "--db", c.db, "--worker-endpoint", c.wep,
                        "--control-endpoint", c.cep], capture_output=True, text=True, timeout=60)
    c.stop()
    check("Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr)
    return p


def test_bad_listen_address():
    text = METRICS_CONFIG.format(size=4, t_select=0.3, port=free_port())
    bad = text.replace("listen = 127.0.0.1:", "listen = 127.0.0.1;")
    line = bad.splitlines().index(next(ln for ln in bad.splitlines() if ln.startswith("listen"))) + 1
    p = start_bad(bad, "metrics-bad")
    check(p.returncode != 0, "pbtd started with a malformed [metrics] listen")
    check(f"pbtd.ini:{line}: [metrics] listen:" in p.stderr and "ADDRESS:PORT" in p.stderr,
          f"message should name file:line and key: {p.stderr!r}")

    for key, bad_value in [("listen", "localhost:9556"), ("listen", "127.0.0.1:0"), ("listen", "127.0.0.1:65536"),
                           ("listen", "[::1:9556"), ("listen", "127.0.0.1"), ("listen", ""),
                           ("listen", "127.0.0.1:95x"), ("enabled", "maybe"), ("port", "9556")]:
        first = "listen = 127.0.0.1:9556" if key == "enabled" else "enabled = true"
        p = start_bad(f"[metrics]\n{first}\n{key} = {bad_value}\n", "metrics-bad")
        check(p.returncode != 0 and f"pbtd.ini:3: [metrics] {key}:" in p.stderr,
              f"[metrics] {key} = {bad_value!r}: rc {p.returncode}, {p.stderr!r}")

    # A well-formed address that cannot be bound: the port is taken.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        p = start_bad(METRICS_CONFIG.format(size=4, t_select=0.3, port=port), "metrics-busy")
    finally:
        holder.close()
    check(p.returncode != 0, "pbtd started although its metrics port was taken")
    check(f"[metrics] listen 127.0.0.1:{port}: cannot listen there: Address already in use" in p.stderr,
          f"message should name the address and why: {p.stderr!r}")


if __name__ == "__main__":
    harness.run_tests([test_off_by_default, test_scrape_while_training, test_ipv6_listen, test_bad_listen_address])
