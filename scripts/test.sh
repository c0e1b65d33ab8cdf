#!/usr/bin/env bash
# Install dependencies, build, and run every test:
#   1. the whole suite on the normal build (build/),
#   2. the suite again on an ASan+UBSan build (build-sanitize/), except the
#      tests in meson suite "no-asan": whole-system behaviour (a real
#      systemd, SIGKILLs, a second host, the manual pages, a load run, the
#      out-of-tree Kuhn build, RL best responses) whose C code the
#      sanitized unit, e2e, trust, conformance, history and cli tests
#      already run, and which would add minutes under ASan,
#   3. a bounded libFuzzer run of the wire decoder (FUZZ_SECONDS, default 30).
# PBT_QUICK=1 runs only step 1. Extra arguments go to `meson test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

summary() {   # a plain closing line from meson's JSON log
  python3 - "$1/meson-logs/testlog.json" "$2" <<'PY'
import json, sys
ok = bad = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: bad += 1
print(f"{sys.argv[2]}: {ok} passed, {bad} failed, {skip} skipped")
PY
}

run_suite() {   # BUILD_DIR LABEL [meson setup options...]
  local dir=$1 label=$2; shift 2
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir"
  set +e
  meson test -C "$dir" --print-errorlogs --num-processes 2 "${MESON_TEST_ARGS[@]}"
  local rc=$?
  set -e
  summary "$dir" "$label"
  return $rc
}

MESON_TEST_ARGS=("$@")
rc=0
run_suite "${BUILD:-build}" "tests" || rc=1
if [ "${PBT_QUICK:-0}" != 1 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  MESON_TEST_ARGS=(--no-suite no-asan "$@")
  run_suite "${BUILD_SANITIZE:-build-sanitize}" "tests under ASan+UBSan" \
    -Db_sanitize=address,undefined -Db_lundef=false || rc=1
  unset ASAN_OPTIONS UBSAN_OPTIONS
  if bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}" > /tmp/pbt-fuzz.log 2>&1; then
    echo "fuzz: 1 passed, 0 failed ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' /tmp/pbt-fuzz.log))"
  else
    tail -n 40 /tmp/pbt-fuzz.log
    echo "fuzz: 0 passed, 1 failed"
    rc=1
  fi
fi
exit $rc
