/**
 * Watch fan-out benchmark: `npm run bench:watch -- [--vs-etcd] [--smoke] [--duration S] [--rounds N]
 * [--points W@P,W@P...] [--idle-watchers N] [--only keyraft|etcd] [--keyraft-profile DIR]
 * [--keyraft-trace DIR] [--writer raw|grpc-js]`.
 *
 * Each point: W watchers on the prefix bench/, spread over 8 Watch streams on 4 gRPC connections
 * in this process; a separate writer process puts 256-byte values under bench/ at P puts/s,
 * open loop (the schedule does not wait for answers), each value carrying its send time and a
 * sequence number. Reported per point and server: delivered events/s (deliveries over the time
 * from the first put to the last delivery), event latency from put sent to event received (p50,
 * p99 over every delivery), and fan-out completion (the time until the last of the W watchers
 * has an event: p50, p99 over events), the put's own latency (sent to acknowledged, in the writer:
 * what of the event latency is the write path rather than delivery), and the CPU each side spent: the server process's
 * utime+stime per delivered event (/proc/PID/stat; on a machine shared with other work this is
 * the steadier figure, as latency there mostly measures the wait for a core), and the watch
 * client's cores (to show the load generator is not the bottleneck: it stays well under one).
 * Rounds alternate which server goes first; the table gives medians. Then the server's RSS with
 * --idle-watchers idle watchers (100,000 by default). `--keyraft-profile DIR` writes a CPU
 * profile of each keyraft member (read it with profile-summary.js).
 *
 * Times come from performance.timeOrigin + performance.now() in both processes (same machine).
 * The client decodes responses with a small hand-written reader (counting events and reading the
 * value's header) so that the load generator is not the bottleneck it would be with protobufjs.
 */
import { fork } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { encode, messageType } from '../../src/proto/codec.js';
import { RawPutClient } from './raw-put-client.js';
import { killAll, startEtcd, startKeyraft, type ServerProcess } from '../../test/integration/harness.js';
import { findBinary, missingReason } from '../../test/etcd-binaries.js';
import { forEachArg, median } from '../kv/side-by-side.js';

export interface WatchBenchOptions {
  vsEtcd: boolean;
  durationSeconds: number;
  rounds: number;
  points: Array<{ watchers: number; putsPerSecond: number }>;
  idleWatchers: number;
  /** Measure only this server (e.g. etcd alone, as a baseline). */
  only?: 'keyraft' | 'etcd';
  /**
   * Profile the keyraft member's CPU into this folder (cpu-profile-preload.ts); the member is then
   * stopped with SIGTERM, not SIGKILL, so that it writes its profile on the way out.
   */
  keyraftProfileDir?: string;
  /**
   * Trace the keyraft member's main-thread stalls and GC pauses (loop-trace-preload.ts) and write
   * them with the writer's per-put send and ack times to this folder, one file per round, for
   * trace-summary.js: which puts were late, and what the member was doing then.
   */
  keyraftTraceDir?: string;
  /**
   * The writer's client: 'raw' (default) is raw-put-client.ts, HTTP/2 frames written on a plain
   * socket; 'grpc-js' is @grpc/grpc-js, the writer of the measurements before 2026-12-03 08:00,
   * which spent 100-300 µs of the writer's CPU per put, so at 4,000 puts/s it needed about half
   * a core of the two, and its own queue was in every put's measured latency.
   */
  writer?: 'raw' | 'grpc-js';
  log?: (line: string) => void;
}

export const DEFAULT_POINTS = [
  { watchers: 100, putsPerSecond: 1000 }, { watchers: 100, putsPerSecond: 2000 }, { watchers: 100, putsPerSecond: 4000 },
  { watchers: 1000, putsPerSecond: 100 }, { watchers: 1000, putsPerSecond: 200 }, { watchers: 1000, putsPerSecond: 300 },
  { watchers: 10000, putsPerSecond: 10 }, { watchers: 10000, putsPerSecond: 20 },
];

