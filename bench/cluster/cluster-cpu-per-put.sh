#!/bin/bash
# CPU per gRPC Put on a 3-member cluster (keyraft worktree build, or etcd 3.4), by h2load against
# the leader: each member's whole-process utime+stime (/proc) over the run, divided by the puts,
# and the sum over members. Which member spends what (leader vs followers) says where cluster put
# throughput goes on a machine whose cores all members and the load generator share.
# Needs h2load; the Put body is /tmp/put.bin, written by bench/kv/put-body.sh if missing.
# usage: bench/cluster/cluster-cpu-per-put.sh WORKTREE|etcd [CONNECTIONS (10)] [STREAMS (10)] [REQUESTS (40000)]
#   NODEOPTS="--cpu-prof --cpu-prof-dir=DIR" STOPWAIT=5 to profile the keyraft members.
#   THREADS=1 also prints each member's CPU per put by thread: the main thread as "main", the
#   others by their name (Node names most "node": the libuv pool, V8's GC helpers, the workers),
#   busiest first; threads under 0.5 µs per put left out.
set -e
WT=$1; C=${2:-10}; M=${3:-10}; N=${4:-40000}
PUTBIN=${PUTBIN:-/tmp/put.bin}
"$(dirname "$0")/../kv/put-body.sh" "$PUTBIN"
free() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
DD=$(mktemp -d /tmp/ccpp.XXXX)
CP=(); PP=(); PIDS=()
for i in 0 1 2; do CP[$i]=$(free); PP[$i]=$(free); done
IC="m0=http://127.0.0.1:${PP[0]},m1=http://127.0.0.1:${PP[1]},m2=http://127.0.0.1:${PP[2]}"
trap 'for p in "${PIDS[@]}"; do kill -9 $p 2>/dev/null || true; done; rm -rf $DD' EXIT
for i in 0 1 2; do
  ARGS="--name m$i --data-dir $DD/m$i --listen-client-urls http://127.0.0.1:${CP[$i]} --advertise-client-urls http://127.0.0.1:${CP[$i]} --listen-peer-urls http://127.0.0.1:${PP[$i]} --initial-advertise-peer-urls http://127.0.0.1:${PP[$i]} --initial-cluster $IC --initial-cluster-token cpp --initial-cluster-state new"
  if [ "$WT" = etcd ]; then /usr/bin/etcd $ARGS --log-level error --logger zap >/dev/null 2>&1 & PIDS[$i]=$!
  else KEYRAFT_LOG_LEVEL=warn node $NODEOPTS $WT/dist/src/cli/keyraft.js $ARGS >$DD/log$i 2>&1 & PIDS[$i]=$!; fi
done
LEADER=
for t in $(seq 200); do
  for i in 0 1 2; do
    S=$(ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:${CP[$i]} endpoint status -w json 2>/dev/null || true)
    id=$(echo "$S" | grep -oP '"member_id":\K[0-9]+' || true); ld=$(echo "$S" | grep -oP '"leader":\K[0-9]+' || true)
    if [ -n "$id" ] && [ "$id" = "$ld" ]; then LEADER=$i; break 2; fi
  done
  sleep 0.1
done
[ -n "$LEADER" ] || { echo "no leader" >&2; exit 1; }
URL=http://127.0.0.1:${CP[$LEADER]}/etcdserverpb.KV/Put
h2load -n 5000 -c $C -m $M -d $PUTBIN -H 'content-type: application/grpc' -H 'te: trailers' $URL >/dev/null 2>&1
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' /proc/$1/stat; }
# Threads by name; the main thread (tid = pid) as "main", the rest numbered within their name
# (Node names most of its threads "node"), so a busy worker stands out.
threads() { for t in /proc/$1/task/*; do n=$(cat $t/comm | tr ' ' _); [ "${t##*/}" = "$1" ] && n=main; echo "$n#${t##*/} $(awk '{print $14 + $15}' $t/stat)"; done; }
for i in 0 1 2; do B[$i]=$(cpu ${PIDS[$i]}); [ -z "$THREADS" ] || threads ${PIDS[$i]} > $DD/threads-before-$i; done
OUT=$(h2load -n $N -c $C -m $M -d $PUTBIN -H 'content-type: application/grpc' -H 'te: trailers' $URL 2>&1)
for i in 0 1 2; do A[$i]=$(cpu ${PIDS[$i]}); [ -z "$THREADS" ] || threads ${PIDS[$i]} > $DD/threads-after-$i; done
RPS=$(echo "$OUT" | grep -oP 'finished in [^,]+, \K[0-9.]+(?= req/s)')
OK=$(echo "$OUT" | grep -oP '\d+(?= succeeded)' | head -1)
for i in 0 1 2; do kill -INT ${PIDS[$i]} 2>/dev/null || true; done; sleep ${STOPWAIT:-0.5}
us() { python3 -c "print(round(($1)/$tck/$N*1e6,1))"; }
F=""; for i in 0 1 2; do [ $i = $LEADER ] || F="$F $(us "${A[$i]}-${B[$i]}")"; done
if [ -n "$THREADS" ]; then
  for i in 0 1 2; do
    role=follower; [ $i = $LEADER ] && role=leader
    echo "m$i ($role) per put, by thread: $(python3 - $DD/threads-before-$i $DD/threads-after-$i $tck $N <<'PY'
import sys
from collections import defaultdict
def read(p):
    d = {}
    for line in open(p):
        name, t = line.rsplit(' ', 1); d[name] = int(t)
    return d
b, a = read(sys.argv[1]), read(sys.argv[2]); tck, n = int(sys.argv[3]), int(sys.argv[4])
diff = sorted(((a[k] - b.get(k, 0)) / tck / n * 1e6, k) for k in a)
print(' '.join(f'{k.split("#")[0]}={v:.1f}' for v, k in reversed(diff) if v >= 0.5))
PY
)"
  done
fi
echo "$(basename $WT) c=$C m=$M n=$N ok=$OK rps=$RPS leader_us=$(us "${A[$LEADER]}-${B[$LEADER]}") follower_us=[${F# }] total_us=$(us "${A[0]}-${B[0]}+${A[1]}-${B[1]}+${A[2]}-${B[2]}") load_avg=$(cut -d' ' -f1 /proc/loadavg)"
