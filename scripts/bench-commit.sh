#!/usr/bin/env bash
# The commit path before and after, side by side in one run: pbt-bench
# load (256 workers, 64 KiB states, population 64) against each build's
# pbtd, alternating builds, on disk (/tmp) and on tmpfs (/dev/shm), with
# the machine's load before each run. Per run: results/s, pbtd's own
# turnaround p99, pbtd CPU (percent of one core) and CPU per result, and
# group commits (batches) from pbtd's log.
# Usage: scripts/bench-commit.sh BEFORE-BUILD AFTER-BUILD [seconds (20)] [rounds (2)]
set -euo pipefail
BEFORE=$1 AFTER=$2 SECS=${3:-20} ROUNDS=${4:-2}
run () {    # label build tmpdir
  local out dir
  echo "-- $1 $3 $(uptime | sed 's/.*load/load/')"
  out=$("$2/bench/pbt-bench" load --workers 256 --state-kib 64 --population 64 \
        --seconds "$SECS" --tmpdir "$3" --log-level info --keep 2>&1)
  dir=$(sed -n 's/^pbt-bench: kept //p' <<<"$out")
  grep -E '^(results=|pbtd_cpu_pct|pbtd_turnaround|lost=)' <<<"$out"
  awk -F'[ =]' '/^results=/ {for (i=1;i<NF;i++) if ($i=="results_per_s") r=$(i+1)}
       /^pbtd_cpu_pct=/ {c=$2} END {if (r>0) printf "pbtd_cpu_ms_per_result=%.3f\n", c*10/r}' <<<"$out"
  grep -o 'event=stopped.*' "$dir/pbtd.log" || true
  rm -rf "$dir"
}
for round in $(seq "$ROUNDS"); do
  for tmp in /tmp /dev/shm; do
    run before "$BEFORE" "$tmp"
    run after "$AFTER" "$tmp"
  done
done
