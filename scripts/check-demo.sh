#!/usr/bin/env bash
# Checks the README's Quick start as a person would use it: runs `scripts/demo.sh` in a tmux
# pane, waits for the console, runs every command of README.md's ```sh blocks (but the Quick
# start's own two; indented blocks too, so `matchmakerd config` and the completions) against
# the live system, failing on an exit status other than 0, an answer 401 or a 5xx, checks the demo
# shows games moving, quits the console with `q`, and fails if any process the demo started
# is still running.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/ensure-deps.sh

session="mm-demo-check-$$"
fail() {
  echo "check-demo: FAIL: $*" >&2
  tmux capture-pane -p -t "$session" 2>/dev/null | tail -n 40 >&2 || true
  for f in .demo/logs/*; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  tmux kill-session -t "$session" 2>/dev/null || true
  exit 1
}

# Wait for a condition, up to N seconds.
until_ok() {
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "$what within ${secs}s"
}

cargo build --quiet -p matchmakerd -p mm-console -p mm-gameserver -p mm-loadgen
tmux new-session -d -s "$session" -x 160 -y 45 "cd '$root' && scripts/demo.sh; echo DEMO-EXITED-\$?; sleep 600"
until_ok "the lobby API to answer" 120 curl -fsS http://127.0.0.1:8080/readyz
until_ok "the console to draw" 60 bash -c "tmux capture-pane -p -t '$session' | grep -qi 'lobby'"

# Every command the README shows in sh blocks, except the Quick start's scripts.
export PATH="$root/target/debug:$PATH"
# Blocks may be indented (inside a list item); the indentation is not part of the command.
commands=$(awk '/^[[:space:]]*```sh$/{inblock=1; next} /^[[:space:]]*```$/{inblock=0} inblock {sub(/^[[:space:]]+/, ""); if ($0 !~ /^#/ && $0 !~ /^scripts\//) print}' README.md)
[ -n "$commands" ] || fail "found no commands in README.md"
# The commands that must stay covered: the listing, the effective configuration, completions.
for expected in "curl -s 'http://127.0.0.1:8080/v1/games?product=chess" "matchmakerd -m development config" \
  "matchmakerd completions bash" "mm-console completions"; do
  grep -qF -- "$expected" <<<"$commands" || fail "README.md no longer shows a command with: $expected"
done
while IFS= read -r command; do
  echo "check-demo: \$ $command" >&2
  if [[ "$command" == *"--tail"* ]]; then
    # `--tail` follows the streams until interrupted: run it for 3 s; it must print events
    # of the demo's product and keep running (timeout's 124), not fail.
    status=0
    output=$(timeout --kill-after=2 3 bash -c "exec $command" 2>&1) || status=$?
    [ "$status" -eq 124 ] || { echo "$output" >&2; fail "README command exited $status instead of following: $command"; }
    [ -n "$output" ] || fail "README command printed nothing in 3 s: $command"
    continue
  fi
  output=$(bash -c "set -o pipefail; $command" 2>&1) || {
    status=$?
    # `mm-console --delete` of the README's made-up id must answer "no such game" (3).
    if [[ "$command" == *"--delete"* && $status -eq 3 ]]; then continue; fi
    echo "$output" >&2
    fail "README command exited $status: $command"
  }
  # A call the README shows must not be refused for want of an identity (curl -s exits 0 on
  # any answer): the demo runs header auth, so every route but the probes needs X-Player-Id.
  # Nor may it fail on the server's side: a 5xx problem document (a store or game server
  # the demo should have running) fails the check as a non-zero exit would.
  if [[ "$command" == curl* ]] && grep -Eq '"status": ?5[0-9]{2}' <<<"$output"; then
    echo "$output" >&2
    fail "README command answered a 5xx problem: $command"
  fi
  if [[ "$command" == curl* ]] && grep -q '"unauthenticated"' <<<"$output"; then
    echo "$output" >&2
    fail "README command answered 401 unauthenticated: $command"
  fi
done <<< "$commands"

# The simulated players make games move: something reaches the lobby or active sets.
until_ok "games to reach the lobby or active sets" 60 bash -c \
  "[ \$(( \$(redis-cli -p 6390 zcard 'mm:{chess}:lobby') + \$(redis-cli -p 6390 zcard 'mm:{chess}:active') )) -gt 0 ]"

pids=$(pgrep -f "$root/target/debug/(matchmakerd|mm-gameserver|mm-loadgen|mm-console)" || true)
redis_pid=$(pgrep -f "redis-server 127.0.0.1:6390" || pgrep -f "redis-server.*6390" || true)
[ -n "$pids" ] || fail "no demo processes found while it runs"

tmux send-keys -t "$session" q
until_ok "the demo to exit after q" 60 bash -c "tmux capture-pane -p -t '$session' | grep -q 'DEMO-EXITED-0'"
left=""
for pid in $pids $redis_pid; do
  if kill -0 "$pid" 2>/dev/null; then left="$left $pid($(tr '\0' ' ' < /proc/$pid/cmdline | cut -c1-60))"; fi
done
tmux kill-session -t "$session" 2>/dev/null || true
[ -z "$left" ] || fail "processes left behind after quitting:$left"
echo "check-demo: OK (demo started, README commands ran, q stopped every process)"
