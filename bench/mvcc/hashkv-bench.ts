import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { KvStore } from '../../src/mvcc/kv-store.js';
import { crc32c } from '../../src/platform/crc32c.js';
import { silentLogger } from '../../src/platform/logger.js';
import { Backend } from '../../src/storage/backend.js';

/**
 * HashKV cost: a store of `keys` keys x `valueBytes` (each written `versions` times, so history
 * is hashed too), then `runs` HashKV calls at the current revision. Reports per run: wall time,
 * records/s and MB/s hashed, and the longest event-loop stall while it ran (HashKV reads 1,000
 * records per native call and computes the CRC between reads on the main thread). Also our
 * CRC-32C's raw speed next to zlib's CRC-32 (IEEE, native) on one buffer, as a yardstick.
 *
 *   node dist/bench/mvcc/hashkv-bench.js [--keys 200000] [--bytes 256] [--versions 2] [--runs 5]
 */

export interface HashKVBenchOptions {
  keys: number;
  valueBytes: number;
  versions: number;
  runs: number;
  log?: (line: string) => void;
}

export interface HashKVBenchResult {
  records: number;
  bytes: number;
  msMedian: number;
  /** Process CPU (main thread and LevelDB's threads) per HashKV. */
  cpuMsMedian: number;
  maxStallMsMedian: number;
  hash: number;
  crc32cMBps: number;
  zlibCrc32MBps: number;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function runHashKVBench(o: HashKVBenchOptions): Promise<HashKVBenchResult> {
  const log = o.log ?? ((line: string) => console.log(line));
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-hashkv-bench-'));
  const backend = await Backend.open(join(dir, 'db'), { logger: silentLogger });
  const store = await KvStore.open(backend, { logger: silentLogger });
  try {
    const value = Buffer.alloc(o.valueBytes, 'v');
    let applied = 0;
    for (let v = 0; v < o.versions; v++) {
      for (let i = 0; i < o.keys; i += 1000) {
        for (let k = i; k < Math.min(i + 1000, o.keys); k++) {
          const txn = store.write();
          txn.put(Buffer.from(`key/${k.toString().padStart(8, '0')}`), value, 0n);
          txn.end();
        }
        store.commit(++applied);
        if (backend.queuedOps > 100_000) await backend.drain();
      }
    }
    await backend.flush();
    const records = o.keys * o.versions;
    const bytes = records * (o.valueBytes + 14 + 17 + 12);
    const times: number[] = [];
    const stalls: number[] = [];
    const cpuTimes: number[] = [];
    let hash = 0;
    for (let r = 0; r < o.runs; r++) {
      const h = monitorEventLoopDelay({ resolution: 1 });
      h.enable();
      const started = performance.now();
      const cpu = process.cpuUsage();
      hash = (await store.hashKV(0)).hash;
      const ms = performance.now() - started;
      const used = process.cpuUsage(cpu);
      cpuTimes.push((used.user + used.system) / 1000);
      h.disable();
      times.push(ms);
      stalls.push(h.max / 1e6);
      log(`  run ${r + 1}: ${ms.toFixed(0)} ms, ${(records / ms * 1000 / 1e6).toFixed(2)} M records/s, ${(bytes / ms / 1000).toFixed(0)} MB/s, longest event-loop stall ${(h.max / 1e6).toFixed(1)} ms, process CPU ${cpuTimes[cpuTimes.length - 1]!.toFixed(0)} ms (both threads)`);
    }
    const buf = Buffer.alloc(64 * 1024 * 1024, 7);
    let t = performance.now();
    crc32c(buf);
    const crc32cMBps = buf.length / 1e6 / ((performance.now() - t) / 1000);
    t = performance.now();
    crc32(buf);
    const zlibCrc32MBps = buf.length / 1e6 / ((performance.now() - t) / 1000);
    return { records, bytes, msMedian: median(times), cpuMsMedian: median(cpuTimes), maxStallMsMedian: median(stalls), hash, crc32cMBps, zlibCrc32MBps };
  } finally {
    await store.close();
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const arg = (name: string, fallback: number) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const o = { keys: arg('keys', 200_000), valueBytes: arg('bytes', 256), versions: arg('versions', 2), runs: arg('runs', 5) };
  console.log(`HashKV over ${o.keys} keys x ${o.valueBytes} B x ${o.versions} versions, ${o.runs} runs (machine shared with other work: compare within a run)`);
  const r = await runHashKVBench(o);
  console.log(`median ${r.msMedian.toFixed(0)} ms for ${r.records} records (${(r.bytes / r.msMedian / 1000).toFixed(0)} MB/s), median longest stall ${r.maxStallMsMedian.toFixed(1)} ms, median process CPU ${r.cpuMsMedian.toFixed(0)} ms`);
  console.log(`CRC-32C (ours, JS slicing-by-8) ${r.crc32cMBps.toFixed(0)} MB/s; zlib CRC-32 (native) ${r.zlibCrc32MBps.toFixed(0)} MB/s`);
}

if (require.main === module) void main();
