#!/usr/bin/env bash
# PPO training throughput: pbt-bench ppo against the PyTorch reference
# (shared/bench/ppo_torch_rps.py), same configuration, both pinned to CPU 0.
# The two run interleaved (C, torch, C, torch, ...) for ROUNDS rounds so a
# burst of other load hits both sides alike; the figure to quote is the
# median ratio. Each side is also measured in process CPU time (torch's by
# running the unchanged reference with its clock swapped for process_time),
# which other load on the machine disturbs much less than wall time.
# Usage: scripts/bench-ppo.sh [build-dir] [extra args for both, e.g. --iters 20]
# Env: ROUNDS (default 3), PBT_TORCH_REF (path of ppo_torch_rps.py).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
ROUNDS=${ROUNDS:-3}
REF=${PBT_TORCH_REF:-}
for cand in shared/bench/ppo_torch_rps.py ../shared/bench/ppo_torch_rps.py /work/shared/bench/ppo_torch_rps.py; do
  if [ -z "$REF" ] && [ -f "$cand" ]; then REF=$cand; fi
done
[ -n "$REF" ] || { echo "bench-ppo: ppo_torch_rps.py not found (set PBT_TORCH_REF)" >&2; exit 2; }
[ -x "$BUILD/bench/pbt-bench" ] || ninja -C "$BUILD" bench/pbt-bench

# The reference as is, and the reference timed by CPU time.
torch_wall() { taskset -c 0 /usr/bin/python3 "$REF" --threads 1 "$@" | sed -n 's/^samples_per_s=//p'; }
torch_cpu() {
  taskset -c 0 /usr/bin/python3 - "$REF" --threads 1 "$@" <<'PY' | sed -n 's/^samples_per_s=//p'
import runpy, sys, time
ref = sys.argv[1]
sys.argv = sys.argv[1:]
time.perf_counter = time.process_time
runpy.run_path(ref, run_name="__main__")
PY
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

c_wall=() c_cpu=() t_wall=() t_cpu=() ratio=() ratio_cpu=() rss=()
for r in $(seq "$ROUNDS"); do
  out=$(taskset -c 0 "$BUILD/bench/pbt-bench" ppo "$@")
  cw=$(echo "$out" | sed -n 's/^samples_per_s=//p')
  cc=$(echo "$out" | sed -n 's/^cpu_samples_per_s=//p')
  rs=$(echo "$out" | sed -n 's/^peak_rss_mb=//p')
  tw=$(torch_wall "$@")
  tc=$(torch_cpu "$@")
  c_wall+=("$cw"); c_cpu+=("$cc"); t_wall+=("$tw"); t_cpu+=("$tc"); rss+=("$rs")
  ratio+=("$(awk -v c="$cw" -v t="$tw" 'BEGIN { printf "%.3f", c / t }')")
  ratio_cpu+=("$(awk -v c="$cc" -v t="$tc" 'BEGIN { printf "%.3f", c / t }')")
  printf 'round %d: C wall=%s cpu=%s rss_mb=%s | torch wall=%s cpu=%s | ratio wall=%s cpu=%s\n' \
    "$r" "$cw" "$cc" "$rs" "$tw" "$tc" "${ratio[-1]}" "${ratio_cpu[-1]}"
done
printf 'C samples_per_s:     best=%s median=%s\n' \
  "$(printf '%s\n' "${c_wall[@]}" | sort -g | tail -1)" "$(printf '%s\n' "${c_wall[@]}" | median)"
printf 'C cpu_samples_per_s: best=%s median=%s\n' \
  "$(printf '%s\n' "${c_cpu[@]}" | sort -g | tail -1)" "$(printf '%s\n' "${c_cpu[@]}" | median)"
printf 'torch samples_per_s:     best=%s median=%s\n' \
  "$(printf '%s\n' "${t_wall[@]}" | sort -g | tail -1)" "$(printf '%s\n' "${t_wall[@]}" | median)"
printf 'torch cpu_samples_per_s: best=%s median=%s\n' \
  "$(printf '%s\n' "${t_cpu[@]}" | sort -g | tail -1)" "$(printf '%s\n' "${t_cpu[@]}" | median)"
printf 'peak_rss_mb=%s\n' "$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)"
printf 'ratio=%s\n' "$(printf '%s\n' "${ratio[@]}" | median)"
printf 'ratio_cpu=%s\n' "$(printf '%s\n' "${ratio_cpu[@]}" | median)"
