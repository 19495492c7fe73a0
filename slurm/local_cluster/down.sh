#!/usr/bin/env bash
# Stop the one-node Slurm started by up.sh and remove its state directory (keep it with --keep).
set -uo pipefail
STATE=$(realpath -m "${1:-${LCLAB_SLURM_STATE:-/tmp/lclab-slurm}}")
KEEP=${2:-}
stop() {  # stop PIDFILE: TERM, then wait (a stopped daemon lingers as a zombie ~2 s: state Z counts as gone)
    local pid
    [ -f "$1" ] && pid=$(cat "$1") || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
}
stop "$STATE/run/slurmd.pid"
stop "$STATE/run/slurmctld.pid"
stop "$STATE/run/slurmdbd.pid"
stop "$STATE/run/mariadb.pid"
stop "$STATE/run/munged.pid"
[ "$KEEP" = --keep ] || rm -rf "$STATE"
exit 0
