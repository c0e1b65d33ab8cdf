#!/usr/bin/env bash
# Build the Debian package from a copy of this checkout (the tree itself is
# never written): dpkg-buildpackage -b -us -uc, then lintian. Prints the
# path of the .deb last. OUT (default build-deb/) receives the .deb, the
# .changes and lintian.txt (LINTIAN=0: no lintian run).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${OUT:-build-deb}")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pbt-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/pbt" "$OUT"
# The files git tracks, as they are in the work tree (edits included).
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$WORK/pbt" 2>/dev/null || true
(cd "$WORK/pbt" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -b -us -uc) \
  > "$OUT/build.log" 2>&1 || { tail -n 40 "$OUT/build.log" >&2; exit 1; }
rm -f "$OUT"/pbt_* "$OUT"/pbt-dbgsym_*
cp "$WORK"/pbt_* "$WORK"/pbt-dbgsym_* "$OUT"/
if [ "${LINTIAN:-1}" != 0 ] && command -v lintian >/dev/null; then
  lintian "$OUT"/pbt_*.changes > "$OUT/lintian.txt" 2>&1 || true
fi
ls "$OUT"/pbt_*.deb
