#!/usr/bin/env bash
# A Docker engine for `make compose-up` and the compose end-to-end test, where none runs.
#
#   bash scripts/start-docker.sh        (as root; .ci/run calls it; a user with Docker skips it)
#
# Idempotent. If a daemon already answers on /var/run/docker.sock it does nothing. Otherwise it
# installs Debian's docker.io and docker-compose (1.29, the `docker-compose` command) where missing
# and starts dockerd in a process group of its own (setsid), logging to /var/log/order-dockerd.log,
# with the overlay2 storage driver, or vfs where overlay2 does not start (vfs copies every layer:
# slower and larger, but works on any file system). Its pid goes to /run/order-dockerd.pid.
#
# Every docker command of the project talks to that socket: DOCKER_HOST is not read from anything
# else here, and a client-only docker binary elsewhere on PATH (a newer CLI) reaches the same daemon.
set -euo pipefail

SOCKET=/var/run/docker.sock
LOG=/var/log/order-dockerd.log
PIDFILE=/run/order-dockerd.pid
export DEBIAN_FRONTEND=noninteractive
export DOCKER_HOST="unix://$SOCKET"

log() { echo "[start-docker] $(date +%H:%M:%S) $*"; }

daemon_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && [[ -S $SOCKET ]] && daemon_answers; then
    log "a Docker daemon already answers on $SOCKET ($(docker version --format '{{.Server.Version}}'))"
    command -v docker-compose >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose </dev/null; }
    exit 0
fi

if [[ $(id -u) != 0 ]]; then
    echo "error: no Docker daemon answers on $SOCKET, and starting one needs root (run as root, or start Docker yourself)" >&2
    exit 1
fi

missing=()
[[ -x /usr/sbin/dockerd ]] || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if (( ${#missing[@]} )); then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    # docker.io brings containerd, runc and iptables; no recommends (no apparmor, no cgroupfs-mount).
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi

# A daemon of ours that died leaves its pid file and socket behind.
if [[ -f $PIDFILE ]] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    rm -f "$PIDFILE" "$SOCKET"
fi

start_daemon() {  # start_daemon DRIVER: start dockerd and wait for its socket; 0 when it answers
    local driver=$1
    log "starting dockerd (storage driver $driver), log $LOG"
    rm -f "$SOCKET"
    setsid /usr/sbin/dockerd --host "unix://$SOCKET" --storage-driver "$driver" --pidfile "$PIDFILE" \
        >>"$LOG" 2>&1 </dev/null &
    local pid=$!
    for _ in $(seq 1 60); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "dockerd exited (storage driver $driver); last lines of $LOG:"
            tail -5 "$LOG" | sed 's/^/    /'
            return 1
        fi
        if [[ -S $SOCKET ]] && daemon_answers; then
            return 0
        fi
        sleep 1
    done
    log "dockerd did not answer within 60 s; stopping it"
    kill -TERM "$pid" 2>/dev/null || true
    return 1
}

if ! start_daemon overlay2; then
    # overlay2's data cannot be read by vfs and the reverse: a fresh data root for the fallback.
    rm -rf /var/lib/docker
    start_daemon vfs || { echo "error: dockerd did not start; see $LOG" >&2; exit 1; }
fi
log "Docker $(docker version --format '{{.Server.Version}}') answers on $SOCKET," \
    "storage driver $(docker info --format '{{.Driver}}'), dockerd pid $(cat "$PIDFILE")"
