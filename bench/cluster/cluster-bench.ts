/**
 * A 3-member cluster on loopback, keyraft side by side with etcd 3.4: writes through the leader,
 * linearizable reads spread over every member, and failover after kill -9 of the leader.
 *
 *   npm run bench:cluster                    keyraft alone
 *   npm run bench:cluster -- --vs-etcd       keyraft and etcd (Debian etcd-server), both clusters up
 *                                            for the whole run, rounds alternating which goes first
 *   options: --duration S (10) --rounds R (3) --failover-rounds N (5) --inflight 100,1000
 *            --members N (3) --smoke (1 s, 1 round, 1 failover, 8 and 32 in flight)
 *
 * Scenarios:
 * - put-256B xN: gRPC Put of unique keys with 256 B values to the leader (found by
 *   Maintenance.Status on the JSON gateway: `leader` = `header.member_id`), N calls in flight
 *   (10 connections), from the raw HTTP/2 load generator (bench/kv/grpc-load.ts). req/s and
 *   p50/p99 latency, medians of rounds.
 * - get-linearizable xN: gRPC Range of one key (linearizable: a ReadIndex round each), the
 *   connections spread round-robin over all members, N = the first --inflight.
 * - failover-ms: kill -9 of the leader, then puts on the JSON gateway of the surviving members:
 *   a new attempt every 10 ms, alternating members, each abandoned after 300 ms, at most 16 at
 *   once; the time from the kill to the first acknowledged put. Default timeouts on both sides
 *   (heartbeat 100 ms, election 1000 ms). The killed member is restarted on its data and the
 *   cluster is healthy again before the next round. Median of --failover-rounds.
 *
 * Everything runs on the same 2 cores: three members of each store and the load generator. Every
 * process is started through the test harness and killed by PID at the end, also on error.
 */
