/**
 * History off the heap (issue 13): memory after many puts to ONE key with no compaction (etcd's
 * default), and single-key range throughput on that key, keyraft and etcd 3.4 in the same run.
 *
 *   npm run bench -- --vs-etcd --history 500000
 *
 * Load: h2load (nghttp2's C HTTP/2 client, so the client costs little of the shared 2 cores),
 * raw gRPC bodies prepared in files: `count` KV/Put calls of a 256 B value to one key, 10
 * connections x 10 streams (100 in flight); then the server's RSS (/proc/PID/status VmRSS) and
 * its CPU per put (utime + stime from /proc/PID/stat). Then KV/Range of that key for
 * `rangeSeconds`, `rounds` rounds alternating which server goes first; medians. Each server is a
 * fresh process on free ports; both stay up for the range rounds, the RSS is read before them.
 * gRPC answers errors with HTTP 200, so the run checks the key's version afterwards (every put
 * must have landed).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { b64, killAll, postJson, startEtcd, startKeyraft, type ServerProcess } from '../../test/integration/harness.js';
import { cpuSecondsOf, median, rssOf } from './side-by-side.js';

const run = promisify(execFile);

export interface HistoryBenchOptions {
  vsEtcd: boolean;
  /** Puts to the one key. */
  puts: number;
  rangeSeconds: number;
  rounds: number;
  log?: (line: string) => void;
}

export interface HistoryServerResult {
  rssBytes: number;
  putsPerSecond: number;
  cpuMicrosPerPut: number;
  rangesPerSecond: number;
  /** Server CPU (utime + stime) per range answered, median of rounds. */
  cpuMicrosPerRange: number;
}

export interface HistoryBenchResult {
  puts: number;
  keyraft: HistoryServerResult;
  etcd?: HistoryServerResult;
}

const KEY = Buffer.from('bench/history');
const VALUE = Buffer.alloc(256, 0x76);

/** A protobuf length-delimited field. */
function field(tag: number, bytes: Buffer): Buffer {
  const len: number[] = [];
  let n = bytes.length;
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from([(tag << 3) | 2, ...len]), bytes]);
}

/** A gRPC length-prefixed message (uncompressed). */
function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

interface H2loadResult {
  requestsPerSecond: number;
  succeeded: number;
  seconds: number;
}

async function h2load(port: number, path: string, bodyFile: string, load: string[]): Promise<H2loadResult> {
  const { stdout } = await run('h2load', [
    ...load, '-c', '10', '-m', '10', '-d', bodyFile,
    '-H', 'content-type: application/grpc', '-H', 'te: trailers',
    `http://127.0.0.1:${port}${path}`,
  ], { maxBuffer: 16 * 1024 * 1024 });
  const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(stdout);
  const requests = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded/.exec(stdout);
  if (!finished || !requests) throw new Error(`unexpected h2load output:\n${stdout}`);
  const seconds = Number(finished[1]) / (finished[2] === 'ms' ? 1000 : 1);
  return { requestsPerSecond: Number(finished[3]), succeeded: Number(requests[1]), seconds };
}

async function loadHistory(server: ServerProcess, puts: number, putFile: string): Promise<{ rssBytes: number; putsPerSecond: number; cpuMicrosPerPut: number }> {
  const pid = server.child.pid!;
  const cpuBefore = cpuSecondsOf(pid);
  const r = await h2load(server.clientPort, '/etcdserverpb.KV/Put', putFile, ['-n', String(puts)]);
  const cpu = cpuSecondsOf(pid) - cpuBefore;
  // Every put must have landed: the key's version counts them (gRPC errors come with HTTP 200).
  const got = await postJson(server.clientPort, '/v3/kv/range', { key: b64(KEY.toString()) });
  const version = Number((got.json as { kvs?: Array<{ version?: string }> } | undefined)?.kvs?.[0]?.version ?? 0);
  if (version !== puts) throw new Error(`after ${puts} puts the key is at version ${version} (h2load: ${r.succeeded} succeeded)`);
  // Let the server settle (GC, backend writes) before reading its memory.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  return { rssBytes: rssOf(pid), putsPerSecond: r.requestsPerSecond, cpuMicrosPerPut: (cpu * 1e6) / puts };
}

