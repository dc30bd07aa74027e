#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (for tests/test_slurm.py and CI).
#
# Needs root. Installs Debian's `slurm-wlm` and `munge` with apt-get when they are missing,
# writes /etc/slurm/slurm.conf (one node = this host, 2 CPUs, one default partition, no
# accounting daemon, no cgroups, no systemd), then starts munged, slurmctld and slurmd and
# waits until `sinfo` shows the node idle. Daemons' PIDs, logs and spool directories live in
# $ZOO_SLURM_STATE (default /tmp/zoo-slurm); stop everything with tests/cluster/stop-slurm.sh.
#
# Exit status: 0 cluster up; 2 cannot run here (not root, apt-get failed, a foreign
# slurm.conf exists) — the message says why; 1 the daemons did not come up (see the logs).
set -euo pipefail

STATE=${ZOO_SLURM_STATE:-/tmp/zoo-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by zoo tests/cluster/start-slurm.sh"
CPUS=${ZOO_SLURM_CPUS:-2}

cannot() { echo "start-slurm: cannot run here: $*" >&2; exit 2; }
fail() { echo "start-slurm: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || cannot "needs root (installs packages, runs slurmd as root)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || cannot "slurm-wlm/munge missing and no apt-get to install them"
    echo "start-slurm: installing slurm-wlm and munge with apt-get" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge; } \
        >"/tmp/zoo-slurm-apt.log" 2>&1 || cannot "apt-get install slurm-wlm munge failed (see /tmp/zoo-slurm-apt.log)"
fi

if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    cannot "$CONF exists and was not written by this script; refusing to overwrite a real cluster's config"
fi

# Already running (e.g. a previous test session that was not stopped)? Reuse it.
if [[ -f $STATE/slurmctld.pid ]] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null \
   && sinfo -h >/dev/null 2>&1; then
    echo "start-slurm: already running (state in $STATE)" >&2
    exit 0
fi

mkdir -p "$STATE"/{ctld,d,log} /etc/slurm
HOST=$(hostname -s)
# RealMemory must not exceed what slurmd detects, or the node is drained ("Low RealMemory").
DETECTED=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
MEM=$(( DETECTED > 2048 ? DETECTED - 1024 : DETECTED ))

cat >"$CONF" <<EOF
$MARKER
ClusterName=zoo-local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
# No cgroups and no systemd here: track processes by PID, no task affinity.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmdSpoolDir=$STATE/d
StateSaveLocation=$STATE/ctld
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Several jobs share the node, each gets the cores and memory it asked for.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# No slurmdbd: the executor plugin must use 'squeue' for status; keep finished jobs
# visible to squeue for 10 minutes.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# munged: Debian's key is created on install; make one if it is missing.
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    # munged writes /run/munge/munged.pid; copy it so stop-slurm.sh finds every PID in one place.
    for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$STATE/munged.pid"
fi
munge -n | unmunge >/dev/null || fail "munge does not work (see /var/log/munge/munged.log)"

# -c: clean start (forget jobs of an earlier run). Both daemons fork and write their PID files.
slurmctld -c
slurmd
for _ in $(seq 100); do
    if [[ $(sinfo -h -o '%T' 2>/dev/null) == idle ]]; then
        echo "start-slurm: node $HOST idle ($CPUS CPUs, ${MEM} MB); state in $STATE" >&2
        exit 0
    fi
    sleep 0.2
done
sinfo >&2 || true
fail "node did not become idle within 20 s (see $STATE/log/slurmctld.log and slurmd.log)"
