#!/usr/bin/env bash
# Local AWS emulator (moto's server) for the AWS adapter tests.
#
#   infra/emulator.sh start    install moto into .venv if needed, start it, wait until it answers
#   infra/emulator.sh stop     stop the emulator this script started
#   infra/emulator.sh status   exit 0 and print the URL if it is running
#
# Port: AWS_EMULATOR_PORT (default 4566). Runs as a plain background process on
# loopback; its pid and log live in .data/. Safe to call repeatedly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
DATA="$ROOT/.data"
PORT="${AWS_EMULATOR_PORT:-4566}"
URL="http://127.0.0.1:$PORT"
PIDFILE="$DATA/moto-$PORT.pid"
LOGFILE="$DATA/moto-$PORT.log"
MOTO_SPEC='moto[server]==5.*'

log() { echo "emulator: $*" >&2; }

ensure_venv() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating virtualenv $VENV"
        python3 -m venv "$VENV"
    fi
    if [[ ! -x "$VENV/bin/moto_server" ]]; then
        log "installing $MOTO_SPEC (about 30 s)"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "$MOTO_SPEC"
    fi
}

# Any HTTP answer counts: moto answers unknown paths with an error page.
answers() {
    curl --silent --output /dev/null --max-time 2 "$URL/moto-api/" 2>/dev/null
}

running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
    if running_pid >/dev/null && answers; then
        log "already running at $URL"
        return 0
    fi
    if answers; then
        log "port $PORT is taken by another process; set AWS_EMULATOR_PORT to a free port"
        return 1
    fi
    ensure_venv
    mkdir -p "$DATA"
    # setsid: the server must outlive the calling shell's job control and be
    # stoppable by its own pid alone. moto_server_atomic.py is moto's server
    # with DynamoDB's item writes made atomic, as they are in AWS (see there).
    setsid "$VENV/bin/python" "$ROOT/infra/moto_server_atomic.py" -H 127.0.0.1 -p "$PORT" >"$LOGFILE" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
        if answers; then
            log "running at $URL (pid $(cat "$PIDFILE"), log $LOGFILE)"
            return 0
        fi
        if ! running_pid >/dev/null; then
            log "moto_server exited; last log lines:"
            tail -n 20 "$LOGFILE" >&2 || true
            rm -f "$PIDFILE"
            return 1
        fi
        sleep 0.2
    done
    log "moto_server did not answer within 20 s; see $LOGFILE"
    stop
    return 1
}

stop() {
    local pid
    if pid="$(running_pid)"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        log "stopped (pid $pid)"
    else
        log "not running"
    fi
    rm -f "$PIDFILE"
}

status() {
    if running_pid >/dev/null && answers; then
        echo "$URL"
    else
        log "not running"
        return 1
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
