#!/usr/bin/env bash
# A learning check in one run: trains with PBT on and off side by side
# under the same budget (same config, same number of workers each, started
# together, so each run gets the same share of the machine) and prints,
# every minute, each agent's exploitability and the recommended agent's,
# then a final table.
#
#   MINUTES     training budget (default 10)
#   WORKERS     workers per run (default 2)
#   RUNS        which runs: "on off" (default), "on" or "off"
#   PBT_CONFIG  a config file instead of pbtd's embedded default
#   EXTRA       INI lines appended to both runs' config (e.g. $'[pbt]\nmatchmaking = pfsp')
#   FRAMES      soccer: the best response's budget (pbtctl exploit --frames)
#   BUILD       the build directory (default build); NO_BUILD=1 uses it as is
#
# PBT off is the same configuration with [pbt] t_select = 0 (no agent ever
# takes another's weights). rps: exploitability is exact (pbtctl exploit
# --exact: the best response by dynamic programming; 0 unexploitable, 10
# fully exploitable over a 10-round episode). soccer: minute by minute only
# the ratings and the recommendation are printed; at the end the
# recommended agent of each run faces an RL best response (pbtctl exploit).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ -z "${NO_BUILD:-}" ]; then
  [ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
  ninja -C "$BUILD" >/dev/null
fi
MINUTES=${MINUTES:-10}
WORKERS=${WORKERS:-2}
RUNS=${RUNS:-on off}
TOP=$(mktemp -d "${TMPDIR:-/tmp}/pbt-learn-check.XXXXXX")
PIDS=()
WPIDS=()
cleanup() {
  for p in "${WPIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

base="$TOP/base.ini"
if [ -n "${PBT_CONFIG:-}" ]; then cp "$PBT_CONFIG" "$base"; else "$BUILD/daemon/pbtd" --print-config >"$base"; fi
[ -n "${EXTRA:-}" ] && printf '\n%s\n' "$EXTRA" >>"$base"
ENV_NAME=$(awk -F' *= *' '/^\[/{s=$0} s=="[population]" && $1=="env"{print $2}' "$base" | tail -1)
ENV_NAME=${ENV_NAME:-rps}

ctl() { local run=$1; shift; "$BUILD/cli/pbtctl" --endpoint "ipc://$TOP/$run/control.sock" --timeout 20000 "$@"; }

for run in $RUNS; do
  mkdir -p "$TOP/$run"
  cp "$base" "$TOP/$run/pbtd.ini"
  [ "$run" = off ] && printf '\n[pbt]\nt_select = 0\n' >>"$TOP/$run/pbtd.ini"
  "$BUILD/daemon/pbtd" --config "$TOP/$run/pbtd.ini" --db "$TOP/$run/pbt.db" \
    --worker-endpoint "ipc://$TOP/$run/worker.sock" --control-endpoint "ipc://$TOP/$run/control.sock" \
    2>"$TOP/$run/pbtd.log" &
  PIDS+=($!)
done
for run in $RUNS; do
  for _ in $(seq 100); do ctl "$run" --timeout 200 status >/dev/null 2>&1 && break; sleep 0.1; done
  for i in $(seq "$WORKERS"); do
    "$BUILD/worker/pbt-worker" --connect "ipc://$TOP/$run/worker.sock" --id "$run-$i" 2>"$TOP/$run/worker-$i.log" &
    WPIDS+=($!)
  done
done
echo "learn-check: env $ENV_NAME, runs: $RUNS, $WORKERS workers each, $MINUTES minutes; state in $TOP"
echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# One line per run: time, results, evolutions, each agent's exploitability,
# the mean, the recommended agent and its exploitability.
snapshot() {
  local run=$1 minute=$2
  ctl "$run" status --json >"$TOP/$run/status.json"
  local agents
  agents=$(python3 -c 'import json,sys; print(" ".join(a["id"] for a in json.load(open(sys.argv[1]))["agents"]))' "$TOP/$run/status.json")
  : >"$TOP/$run/exploit.txt"
  if [ "$ENV_NAME" = rps ]; then
    for a in $agents; do
      # the version is pinned so the value belongs to the weights the status saw
      ctl "$run" exploit "$a" --exact --json >>"$TOP/$run/exploit.txt" || echo '{}' >>"$TOP/$run/exploit.txt"
    done
  fi
  python3 - "$run" "$minute" "$TOP/$run/status.json" "$TOP/$run/exploit.txt" <<'PY'
import json, sys
run, minute, status_path, exploit_path = sys.argv[1:5]
st = json.load(open(status_path))
ex = {}
for line in open(exploit_path):
    line = line.strip()
    if line.startswith("{") and line != "{}":
        j = json.loads(line)
        ex[j["agent"]] = j["exact"]
agents = st["agents"]
rec = st.get("recommended") or max(agents, key=lambda a: a["rating"])["id"]
vals = [ex[a["id"]] for a in agents if a["id"] in ex]
mean = sum(vals) / len(vals) if vals else float("nan")
head = (f"[{run:>3} {minute:>2} min] results {st.get('results', 0):>6.0f}  "
        f"evolutions {st.get('evolutions', 0):>4.0f}  ")
if ex:      # rps: each agent's exact exploitability
    cells = "  ".join(f"{a['id']} {ex[a['id']]:5.2f}" if a["id"] in ex else f"{a['id']}    -"
                      for a in agents)
    print(f"{head}{cells}  mean {mean:5.2f}  recommended {rec} {ex.get(rec, float('nan')):5.2f}", flush=True)
else:       # no exact value: the ratings, and the recommendation
    cells = "  ".join(f"{a['id']} {a['rating']:+6.1f}" for a in agents)
    print(f"{head}elo {cells}  recommended {rec}", flush=True)
json.dump({"agents": {a["id"]: ex.get(a["id"]) for a in agents},
           "ratings": {a["id"]: a["rating"] for a in agents}, "mean": mean, "recommended": rec,
           "recommended_value": ex.get(rec), "results": st.get("results"),
           "evolutions": st.get("evolutions"),
           "frames": sum(a.get("frames", 0) for a in agents)},
          open(status_path.replace("status.json", f"minute-{minute}.json"), "w"))
PY
}

start=$(date +%s)
for m in $(seq "$MINUTES"); do
  sleep $(( start + 60 * m - $(date +%s) > 0 ? start + 60 * m - $(date +%s) : 0 ))
  for run in $RUNS; do snapshot "$run" "$m"; done
done
# Training stops here; pbtd keeps serving the agents' states to exploit.
for p in "${WPIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
WPIDS=()
if [ "$ENV_NAME" != rps ]; then
  for run in $RUNS; do
    rec=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["recommended"])' "$TOP/$run/minute-$MINUTES.json")
    echo "PBT $run: best response against the recommended agent $rec:"
    ctl "$run" exploit "$rec" ${FRAMES:+--frames "$FRAMES"} | tee "$TOP/$run/exploit-final.txt"
  done
fi
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
PIDS=()

echo
if [ "$ENV_NAME" = rps ]; then
  echo "final table ($MINUTES minutes, $WORKERS workers per run; exploitability: 0 unexploitable, 10 fully exploitable)"
else
  echo "final table ($MINUTES minutes, $WORKERS workers per run; Elo, and the best response's mean score against the recommended agent)"
fi
python3 - "$TOP" "$MINUTES" $RUNS <<'PY'
import json, re, sys
top, minutes, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
data = {r: json.load(open(f"{top}/{r}/minute-{minutes}.json")) for r in runs}
agents = sorted({a for d in data.values() for a in d["agents"]}, key=lambda s: int(s.split("_")[1]))
print(f"{'agent':<10}" + "".join(f"{'PBT ' + r:>12}" for r in runs))
if all(v is None for d in data.values() for v in d["agents"].values()):
    # no exact values (not rps): ratings, the recommendation and its best response
    for a in agents:
        print(f"{a:<10}" + "".join(f"{data[r]['ratings'].get(a, float('nan')):>+12.1f}" for r in runs))
    print(f"{'recommended':<10}" + "".join(f"{data[r]['recommended']:>12}" for r in runs))
    def br(r):
        m = re.search(r"best response vs \S+: mean score (\S+)", open(f"{top}/{r}/exploit-final.txt").read())
        return float(m.group(1)) if m else float("nan")
    print(f"{'best resp.':<10}" + "".join(f"{br(r):>12.3f}" for r in runs))
    print(f"{'results':<10}" + "".join(f"{data[r]['results']:>12.0f}" for r in runs))
    print(f"{'evolutions':<10}" + "".join(f"{data[r]['evolutions']:>12.0f}" for r in runs))
    sys.exit(0)
for a in agents:
    row = "".join(f"{data[r]['agents'].get(a):>12.2f}" if data[r]['agents'].get(a) is not None else f"{'-':>12}" for r in runs)
    print(f"{a:<10}{row}")
print(f"{'mean':<10}" + "".join(f"{data[r]['mean']:>12.2f}" for r in runs))
print(f"{'recommended':<10}" + "".join(f"{data[r]['recommended'] + ' ' + format(data[r]['recommended_value'] or float('nan'), '.2f'):>12}" for r in runs))
print(f"{'best':<10}" + "".join(f"{min(v for v in data[r]['agents'].values() if v is not None):>12.2f}" for r in runs))
print(f"{'results':<10}" + "".join(f"{data[r]['results']:>12.0f}" for r in runs))
print(f"{'evolutions':<10}" + "".join(f"{data[r]['evolutions']:>12.0f}" for r in runs))
print(f"{'frames':<10}" + "".join(f"{data[r]['frames']:>12.3g}" for r in runs))
PY
echo "state: $TOP"