export const SMOKE: Partial<WatchBenchOptions> = { durationSeconds: 1, rounds: 1, points: [{ watchers: 20, putsPerSecond: 100 }], idleWatchers: 1000 };

export interface PointMeasurement {
  deliveredPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  lastWatcherP50Ms: number;
  lastWatcherP99Ms: number;
  /**
   * The writer's put latency (sent to acknowledged), p50 / p99: the part of the event latency
   * that is the put's own path (Raft, WAL fsync, apply); the rest is delivery.
   */
  putAckP50Ms: number;
  putAckP99Ms: number;
  /** Deliveries expected (W x puts acknowledged) that never arrived within the drain time. */
  missing: number;
  /** The server process's CPU (utime + stime) per delivered event, from the writer's start to the drain's end. */
  serverCpuUsPerEvent: number;
  /** The watch client processes' CPU over the same time, in cores (1 = one core busy throughout). */
  clientCores: number;
  /**
   * The writer process's CPU over its run, in cores: a grpc-js client, it shares the 2 cores with
   * the server and the watch client, so when it is busy its own queueing is in the put latency.
   */
  writerCores: number;
  /** The writer's CPU per acknowledged put, in µs (the client library's cost, whatever the rate). */
  writerCpuUsPerPut: number;
}

export interface PointResult {
  name: string;
  keyraft: PointMeasurement;
  etcd?: PointMeasurement;
}

const STREAMS = 8;
const CONNECTIONS = 4;
const VALUE_BYTES = 256;
const PREFIX = 'bench/';
const watchRequestType = messageType('etcdserverpb.WatchRequest');
const putRequestType = messageType('etcdserverpb.PutRequest');

const now = (): number => performance.timeOrigin + performance.now();

/** What the hand reader takes from one WatchResponse. */
interface Parsed {
  created: boolean;
  /** Per event: [send time, sequence number]. */
  events: Array<[number, number]>;
}

/** Reads a varint at `at`; returns [value, next offset]. Values here stay below 2^53. */
function varint(buf: Buffer, at: number): [number, number] {
  let value = 0;
  let mul = 1;
  for (;;) {
    const b = buf[at++]!;
    value += (b & 0x7f) * mul;
    if (b < 0x80) return [value, at];
    mul *= 128;
  }
}

/** Skips one field of wire type `wt` at `at`. */
function skip(buf: Buffer, at: number, wt: number): number {
  if (wt === 0) return varint(buf, at)[1];
  if (wt === 2) { const [n, p] = varint(buf, at); return p + n; }
  if (wt === 1) return at + 8;
  if (wt === 5) return at + 4;
  throw new Error(`wire type ${wt}`);
}

/** WatchResponse: 3 created; 11 events -> Event 2 kv -> KeyValue 5 value (our 12-byte header). */
function parseWatchResponse(buf: Buffer): Parsed {
  const out: Parsed = { created: false, events: [] };
  let at = 0;
  while (at < buf.length) {
    const [tag, p] = varint(buf, at);
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    if (field === 3 && wt === 0) { const [v, q] = varint(buf, p); out.created = v !== 0; at = q; continue; }
    if (field === 11 && wt === 2) {
      const [len, q] = varint(buf, p);
      const end = q + len;
      let e = q;
      while (e < end) {
        const [etag, ep] = varint(buf, e);
        if ((etag >>> 3) === 2 && (etag & 7) === 2) {
          const [kvLen, kq] = varint(buf, ep);
          const kvEnd = kq + kvLen;
          let k = kq;
          while (k < kvEnd) {
            const [ktag, kp] = varint(buf, k);
            if ((ktag >>> 3) === 5 && (ktag & 7) === 2) {
              const [, vq] = varint(buf, kp);
              out.events.push([buf.readDoubleLE(vq), buf.readUInt32LE(vq + 8)]);
            }
            k = skip(buf, kp, ktag & 7);
          }
          e = kvEnd;
        } else e = skip(buf, ep, etag & 7);
      }
      at = end;
      continue;
    }
    at = skip(buf, p, wt);
  }
  return out;
}

