#!/usr/bin/env bash
# pbtd on a small tmpfs until the disk fills (or MAX_SECONDS pass), then the
# mount grows and training must resume by itself (docs/failures.md, "Disk
# space"). Needs root (mount). Prints results, bytes used and whether
# results resumed; checks the database with PRAGMA integrity_check.
#   scripts/disk-fill.sh [BUILD] [CONFIG] ; env SIZE (20m), MAX_SECONDS (240)
set -u
cd "$(dirname "$0")/.."
B=${1:-build}
M=$(mktemp -d /tmp/pbt-diskfill.XXXXXX)
mount -t tmpfs -o "size=${SIZE:-20m}" tmpfs "$M" || { echo "disk-fill: cannot mount a tmpfs (root?)"; exit 1; }
cfg=(); [ -n "${2:-}" ] && cfg=(--config "$2")
"$B/daemon/pbtd" "${cfg[@]}" --db "$M/pbt.db" --worker-endpoint "ipc://$M/w" \
  --control-endpoint "ipc://$M/c" 2>"$M.pbtd.log" &
P=$!
sleep 1
"$B/worker/pbt-worker" --connect "ipc://$M/w" 2>/dev/null & W1=$!
"$B/worker/pbt-worker" --connect "ipc://$M/w" 2>/dev/null & W2=$!
results() {
  "$B/cli/pbtctl" --endpoint "ipc://$M/c" status --json 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["results"])' 2>/dev/null || echo "?"
}
last=-1; still=0; t0=$(date +%s); max_used=0; el=0
while [ $still -lt 10 ] && [ $el -lt "${MAX_SECONDS:-240}" ]; do   # stalled: 10 polls, 2 s apart
  sleep 2
  r=$(results)
  used=$(df -B1 --output=used "$M" | tail -1)
  [ "$used" -gt "$max_used" ] && max_used=$used
  if [ "$r" = "$last" ]; then still=$((still + 1)); else still=0; fi
  last=$r; el=$(( $(date +%s) - t0 ))
done
echo "results $last after ${el}s; filled: $([ $still -ge 10 ] && echo yes || echo no); most used $((max_used / 1000)) kB"
du -sk "$M/pbt.db" "$M/pbt.db-wal" "$M/pbt.db-states"
echo "'disk is full' log lines: $(grep -c 'disk is full\|No space left' "$M.pbtd.log")"
mount -o remount,size=200m "$M"
sleep 15
echo "15 s after remount,size=200m: results $(results)"
kill $W1 $W2; wait $W1 $W2 2>/dev/null
kill $P; wait $P
echo "integrity_check: $(sqlite3 "$M/pbt.db" 'PRAGMA integrity_check')"
umount "$M"; rm -rf "$M" "$M.pbtd.log"
