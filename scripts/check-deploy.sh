#!/usr/bin/env bash
# Checks the deployment files: the Prometheus alert rules with promtool (installed from the OS
# packages when missing), their unit tests (promtool test rules) and the Grafana dashboard's
# JSON syntax. That the rules and dashboard name only metrics the daemon exports is checked by
# the test suite (deploy module).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "installing promtool (package prometheus) with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "error: promtool is missing; install it with: apt-get install prometheus" >&2
    exit 1
  fi
fi
promtool check rules deploy/prometheus/matchmaker-alerts.yml
# The rules' unit tests: the lag alerts fire well before the default pending timeout.
promtool test rules deploy/prometheus/matchmaker-alerts.test.yml
python3 -m json.tool deploy/grafana/matchmaker-dashboard.json >/dev/null
echo "deploy files: OK"
