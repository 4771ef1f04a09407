/**
 * `npm run bench:lease -- --vs-etcd`: leases on one member, keyraft next to etcd 3.4 in the same
 * run, rounds alternating which server goes first, medians reported.
 *
 *   keep-alive   L leases (default 10,000, TTL 60 s) each renewed once a second over S
 *                LeaseKeepAlive streams (default 10); reports keep-alives/s answered and the
 *                server's CPU time per keep-alive (utime + stime of its process from /proc,
 *                over the whole measured window, divided by the keep-alives answered).
 *   grant-put-revoke  C concurrent loops (default 32) of LeaseGrant, Put under the lease,
 *                LeaseRevoke; reports cycles/s. Twice: through the grpc-js client (what a Node
 *                user of @grpc/grpc-js sees; its ~0.5-1.2 ms of CPU per cycle shares the two cores
 *                with the server and bounds both servers alike), and through the raw HTTP/2 load
 *                generator of the KV bench (bench/kv/grpc-load.ts, a few µs per call) with
 *                lease IDs the client chooses, which leaves the cores to the server; that row
 *                also reports the server's CPU per cycle.
 *   lock         K contenders (default 10), each with its own lease, loop Lock(name) then
 *                Unlock(key) on one name through the Lock service (v3lockpb); reports
 *                acquire/release cycles/s and the server's CPU time per cycle. Every cycle is a
 *                txn, a range, a watch on the key ahead in the queue and a delete: the queue
 *                recipe, not one RPC.
 *
 * Options: --vs-etcd --leases N --streams N --duration S --rounds N --concurrency N --contenders N.
 * The load generator runs on the same machine as the server: on a shared 2-core machine, take
 * the numbers as relative (the ratio column), not absolute.
 */
import { readFileSync } from 'node:fs';
import { checkEtcdAvailable, forEachArg, median } from '../kv/side-by-side.js';
import { killAll, startEtcd, startKeyraft, type ServerProcess } from '../../test/integration/harness.js';
import { LeaseGrpc } from '../../test/cluster/lease-grpc.js';
import { LockClient } from '../../test/lock/lock-client.js';
import { encode, messageType } from '../../src/proto/codec.js';
import { runGrpcLoad } from '../kv/grpc-load.js';

export interface LeaseBenchOptions {
  vsEtcd: boolean;
  leases: number;
  streams: number;
  durationSeconds: number;
  rounds: number;
  concurrency: number;
  /** Lock contenders on one name (the lock scenario). */
  contenders: number;
  log: (line: string) => void;
}

export interface LeaseBenchRow {
  name: string;
  unit: string;
  keyraft: number;
  etcd?: number;
  /** Server CPU µs per operation (a keep-alive, a lock cycle; lower is better). */
  keyraftCpuUs?: number;
  etcdCpuUs?: number;
}

/** The process's CPU time so far (user + system), in ms, from /proc/<pid>/stat. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the name: state is [0], utime [11], stime [12], in clock ticks (100 per second here).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

async function keepAliveRound(port: number, pid: number, o: LeaseBenchOptions, ids: bigint[]): Promise<{ perSecond: number; cpuUs: number }> {
  const client = new LeaseGrpc(port);
  const streams = Array.from({ length: o.streams }, () => client.keepAliveStream());
  try {
    // Warm the streams (connection, first message) before measuring.
    await Promise.all(streams.map((s, i) => s.keepAlive(ids[i]!)));
    const answeredNow = () => streams.reduce((n, st) => n + st.answered, 0);
    const baseline = answeredNow();
    const cpuBefore = cpuMs(pid);
    const started = performance.now();
    for (let second = 0; second < o.durationSeconds; second++) {
      const tick = performance.now();
      for (let i = 0; i < ids.length; i++) streams[i % streams.length]!.send(ids[i]!);
      // This second's answers, then the rest of the second (a server that falls behind shows as fewer per second).
      while (answeredNow() - baseline < (second + 1) * ids.length && performance.now() - tick < 5000) {
        await new Promise((r) => setTimeout(r, 5));
      }
      const left = 1000 - (performance.now() - tick);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    }
    const elapsed = (performance.now() - started) / 1000;
    const answered = answeredNow() - baseline;
    const cpu = cpuMs(pid) - cpuBefore;
    return { perSecond: answered / elapsed, cpuUs: (cpu * 1000) / Math.max(1, answered) };
  } finally {
    for (const s of streams) s.close();
    client.close();
  }
}

async function grantPutRevokeRound(port: number, o: LeaseBenchOptions): Promise<number> {
  const client = new LeaseGrpc(port);
  try {
    let cycles = 0;
    const deadline = performance.now() + o.durationSeconds * 1000;
    const started = performance.now();
    await Promise.all(Array.from({ length: o.concurrency }, async (_, w) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const { ID } = await client.grant(60);
        await client.put(`bench/${w}/${i % 100}`, 'v', ID);
        await client.revoke(ID);
        cycles++;
      }
    }));
    return cycles / ((performance.now() - started) / 1000);
  } finally {
    client.close();
  }
}

const leaseGrantType = messageType('etcdserverpb.LeaseGrantRequest');
const putType = messageType('etcdserverpb.PutRequest');
const leaseRevokeType = messageType('etcdserverpb.LeaseRevokeRequest');
/** Raw-client rounds so far, per port: each round's lease IDs are new (a failed revoke must not collide later). */
const rawRounds = new Map<number, number>();

