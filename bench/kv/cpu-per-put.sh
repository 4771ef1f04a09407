#!/bin/bash
# CPU per unary gRPC Put of one member, by h2load: the server main thread's and the whole
# process's utime+stime (/proc) over the run, divided by the requests. Less sensitive to a shared
# machine's load than throughput. Needs h2load and /tmp/put.bin (a gRPC-framed PutRequest).
# writes_per_put/reads_per_put: the process's write and read syscalls (/proc/PID/io syscw, syscr:
# every thread, so the WAL writer's appends and the wake-ups between threads count too) per put.
# usage: bench/kv/cpu-per-put.sh WORKTREE|etcd CONNECTIONS STREAMS [REQUESTS]
#   NODEOPTS="--cpu-prof --cpu-prof-dir=DIR" STOPWAIT=5 to profile the member.
set -e
WT=$1; C=$2; M=$3; N=${4:-40000}
PUTBIN=${PUTBIN:-/tmp/put.bin}
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
PPORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
DD=$(mktemp -d /tmp/cpp.XXXX)
ARGS="--data-dir $DD/m --listen-client-urls http://127.0.0.1:$PORT --advertise-client-urls http://127.0.0.1:$PORT --listen-peer-urls http://127.0.0.1:$PPORT --initial-advertise-peer-urls http://127.0.0.1:$PPORT --initial-cluster default=http://127.0.0.1:$PPORT"
if [ "$WT" = etcd ]; then /usr/bin/etcd $ARGS --log-level error --logger zap >/dev/null 2>&1 & PID=$!
else KEYRAFT_LOG_LEVEL=warn node $NODEOPTS $WT/dist/src/cli/keyraft.js $ARGS >$DD/log 2>&1 & PID=$!; fi
for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$PORT/health && break; sleep 0.1; done
# warm-up
h2load -n 5000 -c 10 -m 10 -d $PUTBIN -H 'content-type: application/grpc' -H 'te: trailers' http://127.0.0.1:$PORT/etcdserverpb.KV/Put >/dev/null 2>&1
tck=$(getconf CLK_TCK)
read u1 s1 < <(awk '{print $14, $15}' /proc/$PID/task/$PID/stat)
read pu1 ps1 < <(awk '{print $14, $15}' /proc/$PID/stat)
w1=$(awk '/^syscw/ {print $2}' /proc/$PID/io); r1=$(awk '/^syscr/ {print $2}' /proc/$PID/io)
OUT=$(h2load -n $N -c $C -m $M -d $PUTBIN -H 'content-type: application/grpc' -H 'te: trailers' http://127.0.0.1:$PORT/etcdserverpb.KV/Put 2>&1)
read u2 s2 < <(awk '{print $14, $15}' /proc/$PID/task/$PID/stat)
read pu2 ps2 < <(awk '{print $14, $15}' /proc/$PID/stat)
w2=$(awk '/^syscw/ {print $2}' /proc/$PID/io); r2=$(awk '/^syscr/ {print $2}' /proc/$PID/io)
RPS=$(echo "$OUT" | grep -oP 'finished in [^,]+, \K[0-9.]+(?= req/s)')
OK=$(echo "$OUT" | grep -oP '\d+(?= succeeded)' | head -1)
kill -INT $PID 2>/dev/null || true; sleep ${STOPWAIT:-0.3}; kill -9 $PID 2>/dev/null || true; wait $PID 2>/dev/null || true
rm -rf $DD
echo "$(basename $WT) c=$C m=$M n=$N ok=$OK main_us=$(python3 -c "print(round((($u2+$s2)-($u1+$s1))/$tck/$N*1e6,1))") proc_us=$(python3 -c "print(round((($pu2+$ps2)-($pu1+$ps1))/$tck/$N*1e6,1))") writes_per_put=$(python3 -c "print(round(($w2-$w1)/$N,2))") reads_per_put=$(python3 -c "print(round(($r2-$r1)/$N,2))") rps=$RPS"