import type { ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { encode, messageType } from '../../src/proto/codec.js';
import { clusterMemberArgs, memberHealthy, type ClusterMember } from '../../src/cli/local-cluster.js';
import { freePort, keyraftBin, killAll, postJson, spawnTracked, tempDir } from '../../test/integration/harness.js';
import { binaryOrThrow, findBinary, missingReason } from '../../test/etcd-binaries.js';
import { runGrpcLoad } from '../kv/grpc-load.js';
import { forEachArg, median, type Measurement } from '../kv/side-by-side.js';

export interface ClusterBenchOptions {
  vsEtcd: boolean;
  members: number;
  durationSeconds: number;
  rounds: number;
  failoverRounds: number;
  /** Calls in flight for the put scenarios; the first also sizes the read scenario. */
  inflight: number[];
  log?: (line: string) => void;
}

export type Kind = 'keyraft' | 'etcd';

/** One scenario's medians for one store: a load (req/s, latencies) or a failover time. */
export type ClusterSample = { kind: 'load'; load: Measurement } | { kind: 'failover'; ms: number };

export interface ClusterResult {
  name: string;
  keyraft: ClusterSample;
  etcd?: ClusterSample;
}

const CONNECTIONS_MAX = 10;
const HEALTHY_WAIT_MS = 60_000;
const LEADER_WAIT_MS = 30_000;
const FAILOVER_ATTEMPT_SPACING_MS = 10;
const FAILOVER_ATTEMPT_TIMEOUT_MS = 300;
const FAILOVER_ATTEMPTS_IN_FLIGHT_MAX = 16;
const FAILOVER_WAIT_MS = 60_000;
const OUTPUT_KEEP_BYTES = 16_384;

const putType = messageType('etcdserverpb.PutRequest');
const rangeType = messageType('etcdserverpb.RangeRequest');
const value256 = Buffer.alloc(256, 'v');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A cluster of one store's members on free loopback ports, each member restartable by index. */
class BenchCluster {
  private readonly children: Array<ChildProcess | undefined> = [];
  private readonly outputs: string[] = [];

  private constructor(readonly kind: Kind, readonly members: ClusterMember[]) {}

  static async start(kind: Kind, count: number): Promise<BenchCluster> {
    const root = tempDir(`cluster-${kind}`);
    const members: ClusterMember[] = [];
    const used = new Set<number>();
    const port = async () => {
      for (;;) {
        const p = await freePort();
        if (!used.has(p)) {
          used.add(p);
          return p;
        }
      }
    };
    for (let i = 0; i < count; i++) {
      members.push({ name: `${kind === 'etcd' ? 'e' : 'k'}${i + 1}`, clientPort: await port(), peerPort: await port(), dataDir: join(root, `m${i + 1}`) });
    }
    const cluster = new BenchCluster(kind, members);
    for (let i = 0; i < count; i++) cluster.startMember(i);
    await cluster.waitHealthy();
    return cluster;
  }

  get clientPorts(): number[] {
    return this.members.map((m) => m.clientPort);
  }

  startMember(index: number): void {
    const args = clusterMemberArgs(this.members, index, 'bench');
    const child = this.kind === 'keyraft'
      ? spawnTracked(process.execPath, [keyraftBin, ...args, '--log-level', 'warn'])
      : spawnTracked(binaryOrThrow('etcd'), [...args, '--log-level', 'error', '--logger', 'zap']);
    this.outputs[index] = '';
    const keep = (d: Buffer) => { this.outputs[index] = (this.outputs[index]! + d).slice(-OUTPUT_KEEP_BYTES); };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.children[index] = child;
  }

  private alive(index: number): boolean {
    const child = this.children[index];
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  private describe(index: number): string {
    return `${this.kind} ${this.members[index]!.name} (pid ${this.children[index]?.pid}), last output:\n${this.outputs[index]}`;
  }

  /** Every member answers /health with true (it is up and knows a leader). */
  async waitHealthy(): Promise<void> {
    const deadline = Date.now() + HEALTHY_WAIT_MS;
    for (;;) {
      this.members.forEach((_, i) => { if (!this.alive(i)) throw new Error(`member exited: ${this.describe(i)}`); });
      const health = await Promise.all(this.clientPorts.map((p) => memberHealthy(p)));
      if (health.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error(`${this.kind} cluster not healthy within ${HEALTHY_WAIT_MS} ms: ${health.map((h, i) => (h ? '' : this.describe(i))).join('\n')}`);
      await sleep(50);
    }
  }

  /** The index of the member whose Maintenance.Status says it is the leader. */
  async leaderIndex(): Promise<number> {
    const deadline = Date.now() + LEADER_WAIT_MS;
    for (;;) {
      for (let i = 0; i < this.members.length; i++) {
        if (!this.alive(i)) continue;
        try {
          const status = await postJson(this.members[i]!.clientPort, '/v3/maintenance/status', {});
          const leader = status.json?.leader;
          if (status.status === 200 && leader !== undefined && leader !== '0' && leader === status.json?.header?.member_id) return i;
        } catch {
          // not answering yet: try the next member
        }
      }
      if (Date.now() > deadline) throw new Error(`${this.kind}: no member reports itself leader within ${LEADER_WAIT_MS} ms`);
      await sleep(50);
    }
  }

  /** SIGKILL by PID; resolves once the process has exited. */
  async kill9(index: number): Promise<void> {
    const child = this.children[index];
    if (child === undefined || !this.alive(index)) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid!, 'SIGKILL');
    await exited;
  }
}

/** One put on the JSON gateway; true when acknowledged (200 with a header) within `timeoutMs`. */
function gatewayPut(port: number, key: string, timeoutMs: number): Promise<boolean> {
  const body = JSON.stringify({ key: Buffer.from(key).toString('base64'), value: value256.toString('base64') });
  return new Promise((resolve) => {
    let settled = false;
    const settle = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(ok);
    };
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v3/kv/put', headers: { 'content-type': 'application/json' }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => settle(res.statusCode === 200 && text.includes('"header"')));
      res.on('error', () => settle(false));
    });
    const timer = setTimeout(() => { req.destroy(); settle(false); }, timeoutMs);
    req.on('error', () => settle(false));
    req.end(body);
  });
}

/** kill -9 of the leader, then the time to the first acknowledged put through a survivor. */
async function measureFailover(cluster: BenchCluster, round: number): Promise<number> {
  await cluster.waitHealthy();
  const leader = await cluster.leaderIndex();
  const survivors = cluster.clientPorts.filter((_, i) => i !== leader);
  const startedAt = performance.now();
  const killed = cluster.kill9(leader);
  const ms = await new Promise<number>((resolve, reject) => {
    let done = false;
    let inFlight = 0;
    let attempt = 0;
    const finish = (err: Error | undefined, elapsedMs = 0) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      if (err) reject(err);
      else resolve(elapsedMs);
    };
    const launch = () => {
      if (done || inFlight >= FAILOVER_ATTEMPTS_IN_FLIGHT_MAX) return;
      if (performance.now() - startedAt > FAILOVER_WAIT_MS) return finish(new Error(`${cluster.kind}: no put acknowledged within ${FAILOVER_WAIT_MS} ms of killing the leader`));
      const port = survivors[attempt % survivors.length]!;
      const key = `bench/failover/${round}/${attempt++}`;
      inFlight++;
      void gatewayPut(port, key, FAILOVER_ATTEMPT_TIMEOUT_MS).then((ok) => {
        inFlight--;
        if (ok) finish(undefined, performance.now() - startedAt);
      });
    };
    const timer = setInterval(launch, FAILOVER_ATTEMPT_SPACING_MS);
    launch();
  });
  await killed;
  cluster.startMember(leader);
  await cluster.waitHealthy();
  return Math.round(ms);
}

