#!/usr/bin/python3
"""The service as its users run it, under a real systemd 252.

Two containers, each booted by `systemd-nspawn -b` (systemd as PID 1) on an
overlay of this host's / with a tmpfs on top, joined by a veth pair between
two network namespaces (their only network):

- pbtsrv installs the Debian package built from this tree (`dpkg -i`), and
  runs the installed units: start pbtd and two workers, `pbtctl status`
  with no options (root, a member of group pbt, and a non-member who is
  refused), `systemctl reload` with a changed [pbt] key, `kill -9` of pbtd
  (nothing acknowledged lost), the watchdog killing a SIGSTOPped pbtd (a
  drop-in sets WatchdogSec=3s for this test), a unit that cannot work (no
  AF_NETLINK) failing with the file and key named, and a clean stop;
- pbtwrk installs this build with `meson install` (then pbt-setup, as a
  real `sudo meson install` runs it) and is the second host of the
  README's "Add worker machines" steps, which the test runs as written:
  its workers connect over CURVE and train, and a worker whose key is not
  allowed is refused.

Skipped (exit 77, saying why) where the machine cannot boot a container,
and on the sanitizer build (the units run the installed, uninstrumented
programs: the normal build's run covers them)."""
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from harness import BUILD, SOURCE, check, run_tests
from nspawn import BootError, Machine, cannot_boot_reason, netns_del, netns_pair, sh

NS_SRV, NS_WRK = f"pbt-ssrv-{os.getpid()}", f"pbt-swrk-{os.getpid()}"
NET = f"10.232.{os.getpid() % 250}"
SRV_IP, WRK_IP = f"{NET}.1", f"{NET}.2"
SRV = WRK = None
README = os.path.join(SOURCE, "README.md")


# -- set-up ---------------------------------------------------------------
def sanitizer_build():
    try:
        opts = json.load(open(os.path.join(BUILD, "meson-info", "intro-buildoptions.json")))
    except (OSError, ValueError):
        return None
    value = next((o["value"] for o in opts if o["name"] == "b_sanitize"), "none")
    return None if value == "none" else value


def build_deb():
    """The .deb of this tree (scripts/build-deb.sh), kept in the build
    directory under a hash of the files that go into it, so a rerun on an
    unchanged tree reuses it and an edit rebuilds it."""
    r = sh("git", "-C", SOURCE, "ls-files", "-z", "--cached", "--others", "--exclude-standard", check=False)
    h = hashlib.sha256()
    # tests/ is not in the package: editing a test does not rebuild it
    for name in sorted(n for n in r.stdout.split("\0") if n and not n.startswith("tests/")):
        path = os.path.join(SOURCE, name)
        if os.path.isfile(path):
            h.update(name.encode() + b"\0" + open(path, "rb").read())
    out = os.path.join(os.path.abspath(BUILD), "deb-" + (h.hexdigest()[:16] if r.returncode == 0 else "nogit"))
    debs = [f for f in os.listdir(out) if f.endswith(".deb") and "dbgsym" not in f] if os.path.isdir(out) else []
    if not debs or r.returncode != 0:
        for old in os.listdir(BUILD):
            if old.startswith("deb-"):
                shutil.rmtree(os.path.join(BUILD, old), ignore_errors=True)
        t0 = time.time()
        b = subprocess.run(["nice", "-n", "10", "bash", os.path.join(SOURCE, "scripts", "build-deb.sh")],
                           env=dict(os.environ, OUT=out, LINTIAN="0"), capture_output=True, text=True, timeout=600)
        check(b.returncode == 0, f"build-deb.sh failed: {b.stderr[-1500:]}")
        print(f"built the package in {time.time() - t0:.0f} s")
        debs = [f for f in os.listdir(out) if f.endswith(".deb") and "dbgsym" not in f]
    return os.path.join(out, debs[0])