export async function runHistoryBench(options: HistoryBenchOptions): Promise<HistoryBenchResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const dir = mkdtempSync(join(tmpdir(), 'keyraft-history-bench-'));
  const putFile = join(dir, 'put.grpc');
  const rangeFile = join(dir, 'range.grpc');
  writeFileSync(putFile, grpcFrame(Buffer.concat([field(1, KEY), field(2, VALUE)])));
  writeFileSync(rangeFile, grpcFrame(field(1, KEY)));
  try {
    const servers: Array<['keyraft' | 'etcd', ServerProcess]> = [];
    const loaded = new Map<string, { rssBytes: number; putsPerSecond: number; cpuMicrosPerPut: number }>();
    // One server at a time while loading, so each has the machine to itself.
    for (const who of options.vsEtcd ? ['keyraft', 'etcd'] as const : ['keyraft'] as const) {
      const server = who === 'keyraft' ? await startKeyraft() : await startEtcd();
      servers.push([who, server]);
      const r = await loadHistory(server, options.puts, putFile);
      loaded.set(who, r);
      log(`  ${who}: ${options.puts} puts to one key at ${r.putsPerSecond.toFixed(0)}/s, ${r.cpuMicrosPerPut.toFixed(1)} us CPU per put, RSS ${(r.rssBytes / 2 ** 20).toFixed(0)} MiB`);
    }
    const ranges = new Map<string, number[]>();
    const cpus = new Map<string, number[]>();
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const [who, server] of order) {
        const cpuBefore = cpuSecondsOf(server.child.pid!);
        const r = await h2load(server.clientPort, '/etcdserverpb.KV/Range', rangeFile, ['-D', String(options.rangeSeconds)]);
        const cpuMicros = ((cpuSecondsOf(server.child.pid!) - cpuBefore) * 1e6) / Math.max(1, r.succeeded);
        (ranges.get(who) ?? ranges.set(who, []).get(who)!).push(r.requestsPerSecond);
        (cpus.get(who) ?? cpus.set(who, []).get(who)!).push(cpuMicros);
        log(`  range round ${round + 1} ${who}: ${r.requestsPerSecond.toFixed(0)} req/s, ${cpuMicros.toFixed(1)} us CPU per range`);
      }
    }
    const result = (who: 'keyraft' | 'etcd'): HistoryServerResult => ({
      ...loaded.get(who)!, rangesPerSecond: median(ranges.get(who)!), cpuMicrosPerRange: median(cpus.get(who)!),
    });
    return { puts: options.puts, keyraft: result('keyraft'), etcd: options.vsEtcd ? result('etcd') : undefined };
  } finally {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatHistoryResult(r: HistoryBenchResult): string {
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  const rows = [
    `| ${r.puts.toLocaleString('en-US')} puts to one key, 256 B, no compaction | keyraft | etcd | keyraft/etcd |`,
    '|---|---:|---:|---:|',
  ];
  const row = (name: string, k: number, e: number | undefined, fmt: (n: number) => string) =>
    rows.push(`| ${name} | ${fmt(k)} | ${e === undefined ? '-' : fmt(e)} | ${e === undefined ? '-' : (k / e).toFixed(2) + 'x'} |`);
  row('RSS after the puts (MiB)', r.keyraft.rssBytes, r.etcd?.rssBytes, mib);
  row('puts/s (h2load, 100 in flight)', r.keyraft.putsPerSecond, r.etcd?.putsPerSecond, (n) => n.toFixed(0));
  row('server CPU per put (us)', r.keyraft.cpuMicrosPerPut, r.etcd?.cpuMicrosPerPut, (n) => n.toFixed(1));
  row('single-key ranges/s on that key (median)', r.keyraft.rangesPerSecond, r.etcd?.rangesPerSecond, (n) => n.toFixed(0));
  row('server CPU per range (us, median)', r.keyraft.cpuMicrosPerRange, r.etcd?.cpuMicrosPerRange, (n) => n.toFixed(1));
  return rows.join('\n');
}
