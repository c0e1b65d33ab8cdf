#!/usr/bin/env bash
# Real workers, 1 then 2 (issue 9.4): pbtd on its embedded default config
# with N single-threaded pbt-worker processes; samples/s is the growth of
# the population's trained frames (one frame = one action by one agent)
# over SECONDS after a WARMUP, read from `pbtctl status --json`. Each worker's
# duty cycle is the share of that window it spent in matches: the `seconds`
# of its assignment_finished log lines inside the window over the window
# (the same for any version of the worker; a newer one also reports its
# own counters in `pbtctl workers`).
#   scripts/bench-workers.sh [BUILD] ; env SECONDS_RUN (30), WARMUP (5), MAX_WORKERS (2),
#   PBT_CONFIG (a config file instead of the embedded default)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
RUN=${SECONDS_RUN:-30}
WARMUP=${WARMUP:-5}
MAXW=${MAX_WORKERS:-2}
frames() {
  "$BUILD/cli/pbtctl" --endpoint "$1" status --json |
    /usr/bin/python3 -c 'import json,sys; print(sum(a["frames"] for a in json.load(sys.stdin)["agents"]))'
}
declare -A rate
for n in $(seq 1 "$MAXW"); do
  dir=$(mktemp -d /tmp/pbt-bw.XXXXXX)
  cfg=()
  [ -n "${PBT_CONFIG:-}" ] && cfg=(--config "$PBT_CONFIG")
  "$BUILD/daemon/pbtd" "${cfg[@]}" --db "$dir/pbt.db" --worker-endpoint "ipc://$dir/w" \
    --control-endpoint "ipc://$dir/c" --log-level warn 2>"$dir/pbtd.log" &
  pbtd=$!
  pids=()
  for i in $(seq 1 "$n"); do
    OPENBLAS_NUM_THREADS=1 "$BUILD/worker/pbt-worker" --connect "ipc://$dir/w" --log-level info \
      2>"$dir/w$i.log" &
    pids+=($!)
  done
  sleep "$WARMUP"
  f0=$(frames "ipc://$dir/c"); t0=$(date +%s.%N)
  sleep "$RUN"
  f1=$(frames "ipc://$dir/c"); t1=$(date +%s.%N)
  "$BUILD/cli/pbtctl" --endpoint "ipc://$dir/c" workers > "$dir/workers.txt" || true
  kill -TERM "${pids[@]}" "$pbtd" 2>/dev/null || true
  wait 2>/dev/null || true
  rate[$n]=$(/usr/bin/python3 -c "print(round(($f1 - $f0) / ($t1 - $t0)))")
  echo "workers=$n samples_per_s=${rate[$n]}"
  for i in $(seq 1 "$n"); do
    /usr/bin/python3 - "$dir/w$i.log" "$t0" "$t1" <<'PY'
import datetime, re, sys
path, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
busy = 0.0
for line in open(path):
    m = re.match(r"ts=(\S+)Z .*event=assignment_finished .*seconds=([\d.]+)", line)
    if m:
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        if t0 <= t <= t1:
            busy += float(m.group(2))
print(f"  worker {path.rsplit('/', 1)[1][:-4]}: duty_cycle={busy / (t1 - t0):.3f} (from its log)")
PY
  done
  sed 's/^/  /' "$dir/workers.txt"
  rm -rf "$dir"
done
if [ "$MAXW" -ge 2 ]; then
  /usr/bin/python3 -c "print('ratio_2_over_1=%.3f' % (${rate[2]} / ${rate[1]}))"
fi
