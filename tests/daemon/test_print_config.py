#!/usr/bin/env python3
"""pbtd --print-config names every key lib/settings.c gives pbtd, in its
section, commented out at the table's default unless the file sets it; its
output loads back as the same configuration.

    test_print_config.py SETTINGS_DUMP PBTD
"""
import os
import re
import subprocess
import sys
import tempfile

SECTION = re.compile(r"^#?\[(\S+)\]$")
KEY = re.compile(r"^(#?)(\w+) =(?: (.*))?$")
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def table(dump):
    rows = []
    for line in subprocess.run([dump], check=True, capture_output=True, text=True).stdout.splitlines():
        owner, section, name, dflt, _, _ = line.split("\t")
        if owner == "pbtd":
            rows.append((section, name, "" if dflt == "-" else dflt))
    return rows


def printed(pbtd, *args):
    r = subprocess.run([pbtd, *args, "--print-config"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"pbtd {' '.join(args)} --print-config: rc {r.returncode}: {r.stderr}")
    keys, section = {}, None
    for line in r.stdout.splitlines():
        m = SECTION.match(line)
        if m:
            section = m.group(1)
            continue
        m = KEY.match(line)
        if m:
            check((section, m.group(2)) not in keys or section.startswith("hparam."),
                  f"[{section}] {m.group(2)} printed twice")
            keys[(section, m.group(2))] = (m.group(1) == "", m.group(3) or "")
    return r.stdout, keys


def expect(rows, keys, sets, label):
    for section, name, dflt in rows:
        got = keys.get((section, name))
        check(got is not None, f"{label}: [{section}] {name} is missing")
        if got is None:
            continue
        is_set, value = got
        if (section, name) in sets:
            check(is_set and value == sets[(section, name)],
                  f"{label}: [{section}] {name} shows {got}, the file sets {sets[(section, name)]}")
        else:
            check(not is_set and value == dflt,
                  f"{label}: [{section}] {name} shows {got}, the table's default is {dflt!r}")


def main(dump, pbtd):
    rows = table(dump)
    check(len(rows) > 60, f"only {len(rows)} pbtd keys in the table")
    # The embedded default sets one key of the table, plaintext.
    text, keys = printed(pbtd)
    expect(rows, keys, {("security", "plaintext"): "true"}, "embedded")
    check(keys.get(("env", "episode_len")) == (True, "10"), "embedded: [env] episode_len = 10 missing")
    check(keys.get(("hparam.ent_coef", "init")) == (True, "0.3"), "embedded: [hparam.ent_coef] missing")
    with tempfile.TemporaryDirectory() as tmp:
        # A file's own keys are shown as set; the output is itself a config
        # that prints the same.
        path = os.path.join(tmp, "a.ini")
        with open(path, "w") as f:
            f.write("[ppo]\nn_envs = 16\n[pbt]\nt_select = 0.1\n")
        text, keys = printed(pbtd, "--config", path)
        expect(rows, keys, {("ppo", "n_envs"): "16", ("pbt", "t_select"): "0.1"}, "file")
        again = os.path.join(tmp, "b.ini")
        with open(again, "w") as f:
            f.write(text)
        text2, keys2 = printed(pbtd, "--config", again)
        check(keys2 == keys, "the printed file does not print the same keys")
        # A bad file is refused, not printed.
        with open(path, "w") as f:
            f.write("[ppo]\nn_envz = 16\n")
        r = subprocess.run([pbtd, "--config", path, "--print-config"], capture_output=True, text=True)
        check(r.returncode != 0 and f"{path}:2:" in r.stderr and "n_envz" in r.stderr,
              f"--print-config of a misspelled key: rc {r.returncode}, {r.stderr!r}")
    if failures:
        sys.exit(f"{len(failures)} failure(s)")
    print(f"pbtd --print-config shows all {len(rows)} keys at the table's defaults")


if __name__ == "__main__":
    main(*sys.argv[1:])
