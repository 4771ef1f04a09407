/**
 * Does a piscina worker earn its place in writing a state image? Builds a backend of N keys
 * (default 1M) with 256-byte values, then writes an image of it twice per round:
 *   - inline: storage/state-image.ts as shipped (LevelDB reads async, encoding + SHA-256 on the
 *     main thread, one 1 MiB chunk at a time);
 *   - worker: the same reads on the main thread, each batch of records posted to one piscina
 *     thread that encodes and hashes it and hands the chunk back (transferred) for the write;
 * and then installs the image once into a fresh backend (installStateImage, a follower's cost).
 * Reports wall time, main-thread busy time (event loop utilization, active ms) and the event loop
 * delay a timer sees meanwhile (p50/p99/max), medians over the rounds.
 *
 *   node dist/bench/storage/state-image-bench.js [--keys N] [--rounds R] [--smoke]
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import Piscina from 'piscina';
import { readAppliedIndex } from '../../src/mvcc/kv-store.js';
import { silentLogger } from '../../src/platform/logger.js';
import { Backend, Bucket } from '../../src/storage/backend.js';
import { encodeHeader, installStateImage, writeStateImage } from '../../src/storage/state-image.js';

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const keys = flag('--keys', smoke ? 20_000 : 1_000_000);
const rounds = flag('--rounds', smoke ? 1 : 3);
const VALUE_BYTES = 256;

interface Sample { wallMs: number; mainBusyMs: number; delayP50Ms: number; delayP99Ms: number; delayMaxMs: number; bytes: number }

async function measure(run: () => Promise<number>): Promise<Sample> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  const bytes = await run();
  const wallMs = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0);
  h.disable();
  return {
    wallMs, mainBusyMs: elu.active, bytes,
    delayP50Ms: h.percentile(50) / 1e6, delayP99Ms: h.percentile(99) / 1e6, delayMaxMs: h.max / 1e6,
  };
}

const describe = () => ({ term: 1, voters: [1n], learners: [] as bigint[] });

async function inline(backend: Backend, path: string): Promise<number> {
  const w = await writeStateImage(backend, path, { appliedIndex: (r) => readAppliedIndex((b, k) => r.get(b, k)), describe });
  return w.sizeBytes;
}

async function viaWorker(pool: Piscina, backend: Backend, path: string): Promise<number> {
  const reader = backend.snapshotReader();
  const file = await open(path, 'w');
  let bytes = 0;
  try {
    const index = await readAppliedIndex((b, k) => reader.get(b, k));
    const header = encodeHeader({ index, ...describe() });
    // The header goes through the worker's hash too: a batch of one pseudo-record is not the
    // format, but the cost is what is measured here.
    await file.write(header);
    bytes += header.length;
    reader.rewind();
    let pending: Promise<ArrayBuffer> | null = null;
    for (;;) {
      const batch = await reader.nextBatch();
      const posted: Promise<ArrayBuffer> | null = batch.length === 0 ? null
        : pool.run({ keys: batch.map((e) => e[0]), values: batch.map((e) => e[1]) });
      if (pending !== null) {
        const chunk = Buffer.from(await pending);
        await file.write(chunk);
        bytes += chunk.length;
      }
      pending = posted;
      if (posted === null) break;
    }
    const digest = Buffer.from(await pool.run({ finish: true }) as Uint8Array);
    await file.write(digest);
    bytes += digest.length;
    await file.sync();
  } finally {
    await file.close();
    await reader.close();
  }
  return bytes;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-image-bench-'));
  const pool = new Piscina({
    filename: join(__dirname, 'state-image-worker.js'),
    minThreads: 1, maxThreads: 1,
  });
  try {
    const backend = await Backend.open(join(dir, 'db'), { logger: silentLogger });
    const t0 = performance.now();
    const value = Buffer.alloc(VALUE_BYTES, 7);
    for (let i = 0; i < keys; i++) {
      const key = Buffer.alloc(8 + 12);
      key.writeBigUInt64BE(BigInt(i + 2), 0);
      key.write(`key-${String(i).padStart(8, '0')}`, 8, 'latin1');
      backend.put(Bucket.key, key, value);
      if (i % 10_000 === 9_999) {
        backend.commit();
        await backend.drain();
      }
    }
    const meta = Buffer.alloc(24);
    meta.writeBigUInt64BE(BigInt(keys + 10), 0);
    meta.writeBigUInt64BE(BigInt(keys + 1), 8);
    backend.put(Bucket.meta, Buffer.from('mvcc'), meta);
    backend.commit();
    await backend.flush();
    console.log(`loaded ${keys} keys of ${VALUE_BYTES} B in ${Math.round(performance.now() - t0)} ms`);

    const results: Record<string, Sample[]> = { inline: [], worker: [], install: [] };
    for (let r = 0; r < rounds; r++) {
      results.inline!.push(await measure(() => inline(backend, join(dir, 'inline.krimg'))));
      results.worker!.push(await measure(() => viaWorker(pool, backend, join(dir, 'worker.krimg'))));
    }
    // What a follower pays: verify the image and build a fresh backend from it (one round).
    results.install!.push(await measure(async () => (await installStateImage(join(dir, 'inline.krimg'), join(dir, 'installed'), silentLogger)).sizeBytes));
    if (args.includes('--samples')) console.log(JSON.stringify(results));
    console.log('mode     wall ms  main busy ms  loop delay p50/p99/max ms   MB');
    for (const [mode, samples] of Object.entries(results)) {
      const m = (f: (s: Sample) => number) => median(samples.map(f));
      console.log(`${mode.padEnd(7)} ${m((s) => s.wallMs).toFixed(0).padStart(8)} ${m((s) => s.mainBusyMs).toFixed(0).padStart(13)}`
        + `   ${m((s) => s.delayP50Ms).toFixed(1)}/${m((s) => s.delayP99Ms).toFixed(1)}/${m((s) => s.delayMaxMs).toFixed(1)}`.padEnd(28)
        + `${(m((s) => s.bytes) / 1e6).toFixed(0).padStart(5)}`);
    }
    await backend.close();
  } finally {
    await pool.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
