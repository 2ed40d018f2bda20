#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Wirescope needs, only those missing (idempotent).
# Used by `wirescope up` (npm start) and by .ci/run.
#
#   scripts/install-deps.sh          runtime + build packages
#   scripts/install-deps.sh --build  only what building needs (the image, scripts/build-image-steps.sh)
#   scripts/install-deps.sh --demo   also the demo shop's servers (mariadb-server, redis-server)
#   scripts/install-deps.sh --test   also what the test suite drives (tshark, kcat, mariadb, redis, ...)
#   scripts/install-deps.sh --check  only report; exit 3 when something is missing
#
# Not root and something missing: prints the exact apt-get line and exits 3.
set -euo pipefail

BUILD=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev make g++ dpkg-dev)
RUNTIME=(nats-server influxdb "${BUILD[@]}")
DEMO=(mariadb-server redis-server)
TEST=(tshark kcat mariadb-server redis-server postgresql nghttp2-client wrk tcpdump openssl gnutls-bin golang-go binutils nginx tmux zsh python3 curl)

want=("${RUNTIME[@]}")
check_only=0
for a in "$@"; do
  case "$a" in
    --demo) want+=("${DEMO[@]}") ;;
    --test) want+=("${TEST[@]}") ;;
    --build) want=("${BUILD[@]}") ;;
    --check) check_only=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown argument $a" >&2; exit 2 ;;
  esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: not a Debian/Ubuntu system; make sure these are installed: ${want[*]}" >&2
  exit 0
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# The probe's native addon links libbpf built from the pinned Debian source package
# (services/probe/native/build.mjs runs `apt-get source libbpf=...`), which needs deb-src entries.
ensure_deb_src() {
  grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
  local src=/etc/apt/sources.list.d/debian.sources
  [ -r "$src" ] || return 0
  if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ]; then
    echo "install-deps: no deb-src entry (needed to fetch the pinned libbpf source); as root: sed 's/^Types: deb$/Types: deb-src/' $src > /etc/apt/sources.list.d/wirescope-deb-src.sources && apt-get update" >&2
    return 0
  fi
  sed 's/^Types: deb$/Types: deb-src/' "$src" > /etc/apt/sources.list.d/wirescope-deb-src.sources
  apt-get update -qq
}
ensure_deb_src

[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install them as root:  sudo apt-get update && sudo $line" >&2
  exit 3
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages that start services on install (mariadb, redis, nats, influxdb) must not start them:
# Wirescope and its tests start their own on loopback ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
trap 'if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get update -qq
apt-get install -y -q --no-install-recommends "${missing[@]}"
