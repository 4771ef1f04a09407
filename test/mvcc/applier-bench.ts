/**
 * In-process micro benchmark of the applier's hot path (not run by `npm test`; it belongs in
 * bench/ once that folder takes an mvcc scenario):
 *   node dist/test/mvcc/applier-bench.js rates
 *   node --expose-gc dist/test/mvcc/applier-bench.js memory [keys=1000000] [valueBytes=256]
 * `rates`: ops/s for put and range of one key, put over 100 keys, a short prefix range (medians
 * of 5 runs). `memory`: heap and RSS held by `keys` keys of `valueBytes` bytes, and the time to
 * rebuild the store from the backend (a restart). Run the modes in separate processes.
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { Applier } from '../../src/server/applier.js';
import type { InternalRequest } from '../../src/proto/etcd-types.js';
import { openApplier, withTempDir } from './helpers.js';

const mode = process.argv[2] ?? 'rates';
const keyCount = Number(process.argv[3] ?? 1_000_000);
const valueBytes = Number(process.argv[4] ?? 256);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Runs fn 5 times; fn returns the milliseconds it spent applying (excluding event-loop turns). */
async function rate(label: string, ops: number, fn: () => number | Promise<number>): Promise<void> {
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) runs.push(ops / ((await fn()) / 1000));
  console.log(`${label.padEnd(34)} ${Math.round(median(runs)).toLocaleString('en-US').padStart(12)} ops/s (median of 5)`);
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(0)} MiB`;
}

async function rates(): Promise<void> {
  await withTempDir(async (dir) => {
    const applier: Applier = await openApplier(dir);
    let index = 0;
    const value = Buffer.alloc(valueBytes, 0x61);
    const oneKey = Buffer.from('/registry/bench/key');
    const put: InternalRequest = { id: 0, put: { key: oneKey, value } };
    const N = 100_000;
    // As the member does: one commit per applied batch of 100, then the event loop runs (the
    // backend writes in the background); only the applying is timed.
    const putLoop = async (requests: InternalRequest[]): Promise<number> => {
      let ms = 0;
      for (let i = 0; i < N; i += 100) {
        const t0 = performance.now();
        for (let j = i; j < i + 100; j++) applier.apply(requests[j % requests.length]!);
        applier.commit(++index);
        ms += performance.now() - t0;
        await new Promise((resolve) => setImmediate(resolve));
      }
      return ms;
    };
    await rate('put, one key (commit per 100)', N, () => putLoop([put]));
    await applier.flush();
    const keys = Array.from({ length: 100 }, (_, i) => Buffer.from(`/registry/bench/client-${i}`));
    const puts = keys.map((key): InternalRequest => ({ id: 0, put: { key, value } }));
    await rate('put, 100 keys (commit per 100)', N, () => putLoop(puts));
    await applier.flush();
    const range = { key: oneKey };
    await rate('range, one key', 1_000_000, () => {
      const t0 = performance.now();
      for (let i = 0; i < 1_000_000; i++) applier.range(range);
      return performance.now() - t0;
    });
    const prefix = { key: Buffer.from('/registry/bench/client-1'), range_end: Buffer.from('/registry/bench/client-2'), limit: 10 };
    await rate('range, prefix of 11 keys, limit 10', 200_000, () => {
      const t0 = performance.now();
      for (let i = 0; i < 200_000; i++) applier.range(prefix);
      return performance.now() - t0;
    });
    applier.apply({ id: 0, compaction: { revision: applier.currentRevision } });
    applier.commit(++index);
    await applier.flush();
    await applier.close();
  });
}

async function memory(): Promise<void> {
  await withTempDir(async (dir) => {
    const value = Buffer.alloc(valueBytes, 0x61);
    let index = 0;
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const base = process.memoryUsage();
    const applier = await openApplier(dir);
    const t0 = performance.now();
    for (let i = 0; i < keyCount; i++) {
      applier.apply({ id: 0, put: { key: Buffer.from(`/registry/pods/ns-${i % 100}/pod-${i}`), value } });
      if (i % 1000 === 999) {
        // As the member does: one commit per applied batch, then the event loop runs.
        applier.commit(++index);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    applier.commit(++index);
    const loadMs = performance.now() - t0;
    await applier.flush();
    const flushedMs = performance.now() - t0;
    gc?.();
    const after = process.memoryUsage();
    console.log(`load ${keyCount} keys x ${valueBytes} B: ${Math.round(keyCount / (loadMs / 1000)).toLocaleString('en-US')} puts/s applied, ${(flushedMs / 1000).toFixed(1)} s until the backend is synced`);
    console.log(`memory for ${keyCount} keys: heap +${mib(after.heapUsed - base.heapUsed)}, external +${mib(after.external - base.external)}, rss ${mib(after.rss)} (rss at start ${mib(base.rss)})`);
    await applier.close();
    // A restart is a fresh process: measure it in one (this one still holds the loaded store's garbage).
    const child = spawnSync(process.execPath, ['--expose-gc', __filename, 'restart', dir], { stdio: 'inherit' });
    if (child.status !== 0) throw new Error(`restart measurement exited with ${child.status}`);
  });
}

async function restart(dir: string): Promise<void> {
  const t0 = performance.now();
  const applier = await openApplier(dir);
  const ms = performance.now() - t0;
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  console.log(`restart (fresh process): store rebuilt from the backend in ${(ms / 1000).toFixed(1)} s (${applier.store.keyCount} keys, revision ${applier.currentRevision}); heap ${mib(m.heapUsed)}, external ${mib(m.external)}, rss ${mib(m.rss)}`);
  await applier.close();
}

(mode === 'memory' ? memory() : mode === 'restart' ? restart(process.argv[3]!) : rates()).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
