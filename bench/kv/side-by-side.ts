import { readFileSync } from 'node:fs';
/**
 * The side-by-side driver shared by the KV benchmarks (gateway-bench.ts, grpc-bench.ts): each
 * scenario runs against keyraft and, with --vs-etcd, against etcd 3.4 in the same run, rounds
 * alternating which server goes first; the table reports medians of rounds and keyraft/etcd.
 * What differs between benchmarks is only how one round loads one server (`measure`).
 */
import { findBinary, missingReason } from '../../test/etcd-binaries.js';
import type { ServerProcess } from '../../test/integration/harness.js';

export interface Measurement {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Requests that failed at the transport (connection errors, timeouts). */
  errors: number;
  /** Requests answered with an error (HTTP non-2xx, gRPC status other than OK). */
  non2xx: number;
}

export interface Scenario {
  name: string;
  /** Prepares the store (runs once per server before the first round), given its client port. */
  setup?: (port: number) => Promise<void>;
  /** One round of load against the server on `port`. */
  measure: (port: number) => Promise<Measurement>;
}

export interface ScenarioResult {
  name: string;
  keyraft: Measurement;
  etcd?: Measurement;
}

export interface CommonOptions {
  vsEtcd: boolean;
  durationSeconds: number;
  connections: number;
  rounds: number;
  scenarioNames?: string[];
}

/** A process's resident set (VmRSS of /proc/PID/status), bytes. */
export function rssOf(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return kb * 1024;
}

/** utime + stime of a process, in seconds (clock ticks of 100 Hz, as Linux reports them). */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function summarize(ms: Measurement[]): Measurement {
  return {
    requestsPerSecond: median(ms.map((m) => m.requestsPerSecond)),
    p50Ms: median(ms.map((m) => m.p50Ms)),
    p99Ms: median(ms.map((m) => m.p99Ms)),
    errors: ms.reduce((n, m) => n + m.errors, 0),
    non2xx: ms.reduce((n, m) => n + m.non2xx, 0),
  };
}

export function checkEtcdAvailable(options: CommonOptions): void {
  // etcd is found as the tests find it: ETCD_BIN, else PATH.
  if (options.vsEtcd && findBinary('etcd') === undefined) throw new Error(`--vs-etcd needs etcd 3.4: ${missingReason(['etcd'])}`);
}

/** Runs every scenario `rounds` times against each server, alternating the order per round. */
export async function runScenarios(
  scenarios: Scenario[],
  servers: { keyraft: ServerProcess; etcd?: ServerProcess },
  rounds: number,
  log: (line: string) => void,
): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    const samples: { keyraft: Measurement[]; etcd: Measurement[] } = { keyraft: [], etcd: [] };
    await scenario.setup?.(servers.keyraft.clientPort);
    if (servers.etcd) await scenario.setup?.(servers.etcd.clientPort);
    for (let round = 0; round < rounds; round++) {
      // Alternate who goes first so drift (page cache, thermal, neighbours) does not favour one.
      const order: Array<['keyraft' | 'etcd', ServerProcess]> = [['keyraft', servers.keyraft]];
      if (servers.etcd) order.push(['etcd', servers.etcd]);
      if (round % 2 === 1) order.reverse();
      for (const [who, server] of order) {
        const m = await scenario.measure(server.clientPort);
        samples[who].push(m);
        log(`  ${scenario.name} round ${round + 1} ${who}: ${m.requestsPerSecond.toFixed(0)} req/s p50 ${m.p50Ms} ms p99 ${m.p99Ms} ms errors ${m.errors} non2xx ${m.non2xx}`);
      }
    }
    results.push({ name: scenario.name, keyraft: summarize(samples.keyraft), etcd: servers.etcd ? summarize(samples.etcd) : undefined });
  }
  return results;
}

export function formatTable(results: ScenarioResult[]): string {
  const rows = [
    '| scenario | keyraft req/s | keyraft p50 / p99 ms | etcd req/s | etcd p50 / p99 ms | keyraft/etcd |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const k = r.keyraft;
    const e = r.etcd;
    rows.push(`| ${r.name} | ${k.requestsPerSecond.toFixed(0)} | ${k.p50Ms} / ${k.p99Ms} | ${e ? e.requestsPerSecond.toFixed(0) : '-'} | ${e ? `${e.p50Ms} / ${e.p99Ms}` : '-'} | ${e ? (k.requestsPerSecond / e.requestsPerSecond).toFixed(2) + 'x' : '-'} |`);
  }
  return rows.join('\n');
}

/**
 * Parses the options every KV benchmark takes (--vs-etcd --duration --connections --rounds
 * --scenarios); `extra` handles the rest and returns false for an unknown option.
 */
export function parseCommonArgs<T extends CommonOptions>(argv: string[], options: T, extra: (arg: string, value: () => string) => boolean = () => false): T {
  forEachArg(argv, (arg, value) => {
    if (arg === '--vs-etcd') options.vsEtcd = true;
    else if (arg === '--duration') options.durationSeconds = Number(value());
    else if (arg === '--connections') options.connections = Number(value());
    else if (arg === '--rounds') options.rounds = Number(value());
    else if (arg === '--scenarios') options.scenarioNames = value().split(',');
    else return extra(arg, value);
    return true;
  });
  return options;
}

/**
 * The benchmarks' one argument loop: `handle` takes each option (calling `value()` for the next
 * argument when it needs one) and returns false for an option it does not know.
 */
export function forEachArg(argv: string[], handle: (arg: string, value: () => string) => boolean): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (!handle(arg, value)) throw new Error(`unknown option ${arg}`);
  }
}
