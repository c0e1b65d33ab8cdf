#!/usr/bin/env bash
# Install what pbt needs to build, run and test, from Debian 12's archive.
# Idempotent: apt-get install of installed packages changes nothing.
set -euo pipefail

PKGS=(
  build-essential pkg-config meson ninja-build
  libzmq3-dev libczmq-dev libmsgpack-dev libsqlite3-dev libcriterion-dev
  libopenblas-dev libsystemd-dev
  libmicrohttpd-dev                 # pbtd's Prometheus endpoint (HTTP server thread)
  sqlite3 iproute2 procps systemd   # systemd-analyze verify/security in the tests
  systemd-container                 # systemd-nspawn: the service test boots the units under systemd
  debhelper dpkg-dev fakeroot lintian   # the Debian package (dpkg-buildpackage -b -us -uc)
  clang libclang-rt-14-dev          # libFuzzer target and the sanitizer build
  python3 python3-torch python3-numpy   # PyTorch reference / export checks
  python3-pandas                    # export-run CSVs read back with pandas.read_csv
  python3-zmq python3-msgpack       # test_trust.py's hostile peer and fake pbtd; test_conformance.py's own client
  python3-prometheus-client         # parses pbtd's /metrics in the tests
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup.sh: run as root (or install sudo)" >&2; exit 1; }
  SUDO="sudo"
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all packages present"
  exit 0
fi
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
