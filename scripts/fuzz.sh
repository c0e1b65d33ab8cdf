#!/usr/bin/env bash
# Fuzz the wire decoder (proto_decode, round trip, JSON, views) with
# libFuzzer + ASan + UBSan for SECONDS (default 60).
#   scripts/fuzz.sh [SECONDS]
# Seeds come from fuzz/corpus/ plus freshly generated valid messages of
# every type (fuzz/gen_corpus.c); the run's own corpus and any crash
# reproducer stay in a temporary work directory, printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
WORK=${FUZZ_WORK:-$(mktemp -d /tmp/pbt-fuzz.XXXXXX)}
mkdir -p "$WORK/corpus" "$WORK/artifacts"
CC=${CC:-clang}
MSGPACK=$(pkg-config --cflags --libs msgpack)
CFLAGS="-std=gnu11 -D_GNU_SOURCE -g -O1 -Iproto -Ilib"
# lib/ also holds small programs (settings_dump.c has a main); the fuzzer
# links only the library files.
LIB=$(grep -L '^main *(' lib/*.c)

"$CC" $CFLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    proto/*.c $LIB fuzz/gen_corpus.c $MSGPACK -lm -o "$WORK/gen_corpus"
"$CC" $CFLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    proto/*.c $LIB fuzz/fuzz_decode.c $MSGPACK -lm -o "$WORK/fuzz_decode"

"$WORK/gen_corpus" "$WORK/corpus"
if compgen -G "fuzz/corpus/*" >/dev/null; then
  cp fuzz/corpus/* "$WORK/corpus/"
fi

echo "fuzz: running for ${SECONDS_TO_RUN}s in $WORK"
set +e
"$WORK/fuzz_decode" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$WORK/artifacts/" \
    "$WORK/corpus" 2>&1 | tee "$WORK/fuzz.log" | grep -E '^#|ERROR|SUMMARY|stat::|Done|crash|leak' | tail -40
rc=${PIPESTATUS[0]}
set -e
if ls "$WORK/artifacts/"* >/dev/null 2>&1; then
  echo "fuzz: FAILED, reproducers in $WORK/artifacts (log: $WORK/fuzz.log)"
  exit 1
fi
echo "fuzz: exit $rc, log $WORK/fuzz.log"
exit "$rc"