function percentile(sorted: Float64Array | number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/**
 * The 4 connections and 8 streams, W watchers over them; events recorded as they come. Plain
 * node:http2 with gRPC framing done here: grpc-js costs several microseconds per message, which
 * at 10^5 messages/s made the load generator, not the server, the bottleneck.
 */
class WatchClients {
  private readonly sessions: http2.ClientHttp2Session[] = [];
  private readonly streams: http2.ClientHttp2Stream[] = [];
  created = 0;
  deliveries = 0;
  latencies = new Float64Array(1 << 20);
  /** Per sequence number: deliveries so far, and when the last one came. */
  counts = new Uint32Array(1 << 16);
  lastAt = new Float64Array(1 << 16);
  firstSend = Number.POSITIVE_INFINITY;
  lastReceive = 0;

  constructor(port: number) {
    for (let i = 0; i < CONNECTIONS; i++) {
      const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 16 * 1024 * 1024 } });
      session.on('error', () => {});
      session.on('connect', () => session.setLocalWindowSize(64 * 1024 * 1024));
      this.sessions.push(session);
    }
    for (let i = 0; i < STREAMS; i++) {
      const stream = this.sessions[i % CONNECTIONS]!.request({
        ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers',
      }, { endStream: false });
      stream.on('error', () => {});
      let pending: Buffer = Buffer.alloc(0);
      stream.on('data', (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        let at = 0;
        while (pending.length - at >= 5) {
          const len = pending.readUInt32BE(at + 1);
          if (pending.length - at - 5 < len) break;
          this.onResponse(parseWatchResponse(pending.subarray(at + 5, at + 5 + len)));
          at += 5 + len;
        }
        pending = at === pending.length ? Buffer.alloc(0) : pending.subarray(at);
      });
      this.streams.push(stream);
    }
  }

  private onResponse(r: Parsed): void {
    if (r.created) this.created++;
    if (r.events.length === 0) return;
    const t = now();
    for (const [sent, seq] of r.events) {
      if (this.deliveries === this.latencies.length) {
        const bigger = new Float64Array(this.latencies.length * 2);
        bigger.set(this.latencies);
        this.latencies = bigger;
      }
      this.latencies[this.deliveries++] = t - sent;
      this.counts[seq & 0xffff]!++;
      this.lastAt[seq & 0xffff] = t;
      if (sent < this.firstSend) this.firstSend = sent;
    }
    this.lastReceive = t;
  }

  /** Creates `n` watchers on the prefix, round robin over the streams; resolves when all are created. */
  async watch(n: number): Promise<void> {
    const target = this.created + n;
    for (let i = 0; i < n; i++) {
      const message = encode(watchRequestType, { create_request: { key: Buffer.from(PREFIX), range_end: Buffer.from('bench0') } });
      const framed = Buffer.alloc(5 + message.length);
      framed.writeUInt32BE(message.length, 1);
      framed.set(message, 5);
      this.streams[i % STREAMS]!.write(framed);
    }
    const deadline = Date.now() + 120_000;
    while (this.created < target) {
      if (Date.now() > deadline) throw new Error(`only ${this.created} of ${target} watchers created in 120 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  resetCounts(): void {
    this.deliveries = 0;
    this.counts.fill(0);
    this.lastAt.fill(0);
    this.firstSend = Number.POSITIVE_INFINITY;
    this.lastReceive = 0;
  }

  close(): void {
    for (const s of this.streams) s.close(http2.constants.NGHTTP2_CANCEL);
    for (const c of this.sessions) c.destroy();
  }
}

/** Runs the writer in a child process; resolves with the number of puts acknowledged and their send times per sequence. */
interface WriterResult {
  acked: number;
  sent: number;
  sendTimes: number[];
  /** Put latencies (sent to acknowledged) in ms, sorted. */
  ackLatencies: number[];
  /** Per sequence number: its put's latency in ms (-1 if it failed). */
  ackBySeq: number[];
  /** The writer's CPU from its first put to its last ack, in cores, and per put acknowledged in µs. */
  cores: number;
  cpuUsPerPut: number;
}

function runWriter(port: number, putsPerSecond: number, durationSeconds: number, writer: 'raw' | 'grpc-js'): Promise<WriterResult> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, ['--writer', String(port), String(putsPerSecond), String(durationSeconds), writer], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (m) => resolve(m as WriterResult));
    child.once('error', reject);
    child.once('exit', (code) => { if (code !== 0) reject(new Error(`writer exited ${code}`)); });
  });
}

/** One unary Put; calls `done` with whether it succeeded. */
type PutFn = (request: { key: Buffer; value: Buffer }, done: (ok: boolean) => void) => void;

/** A writer's connection: grpc-js's client, or raw-put-client.ts's frames on a plain socket. */
async function connectWriter(port: number, kind: 'raw' | 'grpc-js'): Promise<{ put: PutFn; close: () => void }> {
  if (kind === 'grpc-js') {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())));
    return {
      put: (request, done) => client.makeUnaryRequest('/etcdserverpb.KV/Put', (v: object) => Buffer.from(encode(putRequestType, v)), (b: Buffer) => b,
        request, (err) => done(!err)),
      close: () => client.close(),
    };
  }
  const client = await RawPutClient.connect(port);
  return {
    put: (request, done) => client.put(encode(putRequestType, request), done),
    close: () => client.close(),
  };
}

/** The writer process: open-loop puts at `rate` for `seconds`, on one gRPC connection. */
async function writerMain(port: number, rate: number, seconds: number, kind: 'raw' | 'grpc-js'): Promise<void> {
  const client = await connectWriter(port, kind);
  const total = Math.round(rate * seconds);
  const sendTimes: number[] = new Array(total);
  const ackLatencies: number[] = [];
  const ackBySeq: number[] = new Array(total).fill(-1);
  let sent = 0;
  let acked = 0;
  const start = now();
  const cpuBefore = process.cpuUsage();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((now() - start) / 1000) * rate) + 1);
      while (sent < due) {
        const seq = sent++;
        const value = Buffer.alloc(VALUE_BYTES, 120);
        const t = now();
        value.writeDoubleLE(t, 0);
        value.writeUInt32LE(seq, 8);
        sendTimes[seq] = t;
        client.put({ key: Buffer.from(`${PREFIX}k${seq % 100}`), value }, (ok) => {
            if (ok) {
              acked++;
              ackLatencies.push(now() - t);
              ackBySeq[seq] = now() - t;
            }
            if (acked === total || (sent === total && !ok)) resolve();
          });
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  const cpu = process.cpuUsage(cpuBefore);
  const cores = (cpu.user + cpu.system) / 1000 / (now() - start);
  client.close();
  ackLatencies.sort((a, b) => a - b);
  const cpuUsPerPut = acked > 0 ? (cpu.user + cpu.system) / acked : 0;
  process.send!({ acked, sent, sendTimes, ackLatencies, ackBySeq, cores, cpuUsPerPut } satisfies WriterResult);
}

/** A process's CPU time (utime + stime) in ms, from /proc/PID/stat. */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}
/** Linux's USER_HZ, what /proc/PID/stat counts in (getconf CLK_TCK: 100 on every Linux we run). */
const CLOCK_TICKS_PER_SECOND = 100;

async function measurePoint(server: ServerProcess, watchers: number, putsPerSecond: number, durationSeconds: number, writer: 'raw' | 'grpc-js', traceFile?: string): Promise<PointMeasurement> {
  const clients = new WatchClients(server.clientPort);
  try {
    await clients.watch(watchers);
    clients.resetCounts();
    const serverCpuBefore = processCpuMs(server.child.pid!);
    const clientCpuBefore = process.cpuUsage();
    const wallBefore = now();
    const { acked, sendTimes, ackLatencies, ackBySeq, cores: writerCores, cpuUsPerPut: writerCpuUsPerPut } = await runWriter(server.clientPort, putsPerSecond, durationSeconds, writer);
    const expected = acked * watchers;
    // Drain: until every acknowledged put reached every watcher, or nothing came for 5 s.
    let lastSeen = clients.deliveries;
    let quietSince = now();
    while (clients.deliveries < expected) {
      await new Promise((r) => setTimeout(r, 20));
      if (clients.deliveries !== lastSeen) { lastSeen = clients.deliveries; quietSince = now(); }
      if (now() - quietSince > 5000) break;
    }
    const serverCpuMs = processCpuMs(server.child.pid!) - serverCpuBefore;
    const clientCpu = process.cpuUsage(clientCpuBefore);
    const wallMs = now() - wallBefore;
    const lat = clients.latencies.slice(0, clients.deliveries).sort();
    const lastWatcher: number[] = [];
    for (let seq = 0; seq < sendTimes.length; seq++) {
      if (clients.counts[seq & 0xffff] === watchers) lastWatcher.push(clients.lastAt[seq & 0xffff]! - sendTimes[seq]!);
    }
    lastWatcher.sort((a, b) => a - b);
    if (traceFile !== undefined) {
      const lastWatcherBySeq = sendTimes.map((t, seq) => (clients.counts[seq & 0xffff] === watchers ? clients.lastAt[seq & 0xffff]! - t : -1));
      // The disk's share: the member's WAL fsync and backend commit histograms over the run.
      const metrics = await (await fetch(`http://127.0.0.1:${server.clientPort}/metrics`)).text();
      const disk = metrics.split('\n').filter((l) => /^etcd_disk_(wal_fsync|backend_commit)_duration_seconds_bucket/.test(l));
      writeFileSync(traceFile, JSON.stringify({ sendTimes, ackBySeq, lastWatcherBySeq, disk }));
    }
    const elapsed = (clients.lastReceive - clients.firstSend) / 1000;
    return {
      deliveredPerSecond: elapsed > 0 ? clients.deliveries / elapsed : 0,
      p50Ms: round(percentile(lat, 0.5)), p99Ms: round(percentile(lat, 0.99)),
      lastWatcherP50Ms: round(percentile(lastWatcher, 0.5)), lastWatcherP99Ms: round(percentile(lastWatcher, 0.99)),
      putAckP50Ms: round(percentile(ackLatencies, 0.5)), putAckP99Ms: round(percentile(ackLatencies, 0.99)),
      missing: Math.max(0, expected - clients.deliveries),
      serverCpuUsPerEvent: clients.deliveries > 0 ? round((serverCpuMs * 1000) / clients.deliveries) : 0,
      clientCores: round2((clientCpu.user + clientCpu.system) / 1000 / wallMs),
      writerCores: round2(writerCores),
      writerCpuUsPerPut: round(writerCpuUsPerPut),
    };
  } finally {
    clients.close();
  }
}