/**
 * The grant + put + revoke loops through the raw HTTP/2 generator: the client picks each cycle's
 * lease ID (round, loop and cycle in its bits), so the put and the revoke need nothing from the
 * grant's answer. Cycles/s, server CPU per cycle, and calls that failed (there should be none).
 */
async function grantPutRevokeRawRound(port: number, pid: number, o: LeaseBenchOptions): Promise<{ perSecond: number; cpuUs: number; failed: number }> {
  const round = (rawRounds.get(port) ?? 0) + 1;
  rawRounds.set(port, round);
  const leaseId = (loop: number, cycle: number) => (BigInt(round) << 48n) | (BigInt(loop) << 28n) | BigInt(cycle);
  const connections = Math.min(4, o.concurrency);
  const streams = Math.max(1, Math.round(o.concurrency / connections));
  const value = Buffer.from('v');
  const cpuBefore = cpuMs(pid);
  const load = await runGrpcLoad({
    port,
    connections,
    streamsPerConnection: streams,
    durationSeconds: o.durationSeconds,
    sequence: [
      { path: '/etcdserverpb.Lease/LeaseGrant', request: (loop, cycle) => encode(leaseGrantType, { TTL: 60, ID: leaseId(loop, cycle) }) },
      { path: '/etcdserverpb.KV/Put', request: (loop, cycle) => encode(putType, { key: Buffer.from(`bench/${loop}/${cycle % 100}`), value, lease: leaseId(loop, cycle) }) },
      { path: '/etcdserverpb.Lease/LeaseRevoke', request: (loop, cycle) => encode(leaseRevokeType, { ID: leaseId(loop, cycle) }) },
    ],
  });
  const cycles = (load.requestsPerSecond * o.durationSeconds) / 3;
  const cpu = cpuMs(pid) - cpuBefore;
  return { perSecond: load.requestsPerSecond / 3, cpuUs: (cpu * 1000) / Math.max(1, cycles), failed: load.errors + load.non2xx };
}

/** K contenders each loop Lock then Unlock on one name, each under its own lease: cycles/s and server CPU per cycle. */
async function lockRound(port: number, pid: number, o: LeaseBenchOptions): Promise<{ perSecond: number; cpuUs: number }> {
  const leases = new LeaseGrpc(port);
  const locks = new LockClient(port);
  try {
    const ids = await Promise.all(Array.from({ length: o.contenders }, () => leases.grant(60)));
    // Warm the connection and the name before measuring.
    const warm = await locks.lock('bench-lock', ids[0]!.ID.toString()).reply;
    await locks.unlock(warm.key);
    let cycles = 0;
    const cpuBefore = cpuMs(pid);
    const started = performance.now();
    const deadline = started + o.durationSeconds * 1000;
    await Promise.all(ids.map(async ({ ID }) => {
      while (performance.now() < deadline) {
        const held = await locks.lock('bench-lock', ID.toString()).reply;
        await locks.unlock(held.key);
        cycles++;
      }
    }));
    const elapsed = (performance.now() - started) / 1000;
    const cpu = cpuMs(pid) - cpuBefore;
    for (const { ID } of ids) await leases.revoke(ID);
    return { perSecond: cycles / elapsed, cpuUs: (cpu * 1000) / Math.max(1, cycles) };
  } finally {
    locks.close();
    leases.close();
  }
}

async function grantAll(port: number, n: number): Promise<bigint[]> {
  const client = new LeaseGrpc(port);
  try {
    const ids: bigint[] = [];
    for (let i = 0; i < n; i += 200) {
      const batch = await Promise.all(Array.from({ length: Math.min(200, n - i) }, () => client.grant(60)));
      for (const g of batch) ids.push(g.ID);
    }
    return ids;
  } finally {
    client.close();
  }
}

