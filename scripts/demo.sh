#!/usr/bin/env bash
# The whole system, live, on this machine:
#   a private redis-server (AOF under .demo/redis, port 6390),
#   two reference game servers (products chess and poker, ports 7101 and 7102),
#   matchmakerd in development mode (lobby API on 127.0.0.1:8080),
#   mm-loadgen simulating players (some abandon their games, so the curator has work),
#   and mm-console on top. Quitting the console stops everything this script started.
#
# Usage: scripts/demo.sh [--no-console] [--seconds N] [--cluster]
#   --no-console   run headless (for scripts and tests): wait N seconds, print a summary, stop
#   --seconds N    with --no-console, how long to run (default 20)
#   --cluster      run on a local Redis Cluster instead: 3 masters and 3 replicas on ports
#                  7000-7005 (bus ports 17000-17005, data under .demo/cluster), no AOF
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

console=1
seconds=20
cluster=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-console) console=0 ;;
    --seconds) seconds="$2"; shift ;;
    --cluster) cluster=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

demo_dir="$root/.demo"
logs="$demo_dir/logs"
mkdir -p "$demo_dir/redis" "$logs"
pids=()

stop_all() {
  local status=$?
  trap - EXIT INT TERM
  if [ "${#pids[@]}" -gt 0 ]; then
    echo "demo: stopping ${#pids[@]} processes" >&2
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
  exit "$status"
}
trap stop_all EXIT INT TERM

# Waits until a command succeeds, up to N tenths of a second.
wait_for() {
  local what=$1 tries=$2; shift 2
  for _ in $(seq 1 "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "demo: $what did not come up; see $logs" >&2
  return 1
}

scripts/ensure-deps.sh
echo "demo: building (first time takes a few minutes)" >&2
cargo build --quiet -p matchmakerd -p mm-console -p mm-gameserver -p mm-loadgen
bin="$root/target/debug"

if [ "$cluster" -eq 1 ]; then
  ports=(7000 7001 7002 7003 7004 7005)
  for port in "${ports[@]}"; do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
      echo "demo: something already listens on port $port; stop it (or an earlier demo) first" >&2
      exit 1
    fi
  done
  rm -rf "$demo_dir/cluster"
  for port in "${ports[@]}"; do
    mkdir -p "$demo_dir/cluster/$port"
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$demo_dir/cluster/$port/nodes.conf" --cluster-node-timeout 2000 \
      --dir "$demo_dir/cluster/$port" --appendonly no --save "" \
      --logfile "$logs/redis-$port.log" --daemonize no &
    pids+=($!)
  done
  for port in "${ports[@]}"; do wait_for "redis-server $port" 100 redis-cli -p "$port" ping; done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") --cluster-replicas 1 \
    --cluster-yes >"$logs/cluster-create.log" 2>&1
  cluster_ok() { redis-cli -p 7000 cluster info | grep -q '^cluster_state:ok'; }
  wait_for "the cluster" 300 cluster_ok
  redis_url=$(printf 'redis://127.0.0.1:%s,' "${ports[@]}"); redis_url=${redis_url%,}
  export MM_REDIS__CLUSTER_NODES="$redis_url"
  redis_cli=(redis-cli -c -p 7000)
else
  if redis-cli -p 6390 ping >/dev/null 2>&1; then
    echo "demo: something already listens on port 6390; stop it (or an earlier demo) first" >&2
    exit 1
  fi
  redis-server --port 6390 --bind 127.0.0.1 --dir "$demo_dir/redis" --appendonly yes \
    --save "" --logfile "$logs/redis.log" --daemonize no &
  pids+=($!)
  wait_for "redis-server" 100 redis-cli -p 6390 ping
  redis_url="redis://127.0.0.1:6390/0"
  redis_cli=(redis-cli -p 6390)
fi

"$bin/mm-gameserver" --id gs-chess-1 --product chess --bind 127.0.0.1:7101 \
  --api-key dev-chess-key-change-me --redis-url "$redis_url" \
  --start-delay-ms 1500 --play-time-ms 8000 --heartbeat-ms 2000 >"$logs/gs-chess.log" 2>&1 &
pids+=($!)
"$bin/mm-gameserver" --id gs-poker-1 --product poker --bind 127.0.0.1:7102 \
  --api-key dev-poker-key-change-me --redis-url "$redis_url" \
  --start-delay-ms 1500 --play-time-ms 12000 --heartbeat-ms 2000 >"$logs/gs-poker.log" 2>&1 &
pids+=($!)

MM_LOG__DIR="$logs" "$bin/matchmakerd" -m development >"$logs/matchmakerd.out" 2>&1 &
pids+=($!)
wait_for "matchmakerd" 300 curl -fsS http://127.0.0.1:8080/readyz

"$bin/mm-loadgen" --api-url http://127.0.0.1:8080 --products chess,poker --rate 2 \
  --duration-secs 0 --players 100 --min-capacity 2 --max-capacity 4 \
  --mix play=60,leave=15,abandon=15,idle=10 >"$logs/loadgen.log" 2>&1 &
pids+=($!)

cat >&2 <<EOF
demo: running
  lobby API   http://127.0.0.1:8080   (try: curl -s 'http://127.0.0.1:8080/v1/games?product=chess' -H 'X-Player-Id: bob')
  metrics     http://127.0.0.1:8080/metrics
  OpenAPI     http://127.0.0.1:8080/openapi.json
  logs        $logs
EOF

if [ "$console" -eq 1 ]; then
  MM_LOG__DIR="$logs" "$bin/mm-console" -m development
else
  sleep "$seconds"
  echo "demo: games per set after ${seconds}s:" >&2
  for product in chess poker; do
    for set in pending lobby active; do
      printf '  %-6s %-8s %s\n' "$product" "$set" "$("${redis_cli[@]}" zcard "mm:{$product}:$set")" >&2
    done
  done
fi