const round = (x: number): number => Math.round(x * 10) / 10;
const round2 = (x: number): number => Math.round(x * 100) / 100;

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb * 1024;
}

async function measureIdleRss(server: ServerProcess, n: number): Promise<{ before: number; after: number }> {
  const before = rssBytes(server.child.pid!);
  const clients = new WatchClients(server.clientPort);
  try {
    await clients.watch(n);
    await new Promise((r) => setTimeout(r, 1000));
    return { before, after: rssBytes(server.child.pid!) };
  } finally {
    clients.close();
  }
}

function startKeyraftFor(options: WatchBenchOptions): Promise<ServerProcess> {
  const preloads: string[] = [];
  const env: NodeJS.ProcessEnv = {};
  if (options.keyraftProfileDir !== undefined) {
    preloads.push(`--require ${join(__dirname, 'cpu-profile-preload.js')}`);
    env.KEYRAFT_CPU_PROFILE_DIR = options.keyraftProfileDir;
  }
  if (options.keyraftTraceDir !== undefined) {
    preloads.push(`--require ${join(__dirname, 'loop-trace-preload.js')}`);
    env.KEYRAFT_TRACE_DIR = options.keyraftTraceDir;
  }
  if (preloads.length === 0) return startKeyraft();
  return startKeyraft({ env: { NODE_OPTIONS: preloads.join(' '), ...env } });
}

