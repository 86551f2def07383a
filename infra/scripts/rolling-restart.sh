#!/bin/sh
# Restart the portal's instances one at a time; each must answer /readyz before the next goes down,
# so nginx always has one to send requests to. Usage: sudo infra/scripts/rolling-restart.sh [PORT...]
# (default: 8001 8002). A restart lets in-flight transfers finish (up to HANDOVER_GRACEFUL_TIMEOUT).
set -eu
ports=${*:-8001 8002}
for port in $ports; do
  echo "restarting handover@$port"
  systemctl restart "handover@$port.service"
  tries=0
  until curl -fsS --max-time 5 "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
      echo "handover@$port is not ready after 120 s: stopping here (the other instance is untouched)" >&2
      journalctl -u "handover@$port.service" -n 30 --no-pager >&2 || true
      exit 1
    fi
    sleep 2
  done
  echo "handover@$port is ready"
done
