#!/usr/bin/env bash
# Runs the whole test suite: unit tests, property tests and the end-to-end tests against private
# redis-servers and the reference game server. Installs the system programs it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
exec cargo test --workspace --locked "$@"
