#!/usr/bin/env bash
# The main job: install, build, then run pbtd on its embedded default
# configuration (8 agents playing rock-paper-scissors) in a fresh state
# directory with two local workers, for a bounded budget, showing progress,
# and finish with `pbtctl status`.
#   RUN_SECONDS   training budget (default 60)
#   PBT_CONFIG    a config file instead of the embedded default
#   PBT_ENV       set to "soccer" to run the soccer example config
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
BUILD=${BUILD:-build}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null

SECS=${RUN_SECONDS:-60}
STATE=$(mktemp -d "${TMPDIR:-/tmp}/pbt-run.XXXXXX")
WEP=${PBT_WORKER_ENDPOINT:-ipc://$STATE/worker.sock}
CEP=${PBT_CONTROL_ENDPOINT:-ipc://$STATE/control.sock}
CFG=()
[ -n "${PBT_CONFIG:-}" ] && CFG=(--config "$PBT_CONFIG")
[ "${PBT_ENV:-}" = soccer ] && CFG=(--config docs/examples/soccer.ini)

echo "state directory: $STATE"
"$BUILD/daemon/pbtd" "${CFG[@]}" --db "$STATE/pbt.db" \
  --worker-endpoint "$WEP" --control-endpoint "$CEP" 2>"$STATE/pbtd.log" &
PBTD=$!
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  kill -TERM "$PBTD" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
for i in 1 2; do
  "$BUILD/worker/pbt-worker" --connect "$WEP" --id "local-$i" 2>"$STATE/worker-$i.log" &
  pids+=($!)
done
CTL=("$BUILD/cli/pbtctl" --endpoint "$CEP")
# wait for pbtd to answer
for _ in $(seq 50); do "${CTL[@]}" --timeout 200 status >/dev/null 2>&1 && break; sleep 0.2; done
"${CTL[@]}" watch --seconds "$SECS"
echo
"${CTL[@]}" status
echo
echo "logs and database: $STATE"
