#!/usr/bin/env bash
# A real one-node Slurm cluster in a directory, for testing the job recipes beside this script without touching
# the machine's own configuration: munged, slurmctld and slurmd from Debian's packages (`slurmctld slurmd munge
# slurm-client`), run as the current user on 127.0.0.1 with a generated slurm.conf and munge key.
#
#   local-cluster.sh start DIR     start the daemons, wait until the node is idle; prints `export SLURM_CONF=...`
#   local-cluster.sh stop DIR      stop them (also safe when start failed half-way)
#
# Clients (sbatch, squeue, sacct) reach this cluster with SLURM_CONF=DIR/slurm.conf in their environment. The
# ports are chosen free at start. Every wait is bounded; on failure the daemons' logs are printed.
set -euo pipefail

die() { echo "local-cluster: $*" >&2; exit 1; }

cmd=${1:-}; dir=${2:-}
[[ -n $cmd && -n $dir ]] || die "usage: local-cluster.sh start|stop DIR"

logs() {
  for f in "$dir"/munged.log "$dir"/slurmctld.log "$dir"/slurmd.log; do
    [[ -f $f ]] && { echo "--- $f (last 30 lines)" >&2; tail -n 30 "$f" >&2; }
  done
  return 0
}

stop() {
  for d in slurmd slurmctld munged; do
    local pidf="$dir/$d.pid"
    [[ -f $pidf ]] || continue
    local pid; pid=$(cat "$pidf" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidf"
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  for b in munged slurmctld slurmd sinfo; do
    command -v "$b" >/dev/null || [[ -x /usr/sbin/$b ]] || die "$b not found: apt-get install slurmctld slurmd munge slurm-client"
  done
  export PATH="$PATH:/usr/sbin"
  mkdir -p "$dir"/{state,spool,munge}
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir/munge"
  local user; user=$(id -un)
  local host; host=$(hostname -s)
  local cpus; cpus=$(nproc)
  local mem; mem=$(awk '/MemTotal/ {print int($2/1024/2)}' /proc/meminfo)

  # munge: a fresh key, its own socket; Slurm is told where the socket is (AuthInfo).
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munge.seed" \
    || { logs; die "munged did not start"; }

  local ctld_port slurmd_port
  ctld_port=$(free_port); slurmd_port=$(free_port)
  cat > "$dir/slurm.conf" <<CONF
ClusterName=meeklocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
ReturnToService=2
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -c -i || { logs; die "slurmctld did not start"; }
  slurmd -c || { logs; die "slurmd did not start"; }

  # Bounded wait for the node to come up idle.
  for _ in $(seq 120); do
    state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
    [[ $state == idle ]] && { echo "export SLURM_CONF=$dir/slurm.conf"; return 0; }
    sleep 0.5
  done
  logs; stop; die "the node did not become idle within 60 s (state: ${state:-none})"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) die "unknown command $cmd (start or stop)" ;;
esac
