#!/bin/bash
# CPU per unary gRPC Put of one member, by h2load: the server main thread's and the whole
# process's utime+stime (/proc) over the run, divided by the requests. Less sensitive to a shared
# machine's load than throughput. Needs h2load; the Put body is /tmp/put.bin (bench/kv/put-body.sh writes it if missing).
# writes_per_put/reads_per_put: the process's write and read syscalls (/proc/PID/io syscw, syscr:
# every thread, so the WAL writer's appends and the wake-ups between threads count too) per put.
# usage: bench/kv/cpu-per-put.sh WORKTREE|etcd CONNECTIONS STREAMS [REQUESTS]
#   NODEOPTS="--cpu-prof --cpu-prof-dir=DIR" STOPWAIT=5 to profile the member.
#   LOADGEN=grpc-go-like: the load comes from this repo's raw HTTP/2 generator (grpc-load-run.js,
#   built in dist/) sending, as grpc-go clients do, a WINDOW_UPDATE and a BDP PING with each call
#   (etcdctl check perf's clients; h2load sends neither). Puts are then counted from the revision.
set -e
WT=$1; C=$2; M=$3; N=${4:-40000}
PUTBIN=${PUTBIN:-/tmp/put.bin}
"$(dirname "$0")/put-body.sh" "$PUTBIN"
LOADRUN=$(cd "$(dirname "$0")/../.." && pwd)/dist/bench/kv/grpc-load-run.js
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
rev() { curl -s -X POST -d '{"key":"YmVuY2gvb25l"}' http://127.0.0.1:$PORT/v3/kv/range | grep -oP '"revision":"\K[0-9]+'; }
if [ "$LOADGEN" = grpc-go-like ]; then
  rev1=$(rev)
  OUT=$(node $LOADRUN --port $PORT --connections $C --streams $M --calls $N --bdp-pings 2>&1)
fi
if [ "$LOADGEN" != grpc-go-like ]; then
OUT=$(h2load -n $N -c $C -m $M -d $PUTBIN -H 'content-type: application/grpc' -H 'te: trailers' http://127.0.0.1:$PORT/etcdserverpb.KV/Put 2>&1)
fi
read u2 s2 < <(awk '{print $14, $15}' /proc/$PID/task/$PID/stat)
read pu2 ps2 < <(awk '{print $14, $15}' /proc/$PID/stat)
w2=$(awk '/^syscw/ {print $2}' /proc/$PID/io); r2=$(awk '/^syscr/ {print $2}' /proc/$PID/io)
if [ "$LOADGEN" = grpc-go-like ]; then
  RPS=$(echo "$OUT" | grep -oP 'calls/s=\K[0-9]+'); N=$(( $(rev) - rev1 )); OK=$N
  echo "$OUT" | grep -q 'errors=0 failed=0' || echo "load generator: $OUT" >&2
else
  RPS=$(echo "$OUT" | grep -oP 'finished in [^,]+, \K[0-9.]+(?= req/s)')
  OK=$(echo "$OUT" | grep -oP '\d+(?= succeeded)' | head -1)
fi
kill -INT $PID 2>/dev/null || true; sleep ${STOPWAIT:-0.3}; kill -9 $PID 2>/dev/null || true; wait $PID 2>/dev/null || true
rm -rf $DD
echo "$(basename $WT) c=$C m=$M n=$N ok=$OK main_us=$(python3 -c "print(round((($u2+$s2)-($u1+$s1))/$tck/$N*1e6,1))") proc_us=$(python3 -c "print(round((($pu2+$ps2)-($pu1+$ps1))/$tck/$N*1e6,1))") writes_per_put=$(python3 -c "print(round(($w2-$w1)/$N,2))") reads_per_put=$(python3 -c "print(round(($r2-$r1)/$N,2))") rps=$RPS"
