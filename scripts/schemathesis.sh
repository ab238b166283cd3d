#!/usr/bin/env bash
# Property-based API testing of the lobby API with Schemathesis, against its own OpenAPI
# document. Starts the API in-process with a private redis-server and two reference game
# servers (the test binary `mm-api-under-test`), runs every check, and fails on any 5xx or
# schema violation.
#
# Usage: scripts/schemathesis.sh [max-examples-per-operation] [time-limit-seconds]
# Env:   PORT (default 18080), VENV (default target/schemathesis-venv).
set -euo pipefail

cd "$(dirname "$0")/.."
MAX_EXAMPLES="${1:-50}"
TIME_LIMIT="${2:-300}"
PORT="${PORT:-18080}"
VENV="${VENV:-target/schemathesis-venv}"

if [[ ! -x "$VENV/bin/schemathesis" ]]; then
  echo "installing schemathesis into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet schemathesis
fi
"$VENV/bin/schemathesis" --version

cargo build --quiet -p mm-testkit --bin mm-api-under-test
BIN="${CARGO_TARGET_DIR:-target}/debug/mm-api-under-test"
LOG="$(mktemp -t mm-api-under-test.XXXXXX.log)"
"$BIN" --port "$PORT" >"$LOG" 2>&1 &
API_PID=$!
trap 'kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$API_PID" 2>/dev/null; then
    echo "the API under test exited; its log:" >&2; cat "$LOG" >&2; exit 1
  fi
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null

status=0
# `not_a_server_error` is replaced by the hook's `no_undocumented_server_error` (documented
# 503s such as `no_game_server` are contract answers; anything else 5xx fails). `ignored_auth`
# is skipped because in `header` auth mode (test/development) any well-formed X-Player-Id IS
# a valid identity; invalid identities (malformed ids, missing header) are covered by the
# Rust end-to-end tests, and JWT refusals too. `use_after_free` is skipped because an ended
# game - cancelled ones included - stays readable as `state: ended` (the contract keeps its
# hash as a tombstone with a TTL), which that check reads as "deleted resource still there".
# The `coverage` phase is left out: on this Python (3.11) Hypothesis crashes inside it with
# "AST constructor recursion depth mismatch" (a tool-internal runtime error, not a finding
# about the API), which would make CI fail at random. Examples, fuzzing and stateful phases run.
SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="scripts${PYTHONPATH:+:$PYTHONPATH}" \
"$VENV/bin/schemathesis" run \
  "http://127.0.0.1:$PORT/openapi.json" \
  --checks all \
  --phases examples,fuzzing,stateful \
  --exclude-checks not_a_server_error,ignored_auth,use_after_free \
  --max-examples "$MAX_EXAMPLES" \
  --header "X-Player-Id: schemathesis" \
  --suppress-health-check all \
  --max-time "$TIME_LIMIT" \
  --workers 2 \
  --generation-database target/schemathesis-examples \
  || status=$?

if grep -q '"level":"ERROR"\|ERROR' "$LOG"; then
  echo "--- errors logged by the API under test:" >&2
  grep 'ERROR' "$LOG" | head -20 >&2
fi
exit "$status"
