#!/usr/bin/env bash
# Screenshot a pbtctl report with headless Chromium (Debian's `chromium`),
# to look at it as a reader would and to refresh docs/report.png.
#   scripts/report-screenshot.sh REPORT.html OUT.png [WIDTH] [HEIGHT]
# WIDTH x HEIGHT is the browser window (default 1280 x 2400); the page is
# cut at HEIGHT. Needs `apt-get install chromium`.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH] [HEIGHT]" >&2
  exit 2
fi
html=$(realpath "$1")
out=$(realpath -m "$2")
width=${3:-1280}
height=${4:-2400}
if ! command -v chromium >/dev/null; then
  echo "$0: chromium is not installed (apt-get install chromium)" >&2
  exit 1
fi
# A throwaway profile, so nothing of a user's browser is read or written.
profile=$(mktemp -d /tmp/pbt-chromium.XXXXXX)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
  --hide-scrollbars --user-data-dir="$profile" --window-size="$width,$height" \
  --screenshot="$out" "file://$html" 2>"$profile/log" || { cat "$profile/log" >&2; exit 1; }
test -s "$out" || { echo "$0: no screenshot written" >&2; cat "$profile/log" >&2; exit 1; }
echo "wrote $out (${width}x${height})"
