#!/usr/bin/env bash
# Bring up, on this machine, the clusters the tests marked `cluster` run on: a one-node SLURM cluster (munged,
# slurmctld, slurmd; SLURM 22.05 from Debian's slurm-wlm) and a Ray head on 127.0.0.1. Idempotent: what already
# answers is left as it is. tests/cluster/down.sh stops only what this script started (pids in $STATE).
#
#   bash tests/cluster/up.sh        # then: pytest -m cluster
#   bash tests/cluster/down.sh
#
# Where it cannot (not root, no apt-get, no Ray in the environment), it says why in $STATE/<name>.skip and goes
# on: the tests of that cluster then skip with that reason. The SLURM config is this script's own
# ($STATE/slurm.conf, read through SLURM_CONF): a machine's /etc/slurm is never touched.
set -uo pipefail
STATE=${OPTBENCH_CLUSTER_STATE:-/tmp/optbench-cluster}
mkdir -p "$STATE"
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON=${PYTHON:-python3}

note() { echo "cluster: $*"; }
skip() { echo "$2" > "$STATE/$1.skip"; note "$1 not started: $2"; }

slurm_up() {
    rm -f "$STATE/slurm.skip"
    export SLURM_CONF="$STATE/slurm.conf"
    if [ -f "$SLURM_CONF" ] && command -v scontrol >/dev/null && timeout 10 scontrol ping 2>/dev/null | grep -q UP; then
        note "SLURM already up ($SLURM_CONF)"; return 0
    fi
    if [ "$(id -u)" != 0 ]; then skip slurm "not root: munged and slurmd need root to start"; return 0; fi
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        if command -v apt-get >/dev/null; then
            note "installing slurm-wlm and munge (Debian's packages)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 \
                || (apt-get update -q >/dev/null 2>&1 \
                    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1)
        fi
        if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
            skip slurm "SLURM is not installed and apt-get could not install slurm-wlm and munge"; return 0
        fi
    fi

    # munge: the package makes the key but, outside systemd, not its run directory (where munged, running as
    # munge, writes its pid file: /run/munge/munged.pid).
    [ -f /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged \
            || { skip slurm "munged did not start"; return 0; }
        echo munged >> "$STATE/started"
    fi

    local host cpus memory
    host=$(hostname -s)
    cpus=$(nproc)
    memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))  # MB, leaving 1 GiB to the system
    mkdir -p "$STATE/spool/ctld" "$STATE/spool/d" "$STATE/log"
    # What SLURM 22.05 needs without systemd or cgroups: process tracking by /proc, no task plugin, cores as the
    # consumable resource, and no cgroup.conf at all (22.05 rejects CgroupPlugin=disabled).
    cat > "$SLURM_CONF" <<EOF
ClusterName=optbench
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=5
InactiveLimit=0
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    slurmctld -f "$SLURM_CONF" || { skip slurm "slurmctld did not start (see $STATE/log/slurmctld.log)"; return 0; }
    echo slurmctld >> "$STATE/started"
    slurmd -f "$SLURM_CONF" || { skip slurm "slurmd did not start (see $STATE/log/slurmd.log)"; return 0; }
    echo slurmd >> "$STATE/started"
    for _ in $(seq 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            note "SLURM up: $(sinfo -h -o '%P %D %c CPUs %m MB %t') (SLURM_CONF=$SLURM_CONF)"
            timeout 60 srun -N1 -n1 hostname >/dev/null 2>&1 || note "warning: srun hostname did not answer"
            return 0
        fi
        sleep 1
    done
    skip slurm "slurmd never registered with slurmctld (see $STATE/log/)"
}

ray_up() {
    rm -f "$STATE/ray.skip"
    local ray
    ray="$(dirname "$(command -v "$PYTHON")")/ray"
    [ -x "$ray" ] || ray=$(command -v ray || true)
    if [ -z "$ray" ]; then skip ray "Ray is not installed: pip install -e '.[ray]'"; return 0; fi
    if "$ray" status --address 127.0.0.1:6379 >/dev/null 2>&1; then note "Ray already up at 127.0.0.1:6379"; return 0; fi
    if "$ray" start --head --node-ip-address=127.0.0.1 --port=6379 --num-cpus="$(nproc)" --include-dashboard=false \
        --disable-usage-stats >"$STATE/log-ray.txt" 2>&1; then
        echo ray >> "$STATE/started"
        note "Ray head up at 127.0.0.1:6379"
    else
        skip ray "ray start --head failed (see $STATE/log-ray.txt)"
    fi
}

slurm_up
ray_up
exit 0
