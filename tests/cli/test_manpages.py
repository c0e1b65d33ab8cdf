"""The man pages against the programs they document, and --version.

For pbtd(8), pbt-worker(1) and pbtctl(1), as meson configures them for
installation:
  - the options listed in the program's --help and in the man page's
    OPTIONS section are the same, with the same "takes a value" shape;
  - every one of them is accepted by the program (probed: OPTION [VALUE]
    --help must succeed, where an unknown option fails), and every
    single-letter option the program accepts (probed, a-z A-Z) is
    documented;
  - pbtctl's commands are the same in --help and in COMMANDS, and each
    command's options in 'pbtctl CMD --help' match its man page heading.
--version on pbtd, pbt-worker, pbtctl and pbt-bench prints the version
meson records for the project (meson introspect), as does each page's .TH.
Standard library only.
"""
import concurrent.futures
import json
import os
import re
import string
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
from harness import check  # noqa: E402

PROGRAMS = [
    ("pbtd", harness.PBTD, os.path.join(harness.BUILD, "daemon", "pbtd.8")),
    ("pbt-worker", harness.WORKER, os.path.join(harness.BUILD, "worker", "pbt-worker.1")),
    ("pbtctl", harness.PBTCTL, os.path.join(harness.BUILD, "cli", "pbtctl.1")),
]
BENCH = os.path.join(harness.BUILD, "bench", "pbt-bench")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
METAVAR = re.compile(r"\b[A-Z][A-Z_]*\b")

tmp = tempfile.mkdtemp(prefix="pbt-man-")
probe_file = os.path.join(tmp, "probe.ini")
with open(probe_file, "w") as f:
    f.write("[worker]\n")          # a valid pbt-worker --config, a readable file for the rest
# A value of the right shape for each metavar, so only an unknown option can fail the probe.
VALUES = {"FILE": probe_file, "F": probe_file, "DIR": tmp, "DIRS": tmp, "PATH": os.path.join(tmp, "x.db"),
          "EP": "tcp://127.0.0.1:1", "N": "1000", "MS": "100", "L": "info", "NAME": "x",
          "KEY": "0" * 40, "K": "0" * 40}


# The probes start each program a few hundred times: spare OpenBLAS's thread pool.
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=ENV, **kw)


def unroff(text):
    """Plain text of a roff line: no macro, no font escapes, '\\-' as '-'."""
    text = re.sub(r"^\.\w+\s*", "", text)
    text = re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-").replace("\\&", "")
    return text.replace('"', " ")


def options_of(spec):
    """{option: its metavar or None} from one option spec ('-c, --config FILE')."""
    opts = OPTION.findall(spec)
    mv = METAVAR.findall(OPTION.sub(" ", spec))
    return {o: mv[0] if mv else None for o in opts}


def help_options(exe):
    r = run([exe, "--help"])
    check(r.returncode == 0, f"{exe} --help: rc {r.returncode}")
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^\s+(-.*?)(\s{2,}|$)", line)
        if m:
            out.update(options_of(m.group(1)))
    check(out, f"{exe} --help lists no options")
    return out


