#!/bin/bash
# `etcdctl check perf` against one member (a keyraft worktree's build, or etcd 3.4), with the server's
# CPU over the run: the main thread's and the whole process's utime+stime (/proc) per put, and
# etcdctl's own CPU (it shares the machine's cores). Puts counted from the revision (each put is one
# revision; check perf deletes its prefix once at the end).
# usage: bench/kv/check-perf.sh WORKTREE|etcd [LOAD (l)]
#   NODEOPTS="--cpu-prof --cpu-prof-dir=DIR" STOPWAIT=5 to profile the member.
# main_busy: the main thread's CPU over the run's wall time; main_runq: the time it was ready to run
# but waiting for a core (/proc schedstat run delay), over the wall time: on a shared machine, the
# part of the run the member lost to other processes.
set -e
WT=$1; LOAD=${2:-l}
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
PPORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
DD=$(mktemp -d /tmp/chkperf.XXXX)
ARGS="--data-dir $DD/m --listen-client-urls http://127.0.0.1:$PORT --advertise-client-urls http://127.0.0.1:$PORT --listen-peer-urls http://127.0.0.1:$PPORT --initial-advertise-peer-urls http://127.0.0.1:$PPORT --initial-cluster default=http://127.0.0.1:$PPORT"
if [ "$WT" = etcd ]; then /usr/bin/etcd $ARGS --log-level error --logger zap >/dev/null 2>&1 & PID=$!
else KEYRAFT_LOG_LEVEL=warn node $NODEOPTS $WT/dist/src/cli/keyraft.js $ARGS >$DD/log 2>&1 & PID=$!; fi
trap 'kill -9 $PID 2>/dev/null || true; rm -rf $DD' EXIT
for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$PORT/health && break; sleep 0.1; done
E=127.0.0.1:$PORT
rev() { ETCDCTL_API=3 etcdctl --endpoints=$E endpoint status -w json | grep -oP '"revision":\K[0-9]+'; }
tck=$(getconf CLK_TCK)
rev1=$(rev)
read u1 s1 < <(awk '{print $14, $15}' /proc/$PID/task/$PID/stat)
read pu1 ps1 < <(awk '{print $14, $15}' /proc/$PID/stat)
read run1 wait1 < <(awk '{print $1, $2}' /proc/$PID/task/$PID/schedstat)
w1=$(awk '/^syscw/ {print $2}' /proc/$PID/io)
T0=$(date +%s.%N)
OUT=$( { /usr/bin/time -f 'ctl_cpu_s=%U+%S' env ETCDCTL_API=3 etcdctl --endpoints=$E check perf --load=$LOAD 2>&1; } 2>&1 | tr '\r' '\n' | grep -v -E '^ *[0-9]+ / [0-9]+ ' || true)
T1=$(date +%s.%N)
read u2 s2 < <(awk '{print $14, $15}' /proc/$PID/task/$PID/stat)
read pu2 ps2 < <(awk '{print $14, $15}' /proc/$PID/stat)
read run2 wait2 < <(awk '{print $1, $2}' /proc/$PID/task/$PID/schedstat)
w2=$(awk '/^syscw/ {print $2}' /proc/$PID/io)
rev2=$(rev)
N=$((rev2 - rev1 - 1))
kill -INT $PID 2>/dev/null || true; sleep ${STOPWAIT:-0.3}
echo "$OUT" | grep -E 'PASS|FAIL|Throughput|Slowest|Stddev|ctl_cpu' | sed 's/^/  /'
CTL=$(echo "$OUT" | grep -oP 'ctl_cpu_s=\K[0-9.+]+' | python3 -c 'import sys; print(round(eval(sys.stdin.read().strip() or "0"),1))')
echo "$(basename $WT) load=$LOAD puts=$N wall_s=$(python3 -c "print(round($T1-$T0,1))") main_us=$(python3 -c "print(round((($u2+$s2)-($u1+$s1))/$tck/max($N,1)*1e6,1))") main_busy=$(python3 -c "print(round((($u2+$s2)-($u1+$s1))/$tck/($T1-$T0),2))") main_runq=$(python3 -c "print(round(($wait2-$wait1)/1e9/($T1-$T0),2))") proc_us=$(python3 -c "print(round((($pu2+$ps2)-($pu1+$ps1))/$tck/max($N,1)*1e6,1))") writes_per_put=$(python3 -c "print(round(($w2-$w1)/max($N,1),2))") etcdctl_cpu_s=$CTL load_avg=$(cut -d' ' -f1 /proc/loadavg)"