def set_up(workdir):
    global SRV, WRK
    deb = build_deb()
    netns_pair(NS_SRV, NS_WRK, SRV_IP, WRK_IP, f"ps{os.getpid() % 100000}")
    SRV = Machine("pbtsrv", workdir, NS_SRV)
    WRK = Machine("pbtwrk", workdir, NS_WRK)
    for m in (SRV, WRK):
        m.make_root()
    SRV.put(deb, "/root/" + os.path.basename(deb))
    sh("meson", "install", "-C", BUILD, "--destdir", WRK.root, "--no-rebuild", "--quiet")
    t0 = time.time()
    for m in (SRV, WRK):
        m.boot()
    for m in (SRV, WRK):
        m.wait_booted()
    print(f"booted two containers in {time.time() - t0:.1f} s")
    r = SRV.run("dpkg", "-i", "/root/" + os.path.basename(deb), timeout=120)
    print("\n".join("  pbtsrv# " + line for line in r.stdout.splitlines() if "pbt" in line))
    # `sudo meson install` runs pbt-setup itself; with DESTDIR it cannot.
    installed = json.loads(sh("meson", "introspect", "--installed", BUILD).stdout)
    setup = next(v for v in installed.values() if v.endswith("/pbt-setup"))
    WRK.run(setup)


def tear_down():
    for m in (SRV, WRK):
        if m:
            m.down()
    netns_del(NS_SRV, NS_WRK)


# -- helpers ----------------------------------------------------------------
def ctl(m, *args, user=None, check_rc=True):
    """pbtctl with no endpoint option, as an operator on that host runs it."""
    r = m.run("pbtctl", *args, user=user, check=False, timeout=30)
    if check_rc:
        check(r.returncode == 0, f"[{m.name}] pbtctl {' '.join(args)}: rc {r.returncode}: {r.stderr.strip()}")
    return r


def status(m):
    return json.loads(ctl(m, "status", "--json").stdout)


def wait_for(what, fn, timeout=30, every=0.3):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def journal(m, *units, since=None):
    args = ["journalctl", "--no-pager", "-o", "cat"] + [f"-u{u}" for u in units]
    if since:
        args += ["--since", since]
    return m.run(*args).stdout


def main_pid(m):
    return int(m.show("pbtd", "MainPID")["MainPID"])


def acked(m):
    """Assignment ids the workers were told are stored (result_acked)."""
    return {int(x) for x in re.findall(r"event=result_acked assignment=(\d+)",
                                       journal(m, "pbt-worker@1", "pbt-worker@2"))}


def restarted(m, old_pid, old_restarts):
    s = m.show("pbtd", "MainPID", "NRestarts", "ActiveState")
    if s["ActiveState"] == "active" and int(s["NRestarts"]) > old_restarts and int(s["MainPID"]) not in (0, old_pid):
        return s
    return None


# -- the tests --------------------------------------------------------------
def test_package_installs():
    r = SRV.run("dpkg-query", "-W", "-f", "${Status}", "pbt")
    check(r.stdout == "install ok installed", f"dpkg says {r.stdout}")
    check(SRV.run("getent", "group", "pbt", check=False).returncode == 0, "the package made no group pbt")
    check(SRV.run("getent", "passwd", "pbt", check=False).returncode == 0, "the package made no user pbt")
    modes = SRV.run("stat", "-c", "%n %a %U", "/etc/pbt/server.cert", "/etc/pbt/server.cert_secret",
                    "/etc/pbt/worker.cert", "/etc/pbt/worker.cert_secret").stdout.split("\n")
    check(modes[:4] == ["/etc/pbt/server.cert 644 root", "/etc/pbt/server.cert_secret 600 root",
                        "/etc/pbt/worker.cert 644 root", "/etc/pbt/worker.cert_secret 600 root"], f"keys: {modes}")
    allowed = SRV.run("ls", "/etc/pbt/workers.d").stdout.split()
    check(allowed == ["pbtsrv.cert"], f"workers.d holds {allowed}")
    # Nothing enabled or started by the install.
    for unit in ("pbtd", "pbt-worker@1"):
        en = SRV.run("systemctl", "is-enabled", unit, check=False).stdout.strip()
        act = SRV.run("systemctl", "is-active", unit, check=False).stdout.strip()
        check(en == "disabled" and act == "inactive", f"{unit} after install: {en}, {act}")
    # What the units and configs name exists.
    for unit in ("pbtd.service", "pbt-worker@1.service"):
        doc = SRV.show(unit, "Documentation")["Documentation"].split()
        check(doc, f"{unit}: no Documentation=")
        for url in doc:
            check(SRV.run("test", "-s", url.replace("file://", ""), check=False).returncode == 0,
                  f"{unit}: Documentation={url} is not installed")
    ini = SRV.run("cat", "/etc/pbt/worker.ini").stdout
    check(re.search(r"^server_key = /etc/pbt/server.cert$", ini, re.M), "worker.ini has no server_key line")