export async function runWatchBench(options: WatchBenchOptions): Promise<{ results: PointResult[]; rss: Record<string, { before: number; after: number }> }> {
  const log = options.log ?? ((line: string) => console.log(line));
  if (options.vsEtcd && findBinary('etcd') === undefined) throw new Error(`--vs-etcd needs etcd 3.4: ${missingReason(['etcd'])}`);
  const results: PointResult[] = [];
  const rss: Record<string, { before: number; after: number }> = {};
  try {
    for (const point of options.points) {
      const samples: Record<'keyraft' | 'etcd', PointMeasurement[]> = { keyraft: [], etcd: [] };
      for (let r = 0; r < options.rounds; r++) {
        let order: Array<'keyraft' | 'etcd'> = options.vsEtcd ? (r % 2 === 0 ? ['keyraft', 'etcd'] : ['etcd', 'keyraft']) : ['keyraft'];
        if (options.only) order = order.filter((w) => w === options.only);
        for (const who of order) {
          // A fresh server per round: no history or watchers left from the last one.
          const server = who === 'keyraft' ? await startKeyraftFor(options) : await startEtcd();
          try {
            const traceFile = who === 'keyraft' && options.keyraftTraceDir !== undefined
              ? join(options.keyraftTraceDir, `writer-${server.child.pid}.json`) : undefined;
            const m = await measurePoint(server, point.watchers, point.putsPerSecond, options.durationSeconds, options.writer ?? 'raw', traceFile);
            samples[who].push(m);
            log(`  W=${point.watchers} P=${point.putsPerSecond} round ${r + 1} ${who}: ${m.deliveredPerSecond.toFixed(0)} events/s p50 ${m.p50Ms} ms p99 ${m.p99Ms} ms last-watcher p50 ${m.lastWatcherP50Ms} p99 ${m.lastWatcherP99Ms} ms put-ack p50 ${m.putAckP50Ms} p99 ${m.putAckP99Ms} ms missing ${m.missing} server CPU ${m.serverCpuUsPerEvent} us/event client ${m.clientCores} cores writer ${m.writerCores} cores (${m.writerCpuUsPerPut} us/put)`);
          } finally {
            if (who === 'keyraft' && (options.keyraftProfileDir !== undefined || options.keyraftTraceDir !== undefined)) await server.stop();
            else await server.kill9();
          }
        }
      }
      results.push({ name: `W=${point.watchers} P=${point.putsPerSecond}`, keyraft: summarize(samples.keyraft), etcd: options.vsEtcd ? summarize(samples.etcd) : undefined });
      if (samples.keyraft.length === 0) results[results.length - 1]!.keyraft = summarize([ZERO]);
    }
    if (options.idleWatchers > 0) {
      for (const who of (options.vsEtcd ? ['keyraft', 'etcd'] as const : ['keyraft'] as const).filter((w) => !options.only || w === options.only)) {
        const server = who === 'keyraft' ? await startKeyraft() : await startEtcd();
        try {
          rss[who] = await measureIdleRss(server, options.idleWatchers);
          log(`  ${options.idleWatchers} idle watchers ${who}: RSS ${(rss[who]!.before / 2 ** 20).toFixed(0)} MiB -> ${(rss[who]!.after / 2 ** 20).toFixed(0)} MiB`);
        } finally {
          await server.kill9();
        }
      }
    }
  } finally {
    await killAll();
  }
  return { results, rss };
}

