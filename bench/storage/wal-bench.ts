import * as fs from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { Wal, type WalEntry } from '../../src/storage/wal.js';
import { encodeEntryRecord, entryRecordBytes } from '../../src/storage/wal-record.js';

/**
 * WAL group-commit benchmark: `appenders` concurrent loops, each appending one entry of
 * `entryBytes` and awaiting it, for `seconds`. Three variants, same process, same disk:
 *
 *   worker      the WAL (worker thread owns the file, group commit)
 *   main-group  baseline: group commit on the main thread with fs.promises (writev + datasync of
 *               everything queued while the previous sync ran), records and crcs encoded on
 *               the main thread: what the worker must beat to earn its place
 *   per-append  baseline: one write + one fdatasync per append, no grouping
 *
 * For each: appends/s, fdatasyncs, mean fdatasync time, the main thread's event-loop
 * utilization (busy fraction) and busy microseconds per append (this process's load loops
 * included, identical across variants), and event-loop delay p50/p99/max while the load runs.
 * The disk is shared and noisy on these machines: compare variants within one run.
 *
 *   node dist/bench/storage/wal-bench.js [--seconds 3] [--appenders 100] [--bytes 300]
 */

export interface BenchOptions {
  seconds: number;
  appenders: number;
  entryBytes: number;
}

export interface BenchResult {
  variant: string;
  appends: number;
  appendsPerSecond: number;
  syncs: number;
  syncMicrosMean: number;
  mainThreadUtilization: number;
  /** Main-thread busy time per append: what the WAL costs the thread that serves clients. */
  mainThreadMicrosPerAppend: number;
  loopDelayP50Millis: number;
  loopDelayP99Millis: number;
  loopDelayMaxMillis: number;
}

interface Appender {
  append(entries: WalEntry[]): Promise<void>;
  syncs(): { count: number; micros: number };
  close(): Promise<void>;
}

async function measure(variant: string, options: BenchOptions, open: () => Promise<Appender>): Promise<BenchResult> {
  const appender = await open();
  const payload = Buffer.alloc(options.entryBytes, 0x61);
  let nextIndex = 1;
  let appends = 0;
  let running = true;
  const loop = async (): Promise<void> => {
    while (running) {
      const index = nextIndex++;
      await appender.append([{ index, term: 1, type: 0, data: payload }]);
      appends++;
    }
  };
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const elu = performance.eventLoopUtilization();
  const started = performance.now();
  const loops = Array.from({ length: options.appenders }, loop);
  await new Promise((resolve) => setTimeout(resolve, options.seconds * 1000));
  running = false;
  await Promise.all(loops);
  const elapsedSeconds = (performance.now() - started) / 1000;
  const utilization = performance.eventLoopUtilization(elu).utilization;
  delay.disable();
  const syncs = appender.syncs();
  await appender.close();
  return {
    variant,
    appends,
    appendsPerSecond: Math.round(appends / elapsedSeconds),
    syncs: syncs.count,
    syncMicrosMean: syncs.count > 0 ? Math.round(syncs.micros / syncs.count) : 0,
    mainThreadUtilization: Number(utilization.toFixed(3)),
    mainThreadMicrosPerAppend: Number(((utilization * elapsedSeconds * 1e6) / Math.max(1, appends)).toFixed(2)),
    loopDelayP50Millis: Number((delay.percentile(50) / 1e6).toFixed(2)),
    loopDelayP99Millis: Number((delay.percentile(99) / 1e6).toFixed(2)),
    loopDelayMaxMillis: Number((delay.max / 1e6).toFixed(2)),
  };
}

async function openWorkerWal(dir: string): Promise<Appender> {
  const { wal } = await Wal.open(dir);
  const base = { count: wal.stats.syncs, micros: wal.stats.syncMicrosTotal };
  return {
    append: (entries) => wal.append(entries),
    syncs: () => ({ count: wal.stats.syncs - base.count, micros: wal.stats.syncMicrosTotal - base.micros }),
    close: () => wal.close(),
  };
}

/** Baseline: the same record bytes, grouped and synced from the main thread with fs.promises. */
async function openMainThreadWal(dir: string, group: boolean): Promise<Appender> {
  const handle = await fs.open(join(dir, 'baseline.wal'), 'w+');
  // Zero-filled like a real segment, so both variants sync into allocated blocks.
  const zero = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < 64; i++) await handle.write(zero, 0, zero.length, i * zero.length);
  await handle.sync();
  let offset = 0;
  let queued: { buf: Buffer; resolve: () => void }[] = [];
  let writing = false;
  let syncs = 0;
  let syncMicros = 0;
  const flush = async (): Promise<void> => {
    writing = true;
    while (queued.length > 0) {
      const batch = group ? queued : queued.slice(0, 1);
      queued = group ? [] : queued.slice(1);
      const buffers = batch.map((b) => b.buf);
      let bytes = 0;
      for (const b of buffers) bytes += b.length;
      await handle.writev(buffers, offset);
      offset = (offset + bytes) % (60 * 1024 * 1024);
      const t = performance.now();
      await handle.datasync();
      syncMicros += (performance.now() - t) * 1000;
      syncs++;
      for (const b of batch) b.resolve();
    }
    writing = false;
  };
  return {
    append(entries) {
      let bytes = 0;
      for (const e of entries) bytes += entryRecordBytes(e.data.length);
      const buf = Buffer.allocUnsafe(bytes);
      let at = 0;
      for (const e of entries) {
        const start = at;
        at = encodeEntryRecord(buf, at, e);
        buf.writeUInt32LE(crc32(buf.subarray(start + 12, at), crc32(buf.subarray(start, start + 8))), start + 8);
      }
      return new Promise<void>((resolve) => {
        queued.push({ buf, resolve });
        if (!writing) void flush();
      });
    },
    syncs: () => ({ count: syncs, micros: syncMicros }),
    close: () => handle.close(),
  };
}

export async function runWalBench(options: BenchOptions): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const variants: [string, (dir: string) => Promise<Appender>][] = [
    ['worker', openWorkerWal],
    ['main-group', (dir) => openMainThreadWal(dir, true)],
    ['per-append', (dir) => openMainThreadWal(dir, false)],
  ];
  for (const [variant, open] of variants) {
    const dir = await mkdtemp(join(tmpdir(), 'keyraft-wal-bench-'));
    try {
      results.push(await measure(variant, options, () => open(dir)));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return results;
}

function argument(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

if (require.main === module) {
  const options: BenchOptions = {
    seconds: argument('seconds', 3),
    appenders: argument('appenders', 100),
    entryBytes: argument('bytes', 300),
  };
  runWalBench(options).then((results) => {
    console.log(`wal bench: ${options.appenders} appenders, ${options.entryBytes}-byte entries, ${options.seconds} s each`);
    console.table(results);
    const [worker, group, single] = results;
    if (worker && group && single) {
      console.log(`worker vs main-group: ${(worker.appendsPerSecond / group.appendsPerSecond).toFixed(2)}x appends/s, ` +
        `main thread ${worker.mainThreadMicrosPerAppend} vs ${group.mainThreadMicrosPerAppend} us per append`);
      console.log(`worker vs per-append: ${(worker.appendsPerSecond / single.appendsPerSecond).toFixed(2)}x appends/s`);
    }
  }).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
