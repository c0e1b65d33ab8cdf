#!/usr/bin/python3
"""pbtd and workers on different hosts (issue 6): two network namespaces
joined by a veth pair, made by this test, with CURVE between them. Needs
root and iproute2; skipped (exit 77) otherwise."""
import os
import shutil
import subprocess
import sys
import time

from harness import FAST_CONFIG, PBTCTL, Cluster, check, run_tests
from nspawn import netns_del, netns_pair, sh

NS_SRV = f"pbt-srv-{os.getpid()}"
NS_WRK = f"pbt-wrk-{os.getpid()}"
NET = f"10.231.{os.getpid() % 250}"
SRV_IP, WRK_IP = f"{NET}.1", f"{NET}.2"
PORT = 5555


def netns_up():
    netns_pair(NS_SRV, NS_WRK, SRV_IP, WRK_IP, f"pv{os.getpid() % 100000}")


def netns_down():
    netns_del(NS_SRV, NS_WRK)


def keygen(path):
    r = subprocess.run([PBTCTL, "keygen", path], capture_output=True, text=True)
    check(r.returncode == 0, f"pbtctl keygen {path}: {r.stderr}")


def peers(ns):
    """Remote addresses of established TCP connections inside a namespace."""
    out = sh("ip", "netns", "exec", ns, "ss", "-Htn", "state", "established").stdout
    return {line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}


def test_curve_across_hosts():
    c = Cluster(FAST_CONFIG.format(size=4, t_select=0.3), name="multihost")
    try:
        keys = os.path.join(c.dir, "keys")
        allowed = os.path.join(c.dir, "allowed")
        os.makedirs(keys)
        os.makedirs(allowed)
        keygen(os.path.join(keys, "server.cert"))
        keygen(os.path.join(keys, "good.cert"))
        keygen(os.path.join(keys, "bad.cert"))
        shutil.copy(os.path.join(keys, "good.cert"), allowed)
        with open(c.cfg, "a") as f:
            f.write(f"\n[security]\ncert = {keys}/server.cert_secret\nallowed_keys = {allowed}\n")
        c.wep = f"tcp://{SRV_IP}:{PORT}"
        # pbtd runs in the server namespace; pbtctl reaches it over its ipc socket.
        c.pbtd_prefix = ["ip", "netns", "exec", NS_SRV]
        c.start_pbtd()
        wrk = ["ip", "netns", "exec", NS_WRK]
        common = ["--server-key", os.path.join(keys, "server.cert")]
        good = c.start_worker(*common, "--cert", os.path.join(keys, "good.cert_secret"), "--id", "good",
                              prefix=wrk)
        bad = c.start_worker(*common, "--cert", os.path.join(keys, "bad.cert_secret"), "--id", "bad",
                             prefix=wrk)
        c.wait_results(6, timeout=120)
        # Give the refused worker time for two hello attempts (reply timeout 1 s).
        time.sleep(2.5)
        check(good.poll() is None and bad.poll() is None, "a worker exited")
        ws = c.ctl("workers", "--json").stdout
        check('"good"' in ws and '"bad"' not in ws, f"pbtd's workers: {ws}")
        rows = c.sql("SELECT DISTINCT worker FROM assignments")
        check(rows == [("good",)], f"assignments went to {rows}")
        refused_log = open(bad.log_path).read()
        check("welcomed" not in refused_log and "assignment_started" not in refused_log,
              "the worker with an unknown key was served")
        # Allowing its key later lets the same running worker in (zauth
        # re-reads the directory; the worker opens a fresh socket per retry).
        shutil.copy(os.path.join(keys, "bad.cert"), allowed)
        deadline = time.time() + 20
        while time.time() < deadline and "welcomed" not in open(bad.log_path).read():
            time.sleep(0.2)
        check("welcomed" in open(bad.log_path).read(), "a worker whose key was allowed later never got in")
        srv_peers, wrk_peers = peers(NS_SRV), peers(NS_WRK)
        check(srv_peers and srv_peers <= {WRK_IP}, f"pbtd's host talks to {srv_peers}")
        check(wrk_peers == {SRV_IP}, f"the worker host talks to {wrk_peers}")
        c.stop(keep=True)
    finally:
        c.stop()


if __name__ == "__main__":
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("ss"):
        print("skipped: needs root, ip and ss (iproute2)")
        sys.exit(77)
    try:
        netns_up()
    except RuntimeError as e:
        print(f"skipped: cannot make network namespaces here: {e}")
        netns_down()
        sys.exit(77)
    try:
        run_tests([test_curve_across_hosts])
    finally:
        netns_down()