def man_section(page, title):
    with open(page) as f:
        lines = f.read().splitlines()
    start = lines.index(f".SH {title}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(".SH ")), len(lines))
    return lines[start + 1:end]


def man_options(page):
    lines = man_section(page, "OPTIONS")
    out = {}
    for i, line in enumerate(lines):
        if line == ".TP" and i + 1 < len(lines):
            out.update(options_of(unroff(lines[i + 1])))
    check(out, f"{page}: OPTIONS lists nothing")
    return out


def test_options_match_man_pages():
    probes = []         # (program, what, command line, should succeed)
    documented_short = {}
    for name, exe, page in PROGRAMS:
        helped = help_options(exe)
        manned = man_options(page)
        check(set(helped) == set(manned),
              f"{name}: --help only {sorted(set(helped) - set(manned))}, "
              f"man page only {sorted(set(manned) - set(helped))}")
        for opt in helped:
            check((helped[opt] is None) == (manned[opt] is None),
                  f"{name} {opt}: value in --help: {helped[opt]}, in the man page: {manned[opt]}")
            check(helped[opt] is None or helped[opt] in VALUES, f"{name} {opt}: no probe value for {helped[opt]}")
        # OPTION [VALUE] --help succeeds only if the option is known (and
        # its value well formed); the probe can fail: an unknown one is refused.
        probes.append((name, "--no-such-option", [exe, "--no-such-option", "--help"]))
        for opt, mv in helped.items():
            probes.append((name, opt, [exe, opt] + ([VALUES[mv]] if mv else []) + ["--help"]))
        # Every single-letter option: those taken must be documented.
        for c in string.ascii_letters:
            probes.append((name, f"-{c}", [exe, f"-{c}", probe_file, "--help"]))
        documented_short[name] = {o for o in helped if re.fullmatch(r"-\w", o)}
        print(f"{name}: {len(helped)} options in --help = in the man page")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda p: (p[0], p[1], run(p[2]).returncode == 0), probes))
    for name, _, _ in PROGRAMS:
        ok = {what for n, what, good in results if n == name and good}
        check("--no-such-option" not in ok, f"{name} accepts --no-such-option")
        for _, what, _ in (p for p in probes if p[0] == name and p[1].startswith("--")):
            if what != "--no-such-option":
                check(what in ok, f"{name} refuses its documented option {what}")
        taken = {w for w in ok if re.fullmatch(r"-\w", w)}
        check(taken == documented_short[name],
              f"{name}: accepts single-letter options {sorted(taken)}, documents {sorted(documented_short[name])}")
    print(f"{len(probes)} probes: every documented option accepted, every accepted one documented")


def test_pbtctl_commands_match_man_page():
    r = run([harness.PBTCTL, "--help"])
    commands = []
    in_cmds = False
    for line in r.stdout.splitlines():
        if line.startswith("commands:"):
            in_cmds = True
            continue
        if in_cmds and re.match(r"^  \w", line):
            commands.append(line.split()[0])
        elif in_cmds:
            in_cmds = False
    headings = {}
    for line in man_section(PROGRAMS[2][2], "COMMANDS"):
        if line.startswith(".SS "):
            text = unroff(line)
            for cmd in re.split(r",\s*", text.split("[")[0].split(" -")[0].strip()):
                headings[cmd.split()[0]] = text
    check(set(commands) == set(headings),
          f"pbtctl --help only {sorted(set(commands) - set(headings))}, man page only "
          f"{sorted(set(headings) - set(commands))}")
    for cmd in commands:
        u = run([harness.PBTCTL, cmd, "--help"])
        check(u.returncode == 0 and u.stdout.startswith("usage: pbtctl "), f"pbtctl {cmd} --help: {u.stdout!r}")
        usage = u.stdout.splitlines()[0]
        used = set(OPTION.findall(usage)) - {"-"}
        documented = set(OPTION.findall(headings[cmd]))
        check(used == documented, f"pbtctl {cmd}: usage has {sorted(used)}, man page heading {sorted(documented)}")
    print(f"pbtctl: {len(commands)} commands, --help = man page")


def project_version():
    r = run(["meson", "introspect", "--projectinfo", harness.BUILD])
    check(r.returncode == 0, f"meson introspect: {r.stderr}")
    return json.loads(r.stdout)["version"]


def test_version_everywhere():
    version = project_version()
    for name, exe in [(n, e) for n, e, _ in PROGRAMS] + [("pbt-bench", BENCH)]:
        r = run([exe, "--version"])
        check(r.returncode == 0 and r.stdout == f"{name} {version}\n", f"{name} --version: {r.stdout!r}")
    for name, _, page in PROGRAMS:
        with open(page) as f:
            th = f.readline()
        check(f'"pbt {version}"' in th, f"{page}: {th.strip()}")
    print(f"version {version} everywhere")


if __name__ == "__main__":
    harness.run_tests([test_options_match_man_pages, test_pbtctl_commands_match_man_page, test_version_everywhere])