const ZERO: PointMeasurement = { deliveredPerSecond: 0, p50Ms: 0, p99Ms: 0, lastWatcherP50Ms: 0, lastWatcherP99Ms: 0, putAckP50Ms: 0, putAckP99Ms: 0, missing: 0, serverCpuUsPerEvent: 0, clientCores: 0, writerCores: 0, writerCpuUsPerPut: 0 };

function summarize(ms: PointMeasurement[]): PointMeasurement {
  const med = (f: (m: PointMeasurement) => number) => median(ms.map(f));
  return {
    deliveredPerSecond: med((m) => m.deliveredPerSecond), p50Ms: med((m) => m.p50Ms), p99Ms: med((m) => m.p99Ms),
    lastWatcherP50Ms: med((m) => m.lastWatcherP50Ms), lastWatcherP99Ms: med((m) => m.lastWatcherP99Ms),
    putAckP50Ms: med((m) => m.putAckP50Ms), putAckP99Ms: med((m) => m.putAckP99Ms),
    missing: ms.reduce((n, m) => n + m.missing, 0),
    serverCpuUsPerEvent: med((m) => m.serverCpuUsPerEvent), clientCores: med((m) => m.clientCores),
    writerCores: med((m) => m.writerCores), writerCpuUsPerPut: med((m) => m.writerCpuUsPerPut),
  };
}

