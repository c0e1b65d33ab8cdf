#!/usr/bin/env bash
# The soccer learning check (issue 8): train the default soccer config with
# two local workers for DURATION seconds (default 1800) and, every INTERVAL
# seconds (default 300), evaluate the best-rated agent against the scripted
# random and chaser teams with `pbtctl eval`, two ways:
#   - EPISODES training episodes (a goal ends one): mean, goals for (= win
#     rate) and goals against (= loss rate) per episode;
#   - GAMES full-time games (--env full_time=1: 45 s, kick-off after each
#     goal): mean goal difference per game, game win and loss rates.
# Prints one CSV row per check (columns in the header it prints).
# The state directory (database, logs, curves.csv) is kept.
#   NICE=19 runs the training at low priority (e.g. beside benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DURATION=${DURATION:-1800}
INTERVAL=${INTERVAL:-300}
EPISODES=${EPISODES:-200}
GAMES=${GAMES:-100}
NICE=${NICE:-0}
STATE=$(mktemp -d "${TMPDIR:-/tmp}/pbt-soccer.XXXXXX")
WEP=ipc://$STATE/w.sock
CEP=ipc://$STATE/c.sock
nice -n "$NICE" "$BUILD/daemon/pbtd" --config ${SOCCER_CONFIG:-docs/examples/soccer.ini} --db "$STATE/pbt.db" \
  --worker-endpoint "$WEP" --control-endpoint "$CEP" 2>"$STATE/pbtd.log" &
PBTD=$!
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; kill -TERM "$PBTD" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
for i in 1 2; do
  nice -n "$NICE" "$BUILD/worker/pbt-worker" --connect "$WEP" --id "soccer-$i" 2>"$STATE/worker-$i.log" &
  pids+=($!)
done
CTL=("$BUILD/cli/pbtctl" --endpoint "$CEP" --timeout 30000)
sleep 2
echo "state: $STATE" >&2
echo "elapsed_s,frames_total,best_agent,best_rating,rnd_ep_mean,rnd_ep_for,rnd_ep_against,rnd_game_diff,rnd_game_win,rnd_game_loss,chs_ep_mean,chs_ep_for,chs_ep_against,chs_game_diff,chs_game_win,chs_game_loss" | tee "$STATE/curves.csv"
start=$(date +%s)
while :; do
  now=$(date +%s); el=$((now - start))
  st=$("${CTL[@]}" status --json)
  read -r best rating frames < <(echo "$st" | /usr/bin/python3 -c '
import json,sys
s=json.load(sys.stdin); a=max(s["agents"], key=lambda a: a["rating"])
print(a["id"], a["rating"], sum(x["frames"] for x in s["agents"]))')
  row="$el,$frames,$best,$rating"
  for opp in random chaser; do
    for mode in episodes games; do
      if [ "$mode" = episodes ]; then
        ev=$("${CTL[@]}" eval "$best" --vs "$opp" --episodes "$EPISODES" --seed "$el" --json)
      else
        ev=$("${CTL[@]}" eval "$best" --vs "$opp" --episodes "$GAMES" --seed "$el" --env full_time=1 --json)
      fi
      row="$row,$(echo "$ev" | /usr/bin/python3 -c '
import json,sys
e=json.load(sys.stdin); print("%.4f,%.4f,%.4f" % (e["mean_score"], e["win"]["rate"], e["loss"]["rate"]))')"
    done
  done
  echo "$row" | tee -a "$STATE/curves.csv"
  [ "$el" -ge "$DURATION" ] && break
  sleep "$INTERVAL"
done
"${CTL[@]}" status
# Every agent at the end, full-time games against both scripts.
echo "agent,rating,rnd_game_diff,rnd_game_win,rnd_game_loss,chs_game_diff,chs_game_win,chs_game_loss" \
  | tee "$STATE/final_agents.csv"
for a in $("${CTL[@]}" status --json | /usr/bin/python3 -c '
import json,sys
for a in sorted(json.load(sys.stdin)["agents"], key=lambda a: -a["rating"]): print(a["id"], a["rating"])' | tr ' ' ':'); do
  row="${a%%:*},${a#*:}"
  for opp in random chaser; do
    ev=$("${CTL[@]}" eval "${a%%:*}" --vs "$opp" --episodes "$GAMES" --seed 99 --env full_time=1 --json)
    row="$row,$(echo "$ev" | /usr/bin/python3 -c '
import json,sys
e=json.load(sys.stdin); print("%.4f,%.4f,%.4f" % (e["mean_score"], e["win"]["rate"], e["loss"]["rate"]))')"
  done
  echo "$row" | tee -a "$STATE/final_agents.csv"
done
# Rating curve of every agent, sampled from the match history.
sqlite3 -csv "$STATE/pbt.db" "SELECT m.ts, s.agent_id, s.rating_after FROM matches m JOIN match_seats s ON s.match_id = m.id WHERE m.id % 50 = 0 ORDER BY m.id" > "$STATE/ratings.csv"
echo "curves: $STATE/curves.csv  ratings: $STATE/ratings.csv" >&2