interface ClusterScenario {
  name: string;
  kind: 'load' | 'failover';
  setup?: (cluster: BenchCluster) => Promise<void>;
  measure: (cluster: BenchCluster, round: number) => Promise<ClusterSample>;
}

function scenarios(options: ClusterBenchOptions, log: (line: string) => void): ClusterScenario[] {
  const shape = (inflight: number) => {
    const connections = Math.min(CONNECTIONS_MAX, inflight);
    return { connections, streamsPerConnection: Math.ceil(inflight / connections) };
  };
  let unique = 0;
  const list: ClusterScenario[] = options.inflight.map((inflight) => ({
    name: `put-256B x${inflight} to leader`,
    kind: 'load',
    measure: async (cluster) => {
      const leader = await cluster.leaderIndex();
      const prefix = `bench/put/${cluster.kind}/`;
      const load = await runGrpcLoad({
        port: cluster.members[leader]!.clientPort,
        path: '/etcdserverpb.KV/Put',
        nextRequest: () => encode(putType, { key: Buffer.from(prefix + unique++), value: value256 }),
        durationSeconds: options.durationSeconds,
        ...shape(inflight),
      });
      // An overloaded leader can miss heartbeats and lose its role mid-round (the calls then in
      // flight fail, as in etcd): say so, since it explains failed calls and a low rate.
      const after = await cluster.leaderIndex();
      if (after !== leader) log(`  (${cluster.kind}: leader changed during the round, ${cluster.members[leader]!.name} -> ${cluster.members[after]!.name})`);
      return { kind: 'load', load };
    },
  }));
  const readInflight = options.inflight[0]!;
  const readRequest = encode(rangeType, { key: Buffer.from('bench/read') });
  list.push({
    name: `get-linearizable x${readInflight} over ${options.members}`,
    kind: 'load',
    setup: async (cluster) => {
      const leader = await cluster.leaderIndex();
      const res = await postJson(cluster.members[leader]!.clientPort, '/v3/kv/put', { key: Buffer.from('bench/read').toString('base64'), value: value256.toString('base64') });
      if (res.status !== 200) throw new Error(`${cluster.kind}: setup put failed: ${res.status} ${res.raw}`);
    },
    measure: async (cluster) => {
      const load = await runGrpcLoad({
        port: cluster.clientPorts[0]!,
        ports: cluster.clientPorts,
        path: '/etcdserverpb.KV/Range',
        nextRequest: () => readRequest,
        durationSeconds: options.durationSeconds,
        ...shape(readInflight),
      });
      return { kind: 'load', load };
    },
  });
  list.push({ name: 'failover-ms (lower is better)', kind: 'failover', measure: async (cluster, round) => ({ kind: 'failover', ms: await measureFailover(cluster, round) }) });
  return list;
}

function summarize(samples: ClusterSample[]): ClusterSample {
  const first = samples[0]!;
  if (first.kind === 'failover') return { kind: 'failover', ms: median(samples.map((s) => (s.kind === 'failover' ? s.ms : NaN))) };
  const loads = samples.map((s) => (s.kind === 'load' ? s.load : first.load));
  return {
    kind: 'load',
    load: {
      requestsPerSecond: median(loads.map((m) => m.requestsPerSecond)),
      p50Ms: median(loads.map((m) => m.p50Ms)),
      p99Ms: median(loads.map((m) => m.p99Ms)),
      errors: loads.reduce((n, m) => n + m.errors, 0),
      non2xx: loads.reduce((n, m) => n + m.non2xx, 0),
    },
  };
}

function describeSample(s: ClusterSample): string {
  if (s.kind === 'failover') return `${s.ms} ms`;
  const m = s.load;
  return `${m.requestsPerSecond.toFixed(0)} req/s p50 ${m.p50Ms} ms p99 ${m.p99Ms} ms errors ${m.errors} non-OK ${m.non2xx}`;
}