export function formatWatchTable(results: PointResult[], rss: Record<string, { before: number; after: number }>, idleWatchers: number): string {
  // Medians of an even number of rounds are means of two: round them for the table.
  const ms = (v: number) => v.toFixed(1);
  const cell = (m?: PointMeasurement) => (m ? `${m.deliveredPerSecond.toFixed(0)} | ${ms(m.p50Ms)} / ${ms(m.p99Ms)} | ${ms(m.lastWatcherP50Ms)} / ${ms(m.lastWatcherP99Ms)} | ${ms(m.putAckP50Ms)} / ${ms(m.putAckP99Ms)} | ${m.serverCpuUsPerEvent.toFixed(1)} | ${m.clientCores.toFixed(2)} / ${m.writerCores.toFixed(2)}` : '- | - | - | - | - | -');
  const rows = [
    '| point | keyraft events/s | keyraft p50 / p99 ms | keyraft last watcher p50 / p99 ms | keyraft put ack p50 / p99 ms | keyraft CPU us/event | client / writer cores | etcd events/s | etcd p50 / p99 ms | etcd last watcher p50 / p99 ms | etcd put ack p50 / p99 ms | etcd CPU us/event | client / writer cores |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map((r) => `| ${r.name} | ${cell(r.keyraft)} | ${cell(r.etcd)} |`),
  ];
  for (const [who, r] of Object.entries(rss)) rows.push(`\n${who}: RSS with ${idleWatchers} idle watchers ${(r.after / 2 ** 20).toFixed(0)} MiB (${(r.before / 2 ** 20).toFixed(0)} MiB before)`);
  return rows.join('\n');
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--writer') {
    await writerMain(Number(argv[1]), Number(argv[2]), Number(argv[3]), argv[4] === 'grpc-js' ? 'grpc-js' : 'raw');
    return;
  }
  const options: WatchBenchOptions = { vsEtcd: false, durationSeconds: 5, rounds: 3, points: DEFAULT_POINTS, idleWatchers: 100_000 };
  forEachArg(argv, (arg, value) => {
    if (arg === '--vs-etcd') options.vsEtcd = true;
    else if (arg === '--smoke') Object.assign(options, SMOKE);
    else if (arg === '--duration') options.durationSeconds = Number(value());
    else if (arg === '--rounds') options.rounds = Number(value());
    else if (arg === '--only') options.only = value() as 'keyraft' | 'etcd';
    else if (arg === '--idle-watchers') options.idleWatchers = Number(value());
    else if (arg === '--keyraft-profile') options.keyraftProfileDir = value();
    else if (arg === '--keyraft-trace') options.keyraftTraceDir = value();
    else if (arg === '--writer') {
      const w = value();
      if (w !== 'raw' && w !== 'grpc-js') throw new Error(`--writer: raw or grpc-js, not ${w}`);
      options.writer = w;
    }
    else if (arg === '--points') {
      options.points = value().split(',').map((p) => {
        const [w, r] = p.split('@');
        return { watchers: Number(w), putsPerSecond: Number(r) };
      });
    } else return false;
    return true;
  });
  const { results, rss } = await runWatchBench(options);
  console.log(`\n${formatWatchTable(results, rss, options.idleWatchers)}`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
