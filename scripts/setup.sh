#!/usr/bin/env bash
# Everything Skein needs on a fresh Debian machine, idempotently: Debian
# packages, npm packages (only when package-lock.json changed), and the Go-built
# test parts (only when a pinned version changed).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-packages.sh

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
else
  echo "setup: npm packages up to date"
fi

bash scripts/build-tools.sh "$@"
