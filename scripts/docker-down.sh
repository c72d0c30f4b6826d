#!/usr/bin/env bash
# Stop the dockerd that scripts/docker-up.sh started (and only that one). Idempotent.
set -u
STATE_DIR="${TETHER_DOCKERD_STATE:-/tmp/tether-dockerd}"
MARK="$STATE_DIR/started-by-tether.pid"
if [ ! -f "$MARK" ]; then
    echo "docker-down: no dockerd started by tether"
    exit 0
fi
PID="$(cat "$MARK")"
if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    for _ in $(seq 1 60); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.5
    done
    kill -0 "$PID" 2>/dev/null && kill -KILL "$PID"
    echo "docker-down: stopped dockerd (pid $PID)"
fi
rm -f "$MARK"