def test_units_run():
    SRV.run("systemctl", "start", "pbtd", "pbt-worker@1", "pbt-worker@2", timeout=90)
    # `pbtctl status`, no options: the installed control socket.
    out = wait_for("2 workers in pbtctl status",
                   lambda: (lambda r: r.returncode == 0 and "workers connected: 2" in r.stdout and r.stdout)(
                       ctl(SRV, "status", check_rc=False)), timeout=40)
    print("pbtsrv# pbtctl status\n" + out)
    first = status(SRV)["results"]
    wait_for("training to progress", lambda: status(SRV)["results"] >= first + 3, timeout=40)
    print(SRV.run("systemctl", "status", "pbtd", "--no-pager", "-n", "0", check=False).stdout)
    # A member of group pbt may use the socket; others are told why not.
    SRV.run("useradd", "-m", "-G", "pbt", "alice")
    SRV.run("useradd", "-m", "bob")
    r = ctl(SRV, "status", user="alice", check_rc=False)
    check(r.returncode == 0 and "workers connected" in r.stdout, f"alice (group pbt): rc {r.returncode} {r.stderr}")
    r = ctl(SRV, "status", user="bob", check_rc=False)
    check(r.returncode != 0 and "Permission denied" in r.stderr, f"bob (not in pbt): rc {r.returncode} {r.stderr}")


def test_reload_applies_pbt_key():
    pid = main_pid(SRV)
    SRV.sh("printf '\\n[pbt]\\nelo_k = 7.5\\nt_select = 0.25\\n' >> /etc/pbt/pbtd.ini")
    SRV.run("systemctl", "reload", "pbtd")
    line = wait_for("the reloaded line", lambda: re.search(r"event=reloaded .*", journal(SRV, "pbtd")), timeout=15)
    check("elo_k=7.5 " in line.group(0) and "t_select=0.25" in line.group(0), f"reload: {line.group(0)}")
    check(main_pid(SRV) == pid, "reload restarted pbtd")


def test_kill9_loses_nothing_acknowledged():
    before = acked(SRV)
    check(len(before) >= 3, f"only {len(before)} results acknowledged so far")
    s = SRV.show("pbtd", "MainPID", "NRestarts")
    SRV.run("kill", "-9", s["MainPID"])
    wait_for("systemd to restart pbtd", lambda: restarted(SRV, int(s["MainPID"]), int(s["NRestarts"])), timeout=30)
    st = wait_for("pbtd to answer", lambda: (lambda r: r.returncode == 0 and json.loads(r.stdout))(
        ctl(SRV, "status", "--json", check_rc=False)), timeout=30)
    check(st["results"] >= len(before), f"pbtd reports {st['results']} results, {len(before)} were acknowledged")
    done = {int(x) for x in SRV.run("sqlite3", "/var/lib/pbt/pbt.db",
                                    "SELECT id FROM assignments WHERE state = 'done'").stdout.split()}
    check(before <= done, f"acknowledged but not stored: {sorted(before - done)}")
    wait_for("training to go on", lambda: status(SRV)["results"] > st["results"], timeout=40)


