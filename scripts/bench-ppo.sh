#!/usr/bin/env bash
# PPO training throughput: pbt-bench ppo against the PyTorch reference
# (shared/bench/ppo_torch_rps.py), same configuration, both pinned to CPU 0.
# Usage: scripts/bench-ppo.sh [build-dir] [extra args for both, e.g. --iters 20]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
REF=${PBT_TORCH_REF:-}
for cand in shared/bench/ppo_torch_rps.py ../shared/bench/ppo_torch_rps.py /work/shared/bench/ppo_torch_rps.py; do
  if [ -z "$REF" ] && [ -f "$cand" ]; then REF=$cand; fi
done
[ -n "$REF" ] || { echo "bench-ppo: ppo_torch_rps.py not found (set PBT_TORCH_REF)" >&2; exit 2; }
[ -x "$BUILD/bench/pbt-bench" ] || ninja -C "$BUILD" bench/pbt-bench
c_out=$(taskset -c 0 "$BUILD/bench/pbt-bench" ppo "$@")
echo "pbt-bench ppo:"
echo "$c_out" | sed 's/^/  /'
t_out=$(taskset -c 0 /usr/bin/python3 "$REF" --threads 1 "$@")
echo "torch reference ($REF):"
echo "$t_out" | sed 's/^/  /'
c=$(echo "$c_out" | sed -n 's/^samples_per_s=//p')
t=$(echo "$t_out" | sed -n 's/^samples_per_s=//p')
awk -v c="$c" -v t="$t" 'BEGIN { printf "ratio=%.2f\n", c / t }'
