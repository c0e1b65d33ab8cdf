#!/usr/bin/python3
"""The systemd units pass `systemd-analyze verify` (no errors, no warnings)
and keep a low `systemd-analyze security` exposure. The installed units name
<prefix>/bin; here they point at the build's binaries so verify can check
that ExecStart is executable."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

from harness import BUILD, PBTD, WORKER, check, run_tests

UNITS = os.path.join(BUILD, "systemd")


def localized(tmp):
    out = []
    for name, inst in (("pbtd.service", "pbtd.service"), ("pbt-worker@.service", "pbt-worker@1.service")):
        text = open(os.path.join(UNITS, name)).read()
        text = re.sub(r"ExecStart=\S*/pbtd ", f"ExecStart={PBTD} ", text)
        text = re.sub(r"ExecStart=\S*/pbt-worker ", f"ExecStart={WORKER} ", text)
        path = os.path.join(tmp, inst)
        with open(path, "w") as f:
            f.write(text)
        out.append(path)
    return out


def test_units_verify():
    tmp = tempfile.mkdtemp(prefix="pbt-units-")
    try:
        units = localized(tmp)
        r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units, capture_output=True, text=True)
        msgs = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and not msgs, f"systemd-analyze verify: rc {r.returncode}: {msgs}")
        text = open(units[0]).read()
        for key in ("Type=notify", "WatchdogSec=", "StateDirectory=pbt", "DynamicUser=yes",
                    "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes"):
            check(key in text, f"pbtd.service lacks {key}")
        for unit in units:
            r = subprocess.run(["systemd-analyze", "security", "--offline=true", unit],
                               capture_output=True, text=True)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
            check(m, f"no exposure score for {unit}: {r.stdout[-300:]} {r.stderr[-300:]}")
            print(f"{os.path.basename(unit)}: exposure {m.group(1)}")
            check(float(m.group(1)) <= 2.0, f"{unit}: exposure {m.group(1)} > 2.0")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if not shutil.which("systemd-analyze"):
        print("skipped: systemd-analyze is not installed")
        sys.exit(77)
    run_tests([test_units_verify])
