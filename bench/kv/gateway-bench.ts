/**
 * Gateway load scenarios with autocannon, keyraft side by side with etcd 3.4.
 *
 *   npm run bench                      keyraft alone
 *   npm run bench -- --vs-etcd         keyraft and etcd (Debian etcd-server) in the same run,
 *                                      alternating which goes first each round; prints ratios
 *   options: --duration S (10) --connections N (100) --rounds R (3) --scenarios a,b
 *            --rss-keys N (0: skip; e.g. 1000000 loads N keys of 256 B and reports RSS)
 *            --history N (0: skip; e.g. 500000 puts N times to one key with h2load, reports RSS and
 *                        single-key gRPC range throughput on that key: history-bench.ts; alone
 *                        it runs only that, add --scenarios to run gateway scenarios too)
 *
 * Each server runs as its own process, started fresh for the run, on free ports; the load
 * generator shares the same 2 cores, as etcd's published figures here did. Medians of rounds.
 */
import autocannon from 'autocannon';
import { b64, killAll, postJson, startEtcd, startKeyraft, type ServerProcess } from '../../test/integration/harness.js';
import { formatHistoryResult, runHistoryBench } from './history-bench.js';
import { checkEtcdAvailable, formatTable, parseCommonArgs, rssOf, runScenarios, type CommonOptions, type Measurement, type Scenario, type ScenarioResult } from './side-by-side.js';

export { formatTable };

export interface GatewayScenario {
  name: string;
  /** Prepares the store (runs once per server before the first round). */
  setup?: (port: number) => Promise<void>;
  /** autocannon request options for one server. */
  requests: () => autocannon.Request[];
}

const value256 = b64('v'.repeat(256));
let uniqueCounter = 0;

export const scenarios: GatewayScenario[] = [
  {
    name: 'put-unique-256B',
    requests: () => [{
      method: 'POST', path: '/v3/kv/put',
      setupRequest: (req: any) => {
        req.body = `{"key":"${b64(`bench/unique/${uniqueCounter++}`)}","value":"${value256}"}`;
        return req;
      },
    }],
  },
  {
    name: 'put-one-key',
    requests: () => [{ method: 'POST', path: '/v3/kv/put', body: JSON.stringify({ key: b64('bench/one'), value: value256 }) }],
  },
  {
    name: 'range-one-key',
    setup: async (port) => { await postJson(port, '/v3/kv/put', { key: b64('bench/read'), value: value256 }); },
    requests: () => [{ method: 'POST', path: '/v3/kv/range', body: JSON.stringify({ key: b64('bench/read') }) }],
  },
  {
    name: 'range-prefix-100',
    setup: async (port) => {
      for (let i = 0; i < 100; i++) await postJson(port, '/v3/kv/put', { key: b64(`bench/prefix/${String(i).padStart(3, '0')}`), value: value256 });
    },
    requests: () => [{ method: 'POST', path: '/v3/kv/range', body: JSON.stringify({ key: b64('bench/prefix/'), range_end: b64('bench/prefix0') }) }],
  },
  {
    name: 'txn-cas',
    setup: async (port) => { await postJson(port, '/v3/kv/put', { key: b64('bench/cas'), value: b64('0') }); },
    // Compare-and-swap on a version that is always > 0: succeeds every time, one write per txn.
    requests: () => [{
      method: 'POST', path: '/v3/kv/txn',
      body: JSON.stringify({
        compare: [{ key: b64('bench/cas'), target: 'VERSION', result: 'GREATER', version: '0' }],
        success: [{ request_put: { key: b64('bench/cas'), value: value256 } }],
        failure: [{ request_range: { key: b64('bench/cas') } }],
      }),
    }],
  },
];

export function runAutocannon(port: number, scenario: GatewayScenario, durationSeconds: number, connections: number): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    autocannon({
      url: `http://127.0.0.1:${port}`,
      connections,
      duration: durationSeconds,
      headers: { 'content-type': 'application/json' },
      requests: scenario.requests(),
    }, (err, result) => {
      if (err) return reject(err);
      resolve({
        requestsPerSecond: result.requests.average,
        p50Ms: result.latency.p50,
        p99Ms: result.latency.p99,
        errors: result.errors + result.timeouts,
        non2xx: result.non2xx,
      });
    });
  });
}

