#!/usr/bin/env python3
"""pbt-worker's [worker] file is checked against lib/settings.c's table: a
misspelled key, or a value just outside a key's range, is refused with the
file, line and key before the worker connects anywhere.

    test_worker_config.py SETTINGS_DUMP PBT_WORKER
"""
import os
import re
import subprocess
import sys
import tempfile

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def refused(worker, path, text, line, key):
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([worker, "--config", path, "--connect", "ipc:///nonexistent/w.sock"],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode != 0 and f"{path}:{line}:" in r.stderr and key in r.stderr,
          f"{text!r}: rc {r.returncode}, stderr {r.stderr!r}")


def main(dump, worker):
    rows = [l.split("\t") for l in subprocess.run([dump], check=True, capture_output=True,
                                                   text=True).stdout.splitlines()]
    rows = [r for r in rows if r[0] == "worker"]
    check(len(rows) >= 8, f"only {len(rows)} [worker] keys")
    ranged = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.ini")
        for _, _, name, _, accepts, _ in rows:
            refused(worker, path, f"[worker]\n{name}x = 1\n", 2, f"{name}x")
            m = re.match(r"an integer in (\d+)\.\.(\d+)$", accepts)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                refused(worker, path, f"# worker\n[worker]\n{name} = {hi + 1}\n", 3, name)
                refused(worker, path, f"[worker]\n{name} = {lo - 1}\n", 2, name)
                ranged += 1
        check(ranged >= 1, "no [worker] key with a range was checked")
    if failures:
        sys.exit(f"{len(failures)} failure(s)")
    print(f"{len(rows)} [worker] keys refused when misspelled, {ranged} out of range")


if __name__ == "__main__":
    main(*sys.argv[1:])