export async function runLeaseBench(o: LeaseBenchOptions): Promise<LeaseBenchRow[]> {
  checkEtcdAvailable({ vsEtcd: o.vsEtcd, durationSeconds: o.durationSeconds, connections: 1, rounds: o.rounds });
  const servers: Array<['keyraft' | 'etcd', ServerProcess]> = [['keyraft', await startKeyraft()]];
  if (o.vsEtcd) servers.push(['etcd', await startEtcd()]);
  try {
    const ids = new Map<string, bigint[]>();
    for (const [who, s] of servers) ids.set(who, await grantAll(s.clientPort, o.leases));
    const ka = { keyraft: [] as number[], etcd: [] as number[] };
    const kaCpu = { keyraft: [] as number[], etcd: [] as number[] };
    const gpr = { keyraft: [] as number[], etcd: [] as number[] };
    const gprRaw = { keyraft: [] as number[], etcd: [] as number[] };
    const gprRawCpu = { keyraft: [] as number[], etcd: [] as number[] };
    const lock = { keyraft: [] as number[], etcd: [] as number[] };
    const lockCpu = { keyraft: [] as number[], etcd: [] as number[] };
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const [who, s] of order) {
        const r = await keepAliveRound(s.clientPort, s.child.pid!, o, ids.get(who)!);
        ka[who].push(r.perSecond);
        kaCpu[who].push(r.cpuUs);
        o.log(`  keep-alive round ${round + 1} ${who}: ${r.perSecond.toFixed(0)} keep-alives/s, ${r.cpuUs.toFixed(1)} µs server CPU each`);
      }
      for (const [who, s] of order) {
        const c = await grantPutRevokeRound(s.clientPort, o);
        gpr[who].push(c);
        o.log(`  grant-put-revoke round ${round + 1} ${who}: ${c.toFixed(0)} cycles/s`);
      }
      for (const [who, s] of order) {
        const r = await grantPutRevokeRawRound(s.clientPort, s.child.pid!, o);
        if (r.failed > 0) throw new Error(`grant-put-revoke (raw client) on ${who}: ${r.failed} calls failed`);
        gprRaw[who].push(r.perSecond);
        gprRawCpu[who].push(r.cpuUs);
        o.log(`  grant-put-revoke (raw client) round ${round + 1} ${who}: ${r.perSecond.toFixed(0)} cycles/s, ${r.cpuUs.toFixed(0)} µs server CPU each`);
      }
      for (const [who, s] of order) {
        const r = await lockRound(s.clientPort, s.child.pid!, o);
        lock[who].push(r.perSecond);
        lockCpu[who].push(r.cpuUs);
        o.log(`  lock round ${round + 1} ${who}: ${r.perSecond.toFixed(0)} acquire/release cycles/s, ${r.cpuUs.toFixed(0)} µs server CPU each`);
      }
    }
    const etcd = o.vsEtcd;
    return [
      {
        name: `keep-alive (${o.leases} leases, ${o.streams} streams)`, unit: 'keep-alives/s',
        keyraft: median(ka.keyraft), etcd: etcd ? median(ka.etcd) : undefined,
        keyraftCpuUs: median(kaCpu.keyraft), etcdCpuUs: etcd ? median(kaCpu.etcd) : undefined,
      },
      { name: `grant + put + revoke (${o.concurrency} loops, grpc-js)`, unit: 'cycles/s', keyraft: median(gpr.keyraft), etcd: etcd ? median(gpr.etcd) : undefined },
      {
        name: `grant + put + revoke (${o.concurrency} loops, raw HTTP/2 client)`, unit: 'cycles/s',
        keyraft: median(gprRaw.keyraft), etcd: etcd ? median(gprRaw.etcd) : undefined,
        keyraftCpuUs: median(gprRawCpu.keyraft), etcdCpuUs: etcd ? median(gprRawCpu.etcd) : undefined,
      },
      {
        name: `lock acquire/release (${o.contenders} contenders)`, unit: 'cycles/s',
        keyraft: median(lock.keyraft), etcd: etcd ? median(lock.etcd) : undefined,
        keyraftCpuUs: median(lockCpu.keyraft), etcdCpuUs: etcd ? median(lockCpu.etcd) : undefined,
      },
    ];
  } finally {
    await killAll();
  }
}

export function formatLeaseTable(rows: LeaseBenchRow[]): string {
  const out = ['| scenario | keyraft | etcd 3.4 | keyraft/etcd | server CPU per operation keyraft / etcd |', '|---|---:|---:|---:|---:|'];
  for (const r of rows) {
    const ratio = r.etcd ? `${(r.keyraft / r.etcd).toFixed(2)}x` : '-';
    const cpu = r.keyraftCpuUs !== undefined ? `${r.keyraftCpuUs.toFixed(1)} µs / ${r.etcdCpuUs !== undefined ? `${r.etcdCpuUs.toFixed(1)} µs` : '-'}` : '';
    out.push(`| ${r.name} | ${r.keyraft.toFixed(0)} ${r.unit} | ${r.etcd !== undefined ? `${r.etcd.toFixed(0)} ${r.unit}` : '-'} | ${ratio} | ${cpu} |`);
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  const o: LeaseBenchOptions = { vsEtcd: false, leases: 10_000, streams: 10, durationSeconds: 10, rounds: 3, concurrency: 32, contenders: 10, log: (l) => console.log(l) };
  forEachArg(process.argv.slice(2), (arg, value) => {
    if (arg === '--vs-etcd') o.vsEtcd = true;
    else if (arg === '--leases') o.leases = Number(value());
    else if (arg === '--streams') o.streams = Number(value());
    else if (arg === '--duration') o.durationSeconds = Number(value());
    else if (arg === '--rounds') o.rounds = Number(value());
    else if (arg === '--concurrency') o.concurrency = Number(value());
    else if (arg === '--contenders') o.contenders = Number(value());
    else return false;
    return true;
  });
  const rows = await runLeaseBench(o);
  console.log(formatLeaseTable(rows));
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
