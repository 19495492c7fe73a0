#!/usr/bin/env bash
# A real one-node Slurm with accounting (munge, MariaDB + slurmdbd, slurmctld, slurmd) on a Debian machine,
# from nothing, as root, without systemd or cgroups. Idempotent: a cluster already up is left running.
# Everything lives in STATE (default /tmp/lclab-slurm); the only things touched outside it are the apt
# packages it installs and, if the hostname does not resolve, one /etc/hosts line.
#
#   slurm/local_cluster/up.sh [STATE]     then: export SLURM_CONF=STATE/slurm.conf
#   slurm/local_cluster/down.sh [STATE]
#
# Settings, each measured on this setup: cred_expire=5 makes a requeued job restart in ~7 s (the default waits
# minutes); fast scheduling; EnforcePartLimits=ALL so impossible requests fail at submission, not in the queue.
set -euo pipefail
STATE=$(realpath -m "${1:-${LCLAB_SLURM_STATE:-/tmp/lclab-slurm}}")
CLUSTER=lclab
HOST=$(hostname -s)
export SLURM_CONF=$STATE/slurm.conf

if [ -f "$STATE/slurm.conf" ] && sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "export SLURM_CONF=$SLURM_CONF"; exit 0
fi

need=()
command -v slurmctld >/dev/null || need+=(slurmctld)
command -v slurmd >/dev/null || need+=(slurmd)
command -v sbatch >/dev/null || need+=(slurm-client)
command -v munged >/dev/null || need+=(munge)
command -v slurmdbd >/dev/null || need+=(slurmdbd)
command -v mariadbd >/dev/null || need+=(mariadb-server)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >> /etc/hosts

mkdir -p "$STATE"/{munge,key,log,ctld,spool,db,run}
chmod 755 "$STATE" "$STATE/munge"  # the munge socket's directory must be world-executable
chmod 700 "$STATE/key"
SOCK=$STATE/munge/munge.socket
[ -f "$STATE/key/munge.key" ] || { dd if=/dev/urandom bs=1 count=1024 of="$STATE/key/munge.key" status=none; chmod 400 "$STATE/key/munge.key"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "local_cluster: $what did not come up; logs in $STATE/log" >&2; exit 1; }
        sleep 0.2
    done
}

munged --force -S "$SOCK" --key-file="$STATE/key/munge.key" --pid-file="$STATE/run/munged.pid" \
    --log-file="$STATE/log/munged.log" --seed-file="$STATE/run/munged.seed"
wait_for 10 munged test -S "$SOCK"

# accounting: without sacct, submitit never learns that a job died
if [ ! -d "$STATE/db/mysql" ]; then
    mariadb-install-db --datadir="$STATE/db" --user=root --auth-root-authentication-method=normal >"$STATE/log/mariadb-install.log" 2>&1
fi
mariadbd --datadir="$STATE/db" --socket="$STATE/run/mysql.sock" --port=3307 --bind-address=127.0.0.1 --user=root \
    --pid-file="$STATE/run/mariadb.pid" --log-error="$STATE/log/mariadb.log" >/dev/null 2>&1 &
wait_for 30 MariaDB mariadb -S "$STATE/run/mysql.sock" -uroot -e "SELECT 1"
mariadb -S "$STATE/run/mysql.sock" -uroot -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

cat > "$STATE/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurm
StoragePort=3307
CONF
chmod 600 "$STATE/slurmdbd.conf"
slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF

NODE=$(slurmd -C | head -1 | sed -E 's/ UpTime=.*//')
MEM=$(echo "$NODE" | sed -E 's/.*RealMemory=([0-9]+).*/\1/')
NODE=$(echo "$NODE" | sed -E "s/RealMemory=[0-9]+/RealMemory=$((MEM * 9 / 10))/")
cat > "$STATE/slurm.conf" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
AuthType=auth/munge
AuthInfo=socket=$SOCK,cred_expire=5
CredType=cred/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=bf_interval=1,sched_interval=1
EnforcePartLimits=ALL
ReturnToService=2
KillWait=5
MinJobAge=300
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStoragePass=$SOCK
JobAcctGatherType=jobacct_gather/none
$NODE
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
wait_for 30 slurmdbd sacctmgr -n list cluster
sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
slurmctld -f "$STATE/slurm.conf"
slurmd -f "$STATE/slurm.conf"
wait_for 60 "the node (sinfo idle)" bash -c "sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)'"
echo "export SLURM_CONF=$SLURM_CONF"