export async function runClusterBench(options: ClusterBenchOptions): Promise<ClusterResult[]> {
  const log = options.log ?? ((line: string) => process.stdout.write(line + '\n'));
  if (options.vsEtcd && findBinary('etcd') === undefined) throw new Error(`--vs-etcd needs etcd 3.4: ${missingReason(['etcd'])}`);
  const results: ClusterResult[] = [];
  try {
    const clusters: Partial<Record<Kind, BenchCluster>> = {};
    clusters.keyraft = await BenchCluster.start('keyraft', options.members);
    log(`keyraft cluster up: client ports ${clusters.keyraft.clientPorts.join(',')}`);
    if (options.vsEtcd) {
      clusters.etcd = await BenchCluster.start('etcd', options.members);
      log(`etcd cluster up: client ports ${clusters.etcd.clientPorts.join(',')}`);
    }
    const kinds = Object.keys(clusters) as Kind[];
    for (const scenario of scenarios(options, log)) {
      for (const kind of kinds) await scenario.setup?.(clusters[kind]!);
      const samples: Record<Kind, ClusterSample[]> = { keyraft: [], etcd: [] };
      const rounds = scenario.kind === 'failover' ? options.failoverRounds : options.rounds;
      for (let round = 0; round < rounds; round++) {
        // Alternate who goes first so drift (page cache, neighbours' load) does not favour one.
        const order = round % 2 === 1 ? [...kinds].reverse() : kinds;
        for (const kind of order) {
          const sample = await scenario.measure(clusters[kind]!, round);
          samples[kind].push(sample);
          log(`  ${scenario.name} round ${round + 1} ${kind}: ${describeSample(sample)}`);
        }
      }
      results.push({ name: scenario.name, keyraft: summarize(samples.keyraft), etcd: clusters.etcd ? summarize(samples.etcd) : undefined });
    }
    return results;
  } finally {
    await killAll();
  }
}

function sampleValue(s: ClusterSample): number {
  return s.kind === 'failover' ? s.ms : s.load.requestsPerSecond;
}

function sampleCell(s: ClusterSample): string {
  if (s.kind === 'failover') return `${s.ms} ms`;
  const m = s.load;
  const failures = m.errors + m.non2xx > 0 ? `, ${m.errors + m.non2xx} failed` : '';
  return `${m.requestsPerSecond.toFixed(0)} req/s (${m.p50Ms} / ${m.p99Ms} ms${failures})`;
}

/** scenario | keyraft | etcd | keyraft/etcd; loads show req/s (p50 / p99 latency). */
export function formatClusterTable(results: ClusterResult[]): string {
  const rows = ['| scenario | keyraft | etcd | keyraft/etcd |', '|---|---:|---:|---:|'];
  for (const r of results) {
    const ratio = r.etcd ? (sampleValue(r.keyraft) / sampleValue(r.etcd)).toFixed(2) + 'x' : '-';
    rows.push(`| ${r.name} | ${sampleCell(r.keyraft)} | ${r.etcd ? sampleCell(r.etcd) : '-'} | ${ratio} |`);
  }
  return rows.join('\n');
}

export const SMOKE_SIZE: Pick<ClusterBenchOptions, 'durationSeconds' | 'rounds' | 'failoverRounds' | 'inflight'> = { durationSeconds: 1, rounds: 1, failoverRounds: 1, inflight: [8, 32] };

function parseCli(argv: string[]): ClusterBenchOptions {
  const options: ClusterBenchOptions = { vsEtcd: false, members: 3, durationSeconds: 10, rounds: 3, failoverRounds: 5, inflight: [100, 1000] };
  const positive = (arg: string, text: string) => {
    const n = Number(text);
    if (!(n > 0)) throw new Error(`${arg}: expected a positive number, got "${text}"`);
    return n;
  };
  forEachArg(argv, (arg, value) => {
    if (arg === '--vs-etcd') options.vsEtcd = true;
    else if (arg === '--smoke') Object.assign(options, SMOKE_SIZE);
    else if (arg === '--duration') options.durationSeconds = positive(arg, value());
    else if (arg === '--rounds') options.rounds = positive(arg, value());
    else if (arg === '--failover-rounds') options.failoverRounds = positive(arg, value());
    else if (arg === '--members') options.members = positive(arg, value());
    else if (arg === '--inflight') options.inflight = value().split(',').map((v) => positive(arg, v));
    else return false;
    return true;
  });
  return options;
}

if (require.main === module) {
  const options = parseCli(process.argv.slice(2));
  const onSignal = () => { void killAll().then(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  runClusterBench(options).then((results) => {
    console.log(`\n${options.members}-member clusters on loopback, ${options.durationSeconds} s x ${options.rounds} rounds (medians), failover median of ${options.failoverRounds}, ${new Date().toISOString()}`);
    console.log(formatClusterTable(results));
  }, (err: Error) => {
    console.error(err);
    process.exit(1);
  });
}