export interface BenchOptions extends CommonOptions {
  rssKeys: number;
  /** Puts to one key for the history bench (history-bench.ts); 0 = skip. */
  history: number;
  log?: (line: string) => void;
}

/** Loads `count` keys of 256 B through the gateway with autocannon, then reads the server's RSS. */
async function loadKeysAndMeasureRss(server: ServerProcess, count: number, connections: number): Promise<number> {
  let next = 0;
  await new Promise<void>((resolve, reject) => {
    autocannon({
      url: `http://127.0.0.1:${server.clientPort}`,
      connections,
      amount: count,
      headers: { 'content-type': 'application/json' },
      requests: [{
        method: 'POST', path: '/v3/kv/put',
        setupRequest: (req: any) => {
          req.body = `{"key":"${b64(`rss/${String(next++).padStart(8, '0')}`)}","value":"${value256}"}`;
          return req;
        },
      }],
    }, (err) => (err ? reject(err) : resolve()));
  });
  return rssOf(server.child.pid!);
}

export async function runGatewayBench(options: BenchOptions): Promise<{ results: ScenarioResult[]; rss?: { keyraft: number; etcd?: number; keys: number } }> {
  const log = options.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const chosen: Scenario[] = scenarios
    .filter((s) => !options.scenarioNames || options.scenarioNames.includes(s.name))
    .map((s) => ({ name: s.name, setup: s.setup, measure: (port) => runAutocannon(port, s, options.durationSeconds, options.connections) }));
  checkEtcdAvailable(options);
  if (chosen.length === 0 && options.rssKeys <= 0) return { results: [] };
  try {
    const keyraft = await startKeyraft();
    const etcd = options.vsEtcd ? await startEtcd() : undefined;
    const results = await runScenarios(chosen, { keyraft, etcd }, options.rounds, log);
    let rss;
    if (options.rssKeys > 0) {
      const fresh = await startKeyraft();
      const keyraftRss = await loadKeysAndMeasureRss(fresh, options.rssKeys, options.connections);
      await fresh.kill9();
      let etcdRss;
      if (options.vsEtcd) {
        const freshEtcd = await startEtcd();
        etcdRss = await loadKeysAndMeasureRss(freshEtcd, options.rssKeys, options.connections);
        await freshEtcd.kill9();
      }
      rss = { keyraft: keyraftRss, etcd: etcdRss, keys: options.rssKeys };
    }
    return { results, rss };
  } finally {
    await killAll();
  }
}

function parseCli(argv: string[]): BenchOptions {
  const options: BenchOptions = { vsEtcd: false, durationSeconds: 10, connections: 100, rounds: 3, rssKeys: 0, history: 0 };
  parseCommonArgs(argv, options, (arg, value) => {
    if (arg === '--rss-keys') options.rssKeys = Number(value());
    else if (arg === '--history') options.history = Number(value());
    else return false;
    return true;
  });
  // --history alone measures history only; --scenarios adds gateway scenarios.
  if (options.history > 0 && options.scenarioNames === undefined) options.scenarioNames = [];
  return options;
}

if (require.main === module) {
  const options = parseCli(process.argv.slice(2));
  runGatewayBench(options).then(async ({ results, rss }) => {
    if (results.length > 0) {
      console.log(`\ngateway, ${options.connections} connections, ${options.durationSeconds} s x ${options.rounds} rounds (medians), ${new Date().toISOString()}`);
      console.log(formatTable(results));
    }
    if (rss) {
      const mib = (b: number) => (b / 2 ** 20).toFixed(0) + ' MiB';
      console.log(`\nRSS after loading ${rss.keys} keys of 256 B: keyraft ${mib(rss.keyraft)}${rss.etcd ? `, etcd ${mib(rss.etcd)}` : ''}`);
    }
    if (options.history > 0) {
      const history = await runHistoryBench({ vsEtcd: options.vsEtcd, puts: options.history, rangeSeconds: options.durationSeconds, rounds: options.rounds });
      console.log(`\nhistory: h2load gRPC, 10 connections x 10 streams, ranges ${options.durationSeconds} s x ${options.rounds} rounds (medians), ${new Date().toISOString()}`);
      console.log(formatHistoryResult(history));
    }
  }).catch((err: Error) => {
    console.error(err);
    process.exit(1);
  });
}