def test_watchdog_restarts_stopped_pbtd():
    # This test's drop-in: a short WatchdogSec (the shipped unit says 30 s).
    SRV.sh("mkdir -p /run/systemd/system/pbtd.service.d && printf '[Service]\\nWatchdogSec=3s\\n' "
           "> /run/systemd/system/pbtd.service.d/test-watchdog.conf && systemctl daemon-reload")
    SRV.run("systemctl", "restart", "pbtd", timeout=60)
    wait_for("pbtd to answer", lambda: ctl(SRV, "status", check_rc=False).returncode == 0, timeout=30)
    s = SRV.show("pbtd", "MainPID", "NRestarts", "WatchdogUSec")
    check(s["WatchdogUSec"] == "3s", f"WatchdogUSec={s['WatchdogUSec']}")
    SRV.run("kill", "-STOP", s["MainPID"])
    wait_for("the watchdog to restart pbtd", lambda: restarted(SRV, int(s["MainPID"]), int(s["NRestarts"])),
             timeout=40)
    check("Watchdog timeout" in journal(SRV, "pbtd"), "no watchdog timeout in the journal")
    wait_for("pbtd to answer", lambda: ctl(SRV, "status", check_rc=False).returncode == 0, timeout=30)


def test_unit_that_cannot_work_says_why():
    # pbtd's unit without AF_NETLINK: libzmq could not bind tcp; pbtd must
    # stop at start naming the file and key, not abort inside libzmq.
    SRV.sh("printf '[daemon]\\ndb = /tmp/bad.db\\nworker_endpoint = tcp://127.0.0.1:5599\\n"
           "control_endpoint = ipc:///tmp/bad.sock\\n[security]\\nplaintext = true\\n' > /etc/pbt/bad.ini")
    r = SRV.run("systemd-run", "--wait", "--quiet", "--unit", "pbtd-bad", "-p", "DynamicUser=yes",
                "-p", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "-p", "PrivateTmp=yes",
                "/usr/bin/pbtd", "--config", "/etc/pbt/bad.ini", check=False, timeout=60)
    log = journal(SRV, "pbtd-bad")
    check(r.returncode != 0, f"pbtd without AF_NETLINK ran: {log}")
    check("/etc/pbt/bad.ini: [daemon] worker_endpoint = tcp://127.0.0.1:5599" in log and "AF_NETLINK" in log,
          f"pbtd's message does not name the file, key and cause: {log}")
    check("status=6/ABRT" not in log and "SIGABRT" not in log, f"pbtd aborted: {log}")


