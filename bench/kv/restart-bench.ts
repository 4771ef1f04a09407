/**
 * Restart time with many keys, keyraft next to etcd 3.4 in the same run (issue 13): N keys
 * (default 1M) of 256-byte values loaded into a keyraft member and a real etcd (gRPC txns of 128
 * puts, 8 in flight), then per round, alternating which server goes first, each server is
 * stopped and started again on its data dir, twice:
 *
 *   graceful  SIGTERM, wait for the exit, start;
 *   kill -9   SIGKILL right after an acknowledged put (nothing flushed on the way out), start.
 *
 * Measured: process start (spawn) to the first answered Range (gRPC, linearizable) of a key the
 * load wrote, polled every 10 ms. After each restart the key count is checked (count_only range)
 * so a restart that lost keys fails the run instead of looking fast. For keyraft, the start-up
 * log line's phases (WAL read, store rebuild, ...) are printed too, and for both servers the
 * CPU time and RSS at the first answered Range, and the RSS after the load. Medians over the rounds; the
 * machine is shared, so compare only numbers from the same run.
 *
 *   node dist/bench/kv/restart-bench.js [--keys N] [--rounds R] [--keyraft-only] [--smoke]
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { EtcdClient } from '../../src/cli/ctl-client.js';
import { findBinary } from '../../test/etcd-binaries.js';
import { keyraftBin, killAll, startEtcd, startKeyraft, track, type ServerProcess } from '../../test/integration/harness.js';
import { cpuSecondsOf, median, rssOf } from './side-by-side.js';
import { loadKeys, loadedKeyName } from './load-keys.js';

const VALUE_BYTES = 256;
const TXN_PUTS = 128;
const LOAD_CONCURRENCY = 8;
const POLL_MS = 10;
const START_TIMEOUT_MS = 300_000;

export interface RestartBenchOptions {
  keys: number;
  rounds: number;
  vsEtcd: boolean;
  log: (line: string) => void;
}

type Server = 'keyraft' | 'etcd';
type Mode = 'graceful' | 'kill -9';

export interface RestartSample {
  /** Spawn to the first answered Range, ms. */
  firstRangeMs: number;
  /** The server's CPU time (utime + stime) and RSS right after that Range: on a shared machine, CPU says more than wall time. */
  cpuMs: number;
  rssBytes: number;
  /** keyraft only: the start-up log line's phases (ms), when it printed one. */
  phases?: Record<string, number>;
}

export type RestartBenchResult = Record<Server, Record<Mode, RestartSample[]>> & { rssAfterLoadBytes: Partial<Record<Server, number>> };

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => { socket.destroy(); resolve(false); });
  });
}

/** Polls until a Range of the first loaded key is answered; its time from `t0`. */
async function firstRange(server: ServerProcess, t0: number): Promise<number> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      throw new Error(`server exited during start-up (code ${server.child.exitCode}):\n${server.output()}`);
    }
    if (Date.now() > deadline) throw new Error(`no Range answered within ${START_TIMEOUT_MS} ms:\n${server.output()}`);
    if (await portOpen(server.clientPort)) {
      // A fresh client per attempt: grpc-js's reconnect backoff would otherwise set the pace.
      const client = new EtcdClient([`127.0.0.1:${server.clientPort}`]);
      try {
        const res = await client.call<object, { count?: unknown }>('KV', 'Range', { key: loadedKeyName(0) }, { deadlineMs: Date.now() + 60_000 });
        const ms = performance.now() - t0;
        if (Number(res.count ?? 0) !== 1) throw new Error(`the first key is missing after the restart:\n${server.output()}`);
        return ms;
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('the first key')) throw err;
        // not serving yet
      } finally {
        client.close();
      }
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function countKeys(port: number): Promise<number> {
  const client = new EtcdClient([`127.0.0.1:${port}`]);
  try {
    const res = await client.call<object, { count?: unknown }>('KV', 'Range', { key: Buffer.from('bench/'), range_end: Buffer.from('bench0'), count_only: true }, { deadlineMs: Date.now() + 60_000 });
    return Number(res.count ?? 0);
  } finally {
    client.close();
  }
}

/** A put acknowledged just before the kill: the restart must still have it. */
async function putMarker(port: number, value: string): Promise<void> {
  const client = new EtcdClient([`127.0.0.1:${port}`]);
  try {
    await client.call('KV', 'Put', { key: Buffer.from('marker'), value: Buffer.from(value) }, { deadlineMs: Date.now() + 60_000 });
  } finally {
    client.close();
  }
}

async function readMarker(port: number): Promise<string> {
  const client = new EtcdClient([`127.0.0.1:${port}`]);
  try {
    const res = await client.call<object, { kvs?: Array<{ value: Uint8Array }> }>('KV', 'Range', { key: Buffer.from('marker') }, { deadlineMs: Date.now() + 60_000 });
    return Buffer.from(res.kvs?.[0]?.value ?? []).toString();
  } finally {
    client.close();
  }
}

