#!/usr/bin/env bash
# Every step of the container image build, so that CI runs exactly what `docker build` runs (the
# Dockerfile at the repository root calls only this script; test/build-image-steps.test.ts runs
# it on a clean copy of the repository, without Docker).
#
#   scripts/build-image-steps.sh build          in the repository root: build packages (Debian),
#                                                npm ci, every build step, then drop what only
#                                                building needs (dev dependencies, libbpf sources)
#   scripts/build-image-steps.sh runtime-deps   the Debian libraries the built tree links at run
#                                                time (the probe's addon: libelf, zlib)
set -euo pipefail

step=${1:-}
case "$step" in
  build)
    cd "$(dirname "$0")/.."
    bash scripts/install-deps.sh --build
    npm ci --no-audit --no-fund
    node scripts/build.mjs --quiet
    npm prune --omit=dev --no-audit --no-fund
    # libbpf's source and objects are linked into the addon already
    rm -rf services/probe/native/build/dl services/probe/native/build/libbpf services/probe/native/build/libbpf-obj services/probe/native/build/libbpf-src
    ;;
  runtime-deps)
    export DEBIAN_FRONTEND=noninteractive
    missing=()
    for p in libelf1 zlib1g; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      apt-get update -qq
      apt-get install -y -q --no-install-recommends "${missing[@]}"
      rm -rf /var/lib/apt/lists/*
    fi
    ;;
  *)
    sed -n '2,10p' "$0" >&2
    exit 2
    ;;
esac