def test_stop_is_clean():
    SRV.run("systemctl", "stop", "pbtd", "pbt-worker@1", "pbt-worker@2", timeout=90)
    s = SRV.show("pbtd", "ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
    check(s["ActiveState"] == "inactive" and s["Result"] == "success" and s["ExecMainStatus"] == "0",
          f"after stop: {s}")
    check(SRV.run("sqlite3", "/var/lib/pbt/pbt.db", "PRAGMA integrity_check").stdout.strip() == "ok",
          "integrity_check after stop")


def readme_blocks():
    """The sh blocks of the README's "Add worker machines" section, each
    with the host the sentence before it names."""
    text = open(README).read()
    m = re.search(r"^### Add worker machines\n(.*?)(?=^#)", text, re.M | re.S)
    check(m, "README has no 'Add worker machines' section")
    blocks = []
    for pre, code in re.findall(r"((?:[^`]|`[^`])*?)```sh\n(.*?)```", m.group(1), re.S):
        # the last sentence before the block names the host
        para = re.split(r"(?<=[.)])\s+", pre.strip().split("\n\n")[-1])[-1].lower()
        host = "worker" if "worker host" in para else "pbtd" if "pbtd host" in para else None
        check(host, f"README: no host named before the block {code!r}")
        blocks.append((host, code))
    return blocks


def scp(m, line):
    """An scp line between the two hosts (the containers run no sshd):
    the same copy, done through their roots."""
    words = shlex.split(m.run("bash", "-c", f"printf '%s\\n' {line[4:]}").stdout.replace("\n", " "))
    (src, dst), hosts = words[-2:], {SRV_IP: SRV, WRK_IP: WRK}

    def where(spec):
        host, sep, path = spec.rpartition(":")
        return (hosts[host], path) if sep else (m, spec)
    (sm, sp), (dm, dp) = where(src), where(dst)
    if dp.endswith("/"):
        dp += os.path.basename(sp)
    data = sm.run("cat", sp).stdout
    dm.run("sh", "-c", f"cat > {shlex.quote(dp)}", input=data)


def test_add_worker_machine_from_readme():
    try:
        add_worker_machine_from_readme()
    except Exception:
        print(WRK.run("systemctl", "status", "pbt-worker@1", "--no-pager", "-n", "20", check=False).stdout)
        print("\n".join(journal(SRV, "pbtd").splitlines()[-15:]))
        raise


def add_worker_machine_from_readme():
    blocks = readme_blocks()
    check([h for h, _ in blocks].count("worker") >= 2, f"README blocks: {[h for h, _ in blocks]}")
    subst = {"PBTD_HOST": SRV_IP, "WORKER_HOST": WRK.name}
    for host, code in blocks:
        m = SRV if host == "pbtd" else WRK
        for line in code.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if not line:
                continue
            for k, v in subst.items():
                line = line.replace(k, v)
            line = re.sub(r"^sudo ", "", line)    # root in the container; no sudo installed
            print(f"  {m.name}# {line}")
            if line.startswith("scp "):
                scp(m, line)
            else:
                r = m.run("bash", "-c", line.replace("sudo ", ""), check=False, timeout=90)
                check(r.returncode == 0, f"[{m.name}] {line}: rc {r.returncode}: {r.stdout} {r.stderr}")
                if r.stdout.strip():
                    print("    " + r.stdout.strip().replace("\n", "\n    "))
    # The worker host's workers, over CURVE across the veth, train.
    ws = wait_for("pbtwrk's workers in pbtctl workers", lambda: (lambda r: "pbtwrk-1" in r.stdout and r.stdout)(
        ctl(SRV, "workers", check_rc=False)), timeout=40)
    wait_for("a result from pbtwrk", lambda: re.search(r'event=result_applied .*worker="pbtwrk-',
                                                        journal(SRV, "pbtd")), timeout=60)
    # pbtwrk-1 itself (not only its neighbour pbtwrk-2) is welcomed and has a result acknowledged.
    wait_for("pbtwrk-1 welcomed and acknowledged", lambda: (lambda j: "event=welcomed" in j
             and "event=result_acked" in j)(journal(WRK, "pbt-worker@1")), timeout=60)
    conns = WRK.run("ss", "-Htn", "state", "established", "dst", f"{SRV_IP}:5555").stdout
    check(conns.strip(), "no TCP connection from pbtwrk to pbtd's tcp endpoint")
    check("event=curve_enabled" in journal(SRV, "pbtd"), "pbtd did not enable CURVE")
    # A worker whose key is not allowed is refused: it never gets a welcome.
    WRK.run("pbtctl", "keygen", "/root/rogue.cert")
    r = WRK.run("timeout", "4", "pbt-worker", "--config", "/etc/pbt/worker.ini", "--cert",
                "/root/rogue.cert_secret", "--id", "rogue", "--reply-timeout-ms", "1000", check=False)
    check(r.returncode == 124, f"the rogue worker exited with {r.returncode}: {r.stderr[-400:]}")
    check("event=welcomed" not in r.stderr and "assignment_started" not in r.stderr,
          f"the worker with an unknown key was served: {r.stderr[-400:]}")
    check("rogue" not in ctl(SRV, "workers").stdout, "pbtd lists the rogue worker")
    print("pbtsrv# pbtctl workers\n" + ws)


if __name__ == "__main__":
    why = cannot_boot_reason()
    san = sanitizer_build()
    if san:
        why = f"sanitizer build (b_sanitize={san}): the units run the installed programs, tested by the normal build"
    elif not why and not shutil.which("dpkg-buildpackage"):
        why = "dpkg-buildpackage is not installed (scripts/setup.sh installs it)"
    if why:
        print(f"skipped: {why}")
        sys.exit(77)
    workdir = tempfile.mkdtemp(prefix="pbt-service-")
    try:
        try:
            set_up(workdir)
        except BootError as e:
            print(f"skipped: cannot boot a systemd container here: {e}")
            tear_down()
            sys.exit(77)
        run_tests([test_package_installs, test_units_run, test_reload_applies_pbt_key,
                   test_kill9_loses_nothing_acknowledged, test_watchdog_restarts_stopped_pbtd,
                   test_unit_that_cannot_work_says_why, test_stop_is_clean,
                   test_add_worker_machine_from_readme])
    finally:
        tear_down()
        shutil.rmtree(workdir, ignore_errors=True)