/** The same command line the server was first started with, on the same data dir and ports. */
function respawn(which: Server, server: ServerProcess): ServerProcess {
  const urls = [
    '--data-dir', server.dataDir,
    '--listen-client-urls', `http://127.0.0.1:${server.clientPort}`,
    '--advertise-client-urls', `http://127.0.0.1:${server.clientPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${server.peerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${server.peerPort}`,
    '--initial-cluster', `default=http://127.0.0.1:${server.peerPort}`,
  ];
  const child = which === 'keyraft'
    ? spawn(process.execPath, [keyraftBin, ...urls], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KEYRAFT_LOG_LEVEL: 'info' } })
    : spawn(findBinary('etcd')!, [...urls, '--log-level', 'error', '--logger', 'zap'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return track(child, server.clientPort, server.peerPort, server.dataDir);
}

/** keyraft's start-up log line (member.ts), parsed from its JSON log output. */
function startupPhases(output: string): Record<string, number> | undefined {
  let phases: Record<string, number> | undefined;
  let imageRecords: number | undefined;
  for (const line of output.split('\n')) {
    try {
      if (line.includes('"start-up phases"')) {
        const o = JSON.parse(line) as Record<string, unknown>;
        phases = {};
        for (const [k, v] of Object.entries(o)) if (k.endsWith('Ms') && typeof v === 'number') phases[k] = v;
      } else if (line.includes('"mvcc store recovered"')) {
        // How many records came from the history image (mvcc/history-image.ts) rather than LevelDB.
        imageRecords = Number((JSON.parse(line) as { imageRecords?: number }).imageRecords ?? 0);
      }
    } catch {
      // not a JSON log line
    }
  }
  return phases === undefined ? undefined : { ...phases, ...(imageRecords === undefined ? {} : { imageRecords }) };
}

export async function runRestartBench(options: RestartBenchOptions): Promise<RestartBenchResult> {
  const servers: Server[] = options.vsEtcd ? ['keyraft', 'etcd'] : ['keyraft'];
  const running: Partial<Record<Server, ServerProcess>> = {};
  const result: RestartBenchResult = {
    keyraft: { graceful: [], 'kill -9': [] },
    etcd: { graceful: [], 'kill -9': [] },
    rssAfterLoadBytes: {},
  };
  try {
    running.keyraft = await startKeyraft();
    if (options.vsEtcd) running.etcd = await startEtcd();
    const t0 = performance.now();
    await Promise.all(servers.map((s) => loadKeys(running[s]!.clientPort, { keys: options.keys, valueBytes: VALUE_BYTES, txnPuts: TXN_PUTS, concurrency: LOAD_CONCURRENCY, txnTimeoutMs: 120_000 })));
    for (const which of servers) result.rssAfterLoadBytes[which] = rssOf(running[which]!.child.pid!);
    options.log(`loaded ${options.keys} keys x ${VALUE_BYTES} B (txns of ${TXN_PUTS} puts) into ${servers.join(' and ')} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    let marker = 0;
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const which of order) {
        for (const mode of ['graceful', 'kill -9'] as const) {
          const before = running[which]!;
          if (mode === 'graceful') {
            await before.stop();
          } else {
            await putMarker(before.clientPort, String(++marker));
            await before.kill9();
          }
          const start = performance.now();
          const after = respawn(which, before);
          running[which] = after;
          const firstRangeMs = await firstRange(after, start);
          const cpuMs = cpuSecondsOf(after.child.pid!) * 1000;
          const rssBytes = rssOf(after.child.pid!);
          const count = await countKeys(after.clientPort);
          if (count !== options.keys) throw new Error(`${which} holds ${count} keys after a ${mode} restart, expected ${options.keys}`);
          if (mode === 'kill -9') {
            const got = await readMarker(after.clientPort);
            if (got !== String(marker)) throw new Error(`${which} lost an acknowledged put across kill -9: marker ${got}, expected ${marker}`);
          }
          const phases = which === 'keyraft' ? startupPhases(after.output()) : undefined;
          result[which][mode].push({ firstRangeMs, cpuMs, rssBytes, phases });
          const phaseText = phases ? ' (' + Object.entries(phases).map(([k, v]) => `${k} ${v}`).join(', ') + ')' : '';
          options.log(`round ${round + 1} ${which.padEnd(7)} ${mode.padEnd(8)} first range after ${firstRangeMs.toFixed(0)} ms, CPU ${cpuMs.toFixed(0)} ms, RSS ${mib(rssBytes)} MiB${phaseText}`);
        }
      }
    }
  } finally {
    await killAll();
  }
  return result;
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(0);
}

export function formatRestartResult(result: RestartBenchResult, options: Pick<RestartBenchOptions, 'keys' | 'rounds' | 'vsEtcd'>): string {
  const lines = [`restart with ${options.keys} keys x ${VALUE_BYTES} B, process start to first answered Range, medians of ${options.rounds} rounds`];
  lines.push('server    graceful ms   kill -9 ms   CPU graceful / kill -9 ms   RSS after load MiB   RSS at first range MiB');
  for (const which of (options.vsEtcd ? ['keyraft', 'etcd'] : ['keyraft']) as Server[]) {
    const m = (mode: Mode, f: (s: RestartSample) => number): number => median(result[which][mode].map(f));
    const cpu = `${m('graceful', (s) => s.cpuMs).toFixed(0)} / ${m('kill -9', (s) => s.cpuMs).toFixed(0)}`;
    const rss = median([...result[which].graceful, ...result[which]['kill -9']].map((s) => s.rssBytes));
    lines.push(`${which.padEnd(8)} ${m('graceful', (s) => s.firstRangeMs).toFixed(0).padStart(12)} ${m('kill -9', (s) => s.firstRangeMs).toFixed(0).padStart(12)}` +
      ` ${cpu.padStart(27)} ${mib(result.rssAfterLoadBytes[which] ?? 0).padStart(20)} ${mib(rss).padStart(24)}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const smoke = args.includes('--smoke');
  const flag = (name: string, dflt: number): number => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const options: RestartBenchOptions = {
    keys: flag('--keys', smoke ? 2_000 : 1_000_000),
    rounds: flag('--rounds', smoke ? 1 : 3),
    vsEtcd: !args.includes('--keyraft-only') && findBinary('etcd') !== undefined,
    log: (line) => console.log(line),
  };
  const result = await runRestartBench(options);
  console.log('\n' + formatRestartResult(result, options));
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
