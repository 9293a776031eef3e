#!/usr/bin/env bash
# Take down what tests/cluster/up.sh started (and only that): the Ray head, slurmd, slurmctld, munged.
set -uo pipefail
STATE=${OPTBENCH_CLUSTER_STATE:-/tmp/optbench-cluster}
PYTHON=${PYTHON:-python3}
[ -f "$STATE/started" ] || { echo "cluster: nothing started by up.sh"; exit 0; }

stop_pidfile() {  # SIGTERM the daemon whose pid file is $1, then wait for it to go
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null
}

while read -r daemon; do
    case "$daemon" in
        ray)
            ray="$(dirname "$(command -v "$PYTHON")")/ray"
            [ -x "$ray" ] || ray=$(command -v ray || true)
            [ -n "$ray" ] && "$ray" stop >/dev/null 2>&1
            ;;
        slurmd) stop_pidfile "$STATE/slurmd.pid" ;;
        slurmctld) stop_pidfile "$STATE/slurmctld.pid" ;;
        munged) stop_pidfile /run/munge/munged.pid ;;
    esac
    echo "cluster: stopped $daemon"
done < <(tac "$STATE/started")
rm -f "$STATE/started"
