#!/usr/bin/env bash
# Checks the TypeScript client (clients/typescript) against the real system:
#   1. the committed generated types match the daemon's OpenAPI document (printed without
#      Redis by `mm-openapi`); when they differ it fails and says how to regenerate;
#   2. starts a private redis-server, the reference game server `mm-gameserver` and
#      `matchmakerd` (development mode, CORS on for one origin) on free ports;
#   3. checks the live /openapi.json is the document the types came from;
#   4. runs the client's tests (`npm test`) against it: create, list, join, connect with
#      onTicket, get, cancel, typed problems, a CORS preflight.
# Every process it starts is stopped on exit, whether it passes or fails.
#
# Usage: scripts/check-client.sh [--regenerate]
#   --regenerate   rewrite clients/typescript/src/generated/api.ts from the document, then check
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
client="$root/clients/typescript"
regenerate=0
case "${1:-}" in
  --regenerate) regenerate=1 ;;
  "") ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "check-client: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

scripts/ensure-deps.sh
# Node.js 20 or later and npm (Debian/Ubuntu: installed with apt-get when missing).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "check-client: node and npm are missing; install Node.js 20 or later" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "check-client: installing nodejs and npm with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "check-client: Node.js $(node --version) is too old; the client needs 20 or later" >&2
  exit 1
fi

work=$(mktemp -d -t mm-check-client.XXXXXX)
pids=()
stop_all() {
  local status=$?
  trap - EXIT INT TERM
  if [ "${#pids[@]}" -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 100); do
      alive=0
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ "$alive" -eq 0 ] && break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    for log in "$work"/*.log; do
      [ -f "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap stop_all EXIT INT TERM

fail() { echo "check-client: FAIL: $*" >&2; exit 1; }

# Waits until a command succeeds, up to N tenths of a second.
wait_for() {
  local what=$1 tries=$2; shift 2
  for _ in $(seq 1 "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "$what did not come up"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cargo build --quiet --bin matchmakerd --bin mm-gameserver --bin mm-openapi
bin="${CARGO_TARGET_DIR:-target}/debug"

echo "== client dependencies (npm ci)" >&2
(cd "$client" && npm ci --no-audit --no-fund --loglevel=error)

echo "== generated types against the OpenAPI document" >&2
"$bin/mm-openapi" >"$work/openapi.json"
(cd "$client" && npx --no-install openapi-typescript "$work/openapi.json" --output "$work/api.ts" >/dev/null)
generated="$client/src/generated/api.ts"
if [ "$regenerate" -eq 1 ]; then
  cp "$work/api.ts" "$generated"
  echo "check-client: rewrote ${generated#"$root"/}" >&2
fi
if ! diff -u "$generated" "$work/api.ts" >"$work/types.diff"; then
  head -n 40 "$work/types.diff" >&2
  fail "clients/typescript/src/generated/api.ts is not what the daemon's OpenAPI document \
generates (the API changed without the client). Regenerate it with \
'scripts/check-client.sh --regenerate', review the diff, adapt src/index.ts if needed, commit both."
fi

echo "== a live system on free ports" >&2
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$work" --logfile "$work/redis.log" --daemonize no &
pids+=($!)
wait_for "redis-server" 100 redis-cli -p "$redis_port" ping
redis_url="redis://127.0.0.1:$redis_port/0"

gs_port=$(free_port)
api_key="check-client-key-$$"
"$bin/mm-gameserver" --id gs-check-1 --product chess --bind "127.0.0.1:$gs_port" \
  --api-key "$api_key" --redis-url "$redis_url" --start-delay-ms 60000 \
  --play-time-ms 60000 --heartbeat-ms 1000 >"$work/gameserver.log" 2>&1 &
pids+=($!)

api_port=$(free_port)
admin_port=$(free_port)
origin="http://localhost:5173"
cat >"$work/matchmakerd.toml" <<TOML
[redis]
url = "$redis_url"

[http]
bind = "127.0.0.1:$api_port"
admin_bind = "127.0.0.1:$admin_port"
cors_origins = ["$origin"]

[log]
format = "json"

[[game_servers]]
id = "gs-check-1"
product = "chess"
api_url = "http://127.0.0.1:$gs_port"
socket_url = ""
max_games = 100
api_key = "$api_key"
TOML
"$bin/matchmakerd" -m development -c "$work/matchmakerd.toml" >"$work/matchmakerd.log" 2>&1 &
pids+=($!)
api="http://127.0.0.1:$api_port"
wait_for "matchmakerd" 600 curl -fsS "$api/readyz"

# The daemon serves the document the types were generated from.
curl -fsS "$api/openapi.json" >"$work/live.json"
python3 - "$work/openapi.json" "$work/live.json" <<'PY' || fail "the live /openapi.json differs from mm-openapi's document"
import json, sys
printed, live = (json.load(open(path)) for path in sys.argv[1:3])
def differences(a, b, at="$"):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from differences(a.get(key), b.get(key), f"{at}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f"{at}[{index}]")
    elif a != b:
        yield f"{at}: mm-openapi {json.dumps(a)[:120]} / live {json.dumps(b)[:120]}"
found = list(differences(printed, live))
for line in found[:10]:
    print(line, file=sys.stderr)
sys.exit(1 if found else 0)
PY

echo "== client tests against $api" >&2
(cd "$client" && MM_API_URL="$api" MM_CORS_ORIGIN="$origin" npm test --silent)
echo "check-client: OK (types current, client tests passed against a live daemon)" >&2
