#!/bin/sh
# Train Kuhn poker for SECONDS (default 600) with WORKERS workers (default
# 2), then print every agent's exact NashConv. Needs pbtd, pbt-worker,
# pbtctl on PATH (or PBT_BIN=dir) and kuhn.so built here.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
secs=${SECONDS_TO_RUN:-600}; workers=${WORKERS:-2}
bin=${PBT_BIN:-}; [ -n "$bin" ] && bin="$bin/"
dir=$(mktemp -d /tmp/pbt-kuhn-run.XXXXXX)
export PBT_ENV_PATH="$here"
"${bin}pbtd" --config "$here/kuhn.ini" --db "$dir/pbt.db" --worker-endpoint "ipc://$dir/w" \
    --control-endpoint "ipc://$dir/c" 2>"$dir/pbtd.log" &
pbtd=$!
sleep 1
pids=""
for i in $(seq "$workers"); do
    "${bin}pbt-worker" --connect "ipc://$dir/w" 2>"$dir/worker$i.log" &
    pids="$pids $!"
done
sleep "$secs"
kill $pids; wait $pids 2>/dev/null || true
ctl="${bin}pbtctl --endpoint ipc://$dir/c"
$ctl status
for a in $($ctl status --json | python3 -c 'import json,sys; print(" ".join(a["id"] for a in json.load(sys.stdin)["agents"]))'); do
    $ctl export "$a" -o "$dir/$a.safetensors" >/dev/null
    printf '%s ' "$a"; python3 "$here/nashconv.py" "$dir/$a.safetensors"
done
kill $pbtd; wait $pbtd 2>/dev/null || true
echo "state: $dir"
