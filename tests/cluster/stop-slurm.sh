#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by tests/cluster/start-slurm.sh, by PID
# (slurmd, slurmctld, then munged if we started it), and removes the slurm.conf that script
# wrote: left behind, it points every SLURM client at a stopped controller, and Snakemake's
# SLURM executor plugin runs `scontrol show config` on every start (even for local runs),
# which then retries for 10 s. Leaves the packages installed.
set -uo pipefail

STATE=${ZOO_SLURM_STATE:-/tmp/zoo-slurm}

stop_pid() {  # name, pid file
    local name=$1 file=$2 pid
    [[ -s $file ]] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "stop-slurm: $name ($pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$file"
}

stop_pid slurmd "$STATE/slurmd.pid"
stop_pid slurmctld "$STATE/slurmctld.pid"
stop_pid munged "$STATE/munged.pid"
CONF=/etc/slurm/slurm.conf
if [[ -f $CONF ]] && grep -qF "# written by zoo tests/cluster/start-slurm.sh" "$CONF"; then
    rm -f "$CONF"
fi
echo "stop-slurm: stopped (state kept in $STATE)" >&2
