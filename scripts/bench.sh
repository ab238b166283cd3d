#!/usr/bin/env bash
# Measures every hot path beside its ceiling and rewrites BENCHMARKS.md and bench/results.json.
#
#   scripts/bench.sh                 full run (about 20 minutes, the soak 10 of them)
#   scripts/bench.sh --quick         smoke run (a few minutes; not part of CI)
#   scripts/bench.sh --only list     a subset (list, view, create, flow, seats, events, scale,
#                                    curation, console, soak); the others keep their figures
#
# Every argument goes to mm-bench (`target/release/mm-bench --help`). Each scenario starts its
# own private redis-server, reference game servers and matchmakerd on 127.0.0.1, bounded in
# requests and time.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh
if ! command -v wrk >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: wrk is missing and there is no apt-get here; install wrk" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing wrk with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

# matchmakerd (with its benchmark-only static route, feature `bench-routes`), mm-console, the
# reference game server mm-gameserver, and mm-bench itself.
cargo build --release -p matchmakerd -p mm-console -p mm-gameserver -p mm-bench \
  --features matchmakerd/bench-routes

exec target/release/mm-bench "$@"
