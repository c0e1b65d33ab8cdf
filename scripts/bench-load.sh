#!/usr/bin/env bash
# pbtd under load (issue 9): the target runs of `pbt-bench load`, each
# against its own fresh pbtd. Figures are key=value lines; see
# `pbt-bench load --help`. Targets: results_per_s >= 2000 at 256 workers /
# 64 KiB state / population 64, assignment latency p99 < 10 ms (pbtd's own
# part: pbtd_turnaround_*; p50_ms/p99_ms also include queueing for a free
# agent, 224 of 256 workers always wait for 32 slots), rss and disk
# (db_mb = database + WAL + state store) flat, and status_ms_p99 < 100 with
# 1000 agents. docs/scaling.md explains the figures.
# Usage: scripts/bench-load.sh [build-dir] [seconds (default 60)]
#   LONG=1  also run 10 minutes with a progress line every 30 s (RSS flatness)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SECS=${2:-60}
[ -x "$BUILD/bench/pbt-bench" ] && [ -x "$BUILD/daemon/pbtd" ] || ninja -C "$BUILD" bench/pbt-bench daemon/pbtd
B="$BUILD/bench/pbt-bench"
echo "== 256 workers, 64 KiB state, population 64, ${SECS} s"
"$B" load --workers 256 --state-kib 64 --population 64 --seconds "$SECS" --progress 10
echo "== same, database on tmpfs (no disk: pbtd's CPU cost alone)"
"$B" load --workers 256 --state-kib 64 --population 64 --seconds "$SECS" --tmpdir /dev/shm
echo "== 32 workers, population 64 (agents always free: request->assign is pure service time)"
"$B" load --workers 32 --state-kib 64 --population 64 --seconds "$SECS"
echo "== status with 1000 agents, idle"
"$B" load --status-population 1000 --state-kib 64 --seconds 5 --warmup 0
if [ -n "${LONG:-}" ]; then
  echo "== 10 minutes (RSS and database size flat; match history capped at 200k episodes)"
  "$B" load --workers 256 --state-kib 64 --population 64 --seconds 600 --progress 30 \
    --matches-keep 200000
fi
