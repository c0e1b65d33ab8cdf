"""pbtctl's argument checking, against a real pbtd with a worker.

Malformed or out-of-range numbers and malformed endpoints are usage errors
(exit 2) whose message names the argument, and nothing is sent to pbtd;
well-formed ones still work (matches --limit N really returns N episodes)
and a well-formed endpoint with nobody behind it is still "unreachable"
(exit 3). Standard library only.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
from harness import check  # noqa: E402

cluster = None


def pbtctl(*args, env=None):
    e = dict(os.environ)
    e.pop("PBTCTL_ENDPOINT", None)
    e.update(env or {})
    return subprocess.run([harness.PBTCTL] + list(args), capture_output=True, text=True, timeout=60, env=e)


def refused(args, names, env=None):
    r = pbtctl(*args, env=env)
    check(r.returncode == 2, f"pbtctl {' '.join(args)}: exit {r.returncode}, expected 2; {r.stderr!r}")
    check(names in r.stderr, f"pbtctl {' '.join(args)}: message should name {names!r}: {r.stderr!r}")
    check(r.stdout == "", f"pbtctl {' '.join(args)} printed {r.stdout!r}")


def test_numbers():
    ep = ["--endpoint", cluster.cep]
    for bad in ["abc", "", "0", "-5", "1.5", " 5", "5ms", "+5", "99999999999", "0x10"]:
        refused(["--endpoint", cluster.cep, "--timeout", bad, "status"], "--timeout")
    refused(ep + ["--timeout"], "--timeout")
    for bad in ["abc", "0", "1001", "-1", "", "2e3"]:
        refused(ep + ["matches", "--limit", bad], "matches --limit")
    refused(ep + ["matches", "--limit"], "matches --limit")
    refused(ep + ["watch", "--seconds", "abc"], "watch --seconds")
    refused(ep + ["watch", "--seconds", "nan"], "watch --seconds")
    refused(ep + ["watch", "--interval", "0"], "watch --interval")
    refused(ep + ["eval", "agt_0", "--vs", "random", "--episodes", "ten"], "eval --episodes")
    refused(ep + ["eval", "agt_0", "--vs", "random", "--seed", "-1"], "eval --seed")
    refused(ep + ["eval", "agt_0", "--vs", "random", "--env", "episode_len=x"], "eval --env")
    refused(ep + ["export", "agt_0@abc", "-o", os.path.join(cluster.dir, "x.safetensors")], "AGENT@VERSION")
    # replay between two scripts needs no pbtd: the check comes first all the same.
    refused(["replay", "random", "--vs", "chaser", "-o", os.path.join(cluster.dir, "r.svg"), "--steps", "abc"],
            "replay --steps")
    refused(["replay", "random", "--vs", "chaser", "-o", os.path.join(cluster.dir, "r.svg"), "--seed", "1x"],
            "replay --seed")
    # Well-formed numbers reach pbtd and mean what they say.
    for n in (1, 3, 7):
        r = pbtctl(*ep, "--timeout", "5000", "matches", "--limit", str(n), "--json")
        check(r.returncode == 0, f"matches --limit {n}: {r.stderr}")
        got = json.loads(r.stdout)
        check(len(got) == n, f"matches --limit {n} returned {len(got)} episodes")
    r = pbtctl(*ep, "watch", "--seconds", "0.2", "--interval", "0.1")
    check(r.returncode == 0 and "results" in r.stdout, f"watch: {r.returncode} {r.stdout!r} {r.stderr!r}")


def test_endpoints():
    for bad in ["bogus", "tcp://127.0.0.1", "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536",
                "tcp://:5556", "tcp://127.0.0.1:port", "ipc://", "inproc://", "ftp://host:21",
                "tcp://bad host:5556", "TCP://127.0.0.1:5556", ""]:
        refused(["--endpoint", bad, "status"], "--endpoint")
    refused(["status"], "$PBTCTL_ENDPOINT", env={"PBTCTL_ENDPOINT": "bogus"})
    # Well formed, nobody there: unreachable, not a usage error.
    for good in [f"ipc://{cluster.dir}/nobody.sock", "tcp://127.0.0.1:1", "tcp://[::1]:1", "tcp://localhost:1"]:
        r = pbtctl("--endpoint", good, "--timeout", "200", "status")
        check(r.returncode == 3, f"--endpoint {good}: exit {r.returncode}, expected 3: {r.stderr!r}")
    r = pbtctl("status", env={"PBTCTL_ENDPOINT": cluster.cep})
    check(r.returncode == 0, f"PBTCTL_ENDPOINT={cluster.cep}: {r.stderr!r}")


def main():
    global cluster
    cluster = harness.Cluster(harness.FAST_CONFIG.format(size=4, t_select=0.3), name="ctlargs")
    try:
        cluster.start_pbtd()
        cluster.start_worker()
        cluster.wait_results(2, timeout=60)
        cluster.ctl("pause")
        harness.run_tests([test_numbers, test_endpoints])
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
