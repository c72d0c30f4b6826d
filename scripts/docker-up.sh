#!/usr/bin/env bash
# Start a docker engine for the sandbox tests if none answers; record that we started it.
# Idempotent. Uses --bridge=none --iptables=false: containers only ever run with network "none".
# Usage: scripts/docker-up.sh            (exit 0 when an engine answers, 1 when none could start)
set -u
STATE_DIR="${TETHER_DOCKERD_STATE:-/tmp/tether-dockerd}"
LOG="$STATE_DIR/dockerd.log"
MARK="$STATE_DIR/started-by-tether.pid"

if docker info >/dev/null 2>&1; then
    echo "docker-up: an engine already answers"
    exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "docker-up: dockerd is not installed (apt-get install docker.io)" >&2
    exit 1
fi
if [ "$(id -u)" != "0" ]; then
    echo "docker-up: starting dockerd needs root" >&2
    exit 1
fi
mkdir -p "$STATE_DIR"
nohup dockerd --bridge=none --iptables=false --ip6tables=false >"$LOG" 2>&1 &
echo $! >"$MARK"
for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then
        echo "docker-up: started dockerd (pid $(cat "$MARK")), log $LOG"
        exit 0
    fi
    if ! kill -0 "$(cat "$MARK")" 2>/dev/null; then
        echo "docker-up: dockerd exited; last log lines:" >&2
        tail -n 20 "$LOG" >&2
        rm -f "$MARK"
        exit 1
    fi
    sleep 0.5
done
echo "docker-up: dockerd did not answer within 60 s; see $LOG" >&2
exit 1
