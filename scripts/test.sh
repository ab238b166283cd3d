#!/usr/bin/env bash
# Runs the whole test suite: unit tests, property tests and the end-to-end tests against private
# redis-servers and the reference game server. Installs the system programs it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
# The integration tests spawn matchmakerd, mm-gameserver and mm-console, and build each on
# first use with exactly these commands (`mm_testkit::daemon_process`, the console tests).
# Built here first, so that no test waits minutes for a build, or competes with one for the
# machine's cores, while the others run against their deadlines.
for binary in matchmakerd mm-gameserver mm-console; do
  cargo build --quiet --locked -p "$binary" --bin "$binary"
done
exec cargo test --workspace --locked "$@"
