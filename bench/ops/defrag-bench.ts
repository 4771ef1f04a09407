import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { findBinary } from '../../test/etcd-binaries.js';
import { killAll, startEtcd, startKeyraft, type ServerProcess } from '../../test/integration/harness.js';

/**
 * Defrag under a steady load, keyraft next to etcd 3.4 (with --vs-etcd) in the same run, rounds
 * alternating which server goes first. Each round: overwrite `keys` keys of `valueBytes` (history
 * to reclaim), compact to the current revision (physical), then start `workers` loops of
 * put + get over the JSON gateway (keep-alive) and, meanwhile, one Defragment call. Reports the
 * defrag's duration, the db size before and after, the requests answered while it ran and the
 * longest gap between two answers during it (etcd's defrag holds its backend lock throughout).
 *
 *   node dist/bench/ops/defrag-bench.js [--keys 20000] [--bytes 1024] [--rounds 3] [--workers 8] [--vs-etcd]
 */

export interface DefragBenchOptions {
  keys: number;
  valueBytes: number;
  rounds: number;
  workers: number;
  vsEtcd: boolean;
  log?: (line: string) => void;
}

export interface DefragRound {
  server: 'keyraft' | 'etcd';
  defragMs: number;
  sizeBeforeBytes: number;
  sizeAfterBytes: number;
  answeredDuring: number;
  longestGapMs: number;
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function post(port: number, path: string, body: unknown): Promise<any> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`${path}: ${res.statusCode} ${text}`))));
    });
    req.on('error', reject);
    req.end(data);
  });
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

async function dbSize(port: number): Promise<number> {
  return Number((await post(port, '/v3/maintenance/status', {})).dbSize ?? 0);
}

async function round(server: ServerProcess, name: 'keyraft' | 'etcd', o: DefragBenchOptions, generation: number): Promise<DefragRound> {
  const port = server.clientPort;
  const value = b64(Buffer.alloc(o.valueBytes, 97 + (generation % 26)));
  let next = 0;
  let revision = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < o.keys) {
      const k = next++;
      const r = await post(port, '/v3/kv/put', { key: b64(`fill/${k}`), value });
      revision = Math.max(revision, Number(r.header.revision));
    }
  }));
  await post(port, '/v3/kv/compaction', { revision: String(revision), physical: true });
  const sizeBeforeBytes = await dbSize(port);
  let running = true;
  let last = 0;
  let answeredDuring = 0;
  let longestGapMs = 0;
  const answered = () => {
    const now = performance.now();
    if (running && last > 0) {
      answeredDuring++;
      longestGapMs = Math.max(longestGapMs, now - last);
    }
    last = now;
  };
  const workers = Array.from({ length: o.workers }, async (_, w) => {
    for (let n = 0; running; n++) {
      await post(port, '/v3/kv/put', { key: b64(`load/${w}/${n % 64}`), value: b64(String(n)) });
      answered();
      await post(port, '/v3/kv/range', { key: b64(`load/${w}/${n % 64}`) });
      answered();
    }
  });
  await new Promise((r) => setTimeout(r, 200)); // the load is flowing before the defrag starts
  last = performance.now();
  answeredDuring = 0;
  longestGapMs = 0;
  const started = performance.now();
  await post(port, '/v3/maintenance/defragment', {});
  const defragMs = performance.now() - started;
  // A gap still open when the defrag returns counts too.
  longestGapMs = Math.max(longestGapMs, performance.now() - last);
  running = false;
  await Promise.all(workers);
  return { server: name, defragMs, sizeBeforeBytes, sizeAfterBytes: await dbSize(port), answeredDuring, longestGapMs };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function runDefragBench(o: DefragBenchOptions): Promise<DefragRound[]> {
  const log = o.log ?? ((line: string) => console.log(line));
  const withEtcd = o.vsEtcd && findBinary('etcd') !== undefined;
  if (o.vsEtcd && !withEtcd) log('etcd not found: keyraft only');
  const servers: Array<[ServerProcess, 'keyraft' | 'etcd']> = [[await startKeyraft(), 'keyraft']];
  if (withEtcd) servers.push([await startEtcd({ args: ['--quota-backend-bytes', String(8 * 1024 * 1024 * 1024)] }), 'etcd']);
  const results: DefragRound[] = [];
  try {
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? servers : [...servers].reverse();
      for (const [server, name] of order) {
        const result = await round(server, name, o, r);
        results.push(result);
        log(`  round ${r + 1} ${name.padEnd(7)} defrag ${result.defragMs.toFixed(0).padStart(6)} ms, db ${(result.sizeBeforeBytes / 1e6).toFixed(1)} -> ${(result.sizeAfterBytes / 1e6).toFixed(1)} MB, `
          + `${result.answeredDuring} answers during it, longest gap ${result.longestGapMs.toFixed(1)} ms`);
      }
    }
  } finally {
    await killAll();
    agent.destroy();
  }
  for (const name of ['keyraft', 'etcd'] as const) {
    const mine = results.filter((x) => x.server === name);
    if (mine.length === 0) continue;
    log(`${name.padEnd(7)} medians: defrag ${median(mine.map((x) => x.defragMs)).toFixed(0)} ms, answers during it ${median(mine.map((x) => x.answeredDuring))}, `
      + `longest gap ${median(mine.map((x) => x.longestGapMs)).toFixed(1)} ms`);
  }
  return results;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const arg = (name: string, fallback: number) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const o = { keys: arg('keys', 20_000), valueBytes: arg('bytes', 1024), rounds: arg('rounds', 3), workers: arg('workers', 8), vsEtcd: args.includes('--vs-etcd') };
  console.log(`defrag under load: ${o.keys} keys x ${o.valueBytes} B overwritten per round, ${o.workers} put+get loops, ${o.rounds} rounds (2-core machine shared with other engineers: noisy)`);
  await runDefragBench(o);
}

if (require.main === module) void main();
