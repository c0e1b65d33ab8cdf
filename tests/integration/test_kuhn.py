"""Kuhn poker, out of tree: install pbt into a DESTDIR, build
examples/kuhn against the installed pbt/env.h only (pkg-config pbt-env),
train a population with the installed pbtd and workers, evaluate and
export an agent, and compute its exact NashConv (examples/kuhn/nashconv.py,
whose known answers are checked first)."""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import harness
from harness import Failure, check

KUHN_SRC = os.path.join(harness.SOURCE, "examples", "kuhn")
sys.path.insert(0, KUHN_SRC)
import nashconv  # noqa: E402

CONFIG = """
[population]
size = 4
env = kuhn

[env]
plugin = {plugin}

[model]
hidden = 32,32

[hparam.lr]
init = 0.003

# Half the training matches against the game's own "random" script: the
# check below (some agent beats random) then measures learning, not where
# four agents that train only on each other happen to settle (in some runs
# three of four sat where random scores ~0 against them).
[pbt]
script_rate = 0.5
script_opponents = random

[ppo]
n_envs = 16
n_steps = 32
iterations = 2
epochs = 4
minibatches = 4
"""


def install(dest):
    subprocess.run(["meson", "install", "-C", harness.BUILD, "--destdir", dest, "--no-rebuild",
                    "--quiet"], check=True, capture_output=True)
    pcs = glob.glob(os.path.join(dest, "**", "pkgconfig", "pbt-env.pc"), recursive=True)
    check(len(pcs) == 1, f"pbt-env.pc installed once, found {pcs}")
    bins = glob.glob(os.path.join(dest, "**", "bin", "pbtd"), recursive=True)
    check(len(bins) == 1, f"pbtd installed once, found {bins}")
    return os.path.dirname(pcs[0]), os.path.dirname(bins[0])


def build_kuhn(pcdir, dest, work):
    """cc against the installed header only: the copy lives outside the
    source tree and the include path comes from pkg-config."""
    src = os.path.join(work, "kuhn")
    shutil.copytree(KUHN_SRC, src)
    env = dict(os.environ, PKG_CONFIG_PATH=pcdir, PKG_CONFIG_SYSROOT_DIR=dest)
    cflags = subprocess.run(["pkg-config", "--cflags", "pbt-env"], env=env, check=True,
                            capture_output=True, text=True).stdout.split()
    check(cflags and all(f.startswith("-I" + dest) for f in cflags if f.startswith("-I")),
          f"pkg-config points into the DESTDIR: {cflags}")
    plugdir = os.path.join(work, "envs")
    os.makedirs(plugdir)
    out = os.path.join(plugdir, "kuhn.so")
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror"] + cflags +
                       ["-o", out, os.path.join(src, "kuhn.c")], capture_output=True, text=True)
    check(r.returncode == 0, f"building kuhn.so failed: {r.stderr}")
    return plugdir, out


def test_nashconv_known_answers():
    nashconv.check()


def test_kuhn_from_installed_header():
    work = tempfile.mkdtemp(prefix="pbt-kuhn-")
    dest = os.path.join(work, "dest")
    try:
        pcdir, bindir = install(dest)
        plugdir, plugin = build_kuhn(pcdir, dest, work)
        # The installed programs, not the build tree's.
        harness.PBTD, harness.WORKER, harness.PBTCTL = (
            os.path.join(bindir, "pbtd"), os.path.join(bindir, "pbt-worker"),
            os.path.join(bindir, "pbtctl"))
        os.environ["PBT_ENV_PATH"] = plugdir
        c = harness.Cluster(CONFIG.format(plugin=plugin), name="kuhn")
        try:
            c.start_pbtd()
            # A worker without the game is refused (wrong_env) and stops.
            os.environ["PBT_ENV_PATH"] = os.path.join(work, "none")
            lone = c.start_worker()
            check(lone.wait(timeout=30) == 1, "a worker without kuhn exits 1")
            c.workers.remove(lone)
            with open(lone.log_path) as f:
                check("wrong_env" in f.read(), "the refused worker says wrong_env")
            os.environ["PBT_ENV_PATH"] = plugdir
            untrained = os.path.join(c.dir, "untrained.safetensors")
            c.ctl("export", "agt_0", "-o", untrained)
            c.start_worker()
            c.start_worker()
            c.wait_results(100, timeout=240)   # 40 once left every agent within 0.05 of uniform
            # Stop training so eval and export see the same version.
            for w in c.workers:
                w.terminate()
                w.wait(timeout=30)
            c.workers = []
            st = c.status()
            best = max(st["agents"], key=lambda a: a["rating"])["id"]
            n = 2000
            ev = json.loads(c.ctl("eval", best, "--vs", "random", "--episodes", str(n),
                                  "--json").stdout)
            check(ev["episodes"] == n, f"eval played {n} hands: {ev}")
            exported = os.path.join(c.dir, "best.safetensors")
            c.ctl("export", best, "-o", exported)
            pol0, pol = nashconv.exported_policy(untrained), nashconv.exported_policy(exported)
            before, after = float(nashconv.nashconv(pol0)), float(nashconv.nashconv(pol))
            # The exported policy as player 0 against the uniform script,
            # exactly; pbtctl eval plays that match with the worker's code.
            vs_random = lambda p: float(nashconv.value(
                lambda player, card, hist: p(player, card, hist) if player == 0 else 0.5))
            exact = vs_random(pol)
            print(f"kuhn: {st['results']} results; {best} NashConv {after:.4f} (untrained "
                  f"agt_0 {before:.4f}); vs random: exact {exact:.4f}, eval {ev['mean_score']:.4f} "
                  f"+- {ev['score_sd'] / n ** 0.5:.4f}", flush=True)
            # The untrained network is near uniform (policy output gain 0.01).
            check(abs(before - 11 / 12) < 0.02, f"untrained NashConv {before} is not ~11/12")
            check(abs(vs_random(pol0) - 0.125) < 0.01, "untrained vs random is not ~1/8")
            # Export, eval and the worker agree: the eval's mean is the exact value.
            se = ev["score_sd"] / n ** 0.5
            check(abs(ev["mean_score"] - exact) < 4 * se + 1e-3,
                  f"eval mean {ev['mean_score']} is not the exported policy's value {exact}")
            # Training did something: some agent is better than uniform against
            # random (the best-rated one after a few dozen results need not be).
            values = {}
            for a in st["agents"]:
                path = os.path.join(c.dir, f"{a['id']}.safetensors")
                c.ctl("export", a["id"], "-o", path)
                values[a["id"]] = vs_random(nashconv.exported_policy(path))
            check(max(values.values()) > 0.125 + 0.05,
                  f"every trained agent's value vs random is ~uniform's (0.125): {values}")
            check(0 <= after <= 3, f"NashConv {after} out of range")
            check(c.stop() == 0, "pbtd exits 0")
        finally:
            c.stop(keep=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    harness.run_tests([test_nashconv_known_answers, test_kuhn_from_installed_header])
