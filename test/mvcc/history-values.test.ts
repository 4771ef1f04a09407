/**
 * History off the heap (mvcc/history-values.ts): old values leave memory once their backend batch
 * is written, come back from the backend asynchronously (through a bounded cache), and a read in
 * flight survives a compaction applied after it resolved its index entries.
 */
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isUnread } from '../../src/mvcc/key-index.js';
import { KvStore } from '../../src/mvcc/kv-store.js';
import { silentLogger } from '../../src/platform/logger.js';
import type { RangeResponse } from '../../src/proto/etcd-types.js';
import { Backend } from '../../src/storage/backend.js';
import { b, openApplier, plain, rng, throwsCode, withTempDir } from './helpers.js';

async function open(dir: string, historyCacheBytes?: number): Promise<{ backend: Backend; store: KvStore }> {
  const backend = await Backend.open(join(dir, 'db'), { logger: silentLogger });
  const store = await KvStore.open(backend, { logger: silentLogger, historyCacheBytes });
  return { backend, store };
}

async function close(s: { backend: Backend; store: KvStore }): Promise<void> {
  await s.store.close();
  await s.backend.close();
}

function put(store: KvStore, key: string, value: Buffer | string): number {
  const txn = store.write();
  txn.put(b(key), typeof value === 'string' ? b(value) : value, 0n);
  return txn.end();
}

/** V8's gc, exposed at run time. */
const fullGc = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/**
 * Full GCs across turns, so heap and external figures count live objects only (V8 frees
 * ArrayBuffer memory in a sweeper that may finish after gc() returns).
 */
async function gc(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    fullGc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('50,000 puts of 1 KiB to one key: heap and external memory grow by far less than the values', () => withTempDir(async (dir) => {
  const s = await open(dir);
  try {
    const value = Buffer.alloc(1024, 0x61);
    put(s.store, 'one', value);
    s.store.commit(1);
    await s.backend.flush();
    await gc();
    const before = process.memoryUsage();
    const puts = 50_000;
    for (let i = 0; i < puts; i++) {
      value.writeUInt32BE(i, 0);
      put(s.store, 'one', value);
      if (i % 100 === 99) s.store.commit(2 + i);
      // Let the backend write now and then, as the member's apply loop does between batches.
      if (i % 5000 === 4999) await s.backend.drain();
    }
    s.store.commit(puts + 10);
    await s.backend.flush();
    // 50,000 records are past the history image's threshold: one is being written; its chunks in
    // flight are not history.
    await s.store.historyImageSettled();
    await gc();
    const after = process.memoryUsage();
    const grown = (after.heapUsed + after.external) - (before.heapUsed + before.external);
    const valuesBytes = puts * value.length;
    // Values held in memory would be ~51 MB; the index costs ~8-16 B per revision (measured:
    // heap +0.9 MB, external +16 KB).
    assert.ok(grown < valuesBytes / 10, `heap + external grew ${(grown / 2 ** 20).toFixed(1)} MiB for ${(valuesBytes / 2 ** 20).toFixed(0)} MiB of values`);
    assert.is(s.store.history.unwrittenCount, 0, 'every old value left memory once written');
    // Every revision is still readable, from the backend.
    const r = await s.store.rangeResolved(b('one'), undefined, { revision: 2 + 12_345 });
    assert.is(r.kvs[0]!.value.readUInt32BE(0), 12_344);
    assert.is(r.kvs[0]!.version, 12_346);
  } finally {
    await close(s);
  }
}));

test('an old value stays in memory until its batch is written, then comes from the backend', () => withTempDir(async (dir) => {
  const s = await open(dir);
  try {
    put(s.store, 'k', 'v2');
    put(s.store, 'k', 'v3');
    // Not committed: the record of revision 2 is only staged, so its value must still be in memory.
    let r = s.store.read().range(b('k'), undefined, { revision: 2 });
    assert.is(r.unread, 0);
    assert.is(r.kvs[0]!.value.toString(), 'v2');
    assert.is(s.store.history.unwrittenCount, 1);
    s.store.commit(1);
    await s.backend.flush();
    assert.is(s.store.history.unwrittenCount, 0);
    r = s.store.read().range(b('k'), undefined, { revision: 2 });
    assert.is(r.unread, 1, 'once written, the value left memory');
    assert.is(r.kvs[0]!.mod_revision, 2);
    assert.is(r.kvs[0]!.version, 1);
    await s.store.readValues(r.kvs, 2);
    assert.is(r.kvs[0]!.value.toString(), 'v2');
    // The latest is never unread, and the current read stays synchronous.
    r = s.store.read().range(b('k'), undefined);
    assert.is(r.unread, 0);
    assert.is(r.kvs[0]!.value.toString(), 'v3');
  } finally {
    await close(s);
  }
}));

test('reads of old values go through a bounded cache', () => withTempDir(async (dir) => {
  const cacheBytes = 64 * 1024;
  const s = await open(dir, cacheBytes);
  try {
    const value = Buffer.alloc(1000, 0x62);
    for (let i = 0; i < 500; i++) {
      value.writeUInt32BE(i, 0);
      put(s.store, 'c', value);
    }
    s.store.commit(1);
    await s.backend.flush();
    const current = s.store.currentRevision;
    let r = s.store.read().range(b('c'), undefined, { revision: current - 1 });
    assert.is(r.unread, 1, 'an old value is not in memory once written');
    assert.ok(isUnread(r.kvs[0]!));
    await s.store.readValues(r.kvs, current - 1);
    assert.is(r.kvs[0]!.value.readUInt32BE(0), 498);
    const reads = s.store.history.backendReads;
    r = s.store.read().range(b('c'), undefined, { revision: current - 1 });
    assert.is(r.unread, 0, 'the second read is a cache hit');
    assert.is(s.store.history.backendReads, reads);
    for (let rev = 2; rev < current; rev++) {
      const got = await s.store.rangeResolved(b('c'), undefined, { revision: rev });
      assert.is(got.kvs[0]!.value.readUInt32BE(0), rev - 2);
      assert.ok(s.store.history.cachedBytes <= cacheBytes, `cache at ${s.store.history.cachedBytes} B > ${cacheBytes}`);
    }
  } finally {
    await close(s);
  }
}));

test('a read that resolved its index entries before a compaction still gets its values (the pin holds the pass back)', () => withTempDir(async (dir) => {
  const s = await open(dir);
  try {
    for (let i = 0; i < 20; i++) put(s.store, 'p', `v${i}`); // revisions 2..21
    s.store.commit(1);
    await s.backend.flush();
    // The read resolves its index entry at revision 5, then (as a read spread over turns would)
    // fetches the value later; its pin is taken in the same turn as the look-up.
    const r = s.store.read().range(b('p'), undefined, { revision: 5 });
    assert.is(r.unread, 1);
    const pin = s.store.pinHistory(5);
    s.store.compact(15);
    s.store.commit(2);
    // Reads below the compacted revision that start now fail at once.
    throwsCode(() => s.store.read().range(b('p'), undefined, { revision: 5 }), 'Compacted');
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    await s.backend.drain();
    assert.ok(s.store.compaction.running, 'the pass waits for the pinned read');
    await s.store.readValues(r.kvs, 5);
    assert.is(r.kvs[0]!.value.toString(), 'v3');
    pin.release();
    await s.store.flush();
    assert.not.ok(s.store.compaction.running);
    assert.is(s.store.compaction.removedRevisions, 13, 'revisions 2..14 removed once the pin was released');
  } finally {
    await close(s);
  }
}));

/** A naive model: every revision's full state. */
type State = Map<string, { value: string; create: number; version: number; mod: number }>;

test('model-based: reads at every old revision, while compactions race reads in flight (seeded)', async () => {
  for (const seed of [1, 2, 3]) {
    await withTempDir(async (dir) => {
      const random = rng(seed);
      let applier = await openApplier(dir);
      const states: State[] = [new Map(), new Map()]; // index = revision; revision 1 is empty
      let compacted = -1;
      let applied = 0;
      const keys = ['a', 'b', 'c', 'd'];
      const expectAt = (key: string, rev: number) => {
        const e = states[rev]!.get(key);
        return e === undefined ? undefined : { key, create_revision: e.create, mod_revision: e.mod, version: e.version, value: e.value, lease: '0' };
      };
      try {
        for (let step = 0; step < 600; step++) {
          const what = random();
          const state: State = new Map(states[states.length - 1]!);
          const rev = states.length;
          if (what < 0.6) {
            const key = keys[Math.floor(random() * keys.length)]!;
            const value = `s${seed}-${step}-${'x'.repeat(Math.floor(random() * 300))}`;
            applier.apply({ id: 1, put: { key: b(key), value: b(value) } });
            const prev = state.get(key);
            state.set(key, { value, create: prev?.create ?? rev, version: (prev?.version ?? 0) + 1, mod: rev });
            states.push(state);
          } else if (what < 0.7) {
            const key = keys[Math.floor(random() * keys.length)]!;
            applier.apply({ id: 1, delete_range: { key: b(key) } });
            if (state.delete(key)) states.push(state);
          } else if (what < 0.9) {
            // Reads in flight at random old revisions, then (sometimes) a compaction above them:
            // each read resolved its index entries before the compaction, so it gets its values.
            const current = states.length - 1;
            const low = Math.max(compacted, 1);
            const reads: Array<{ rev: number; response: RangeResponse | Promise<RangeResponse> }> = [];
            for (let i = 0; i < 5; i++) {
              const at = low + Math.floor(random() * (current - low + 1));
              reads.push({ rev: at, response: applier.range({ key: b('a'), range_end: b('z'), revision: at }) });
            }
            if (random() < 0.5 && current > compacted + 1) {
              const to = compacted + 1 + Math.floor(random() * (current - compacted));
              applier.apply({ id: 1, compaction: { revision: to } });
              compacted = to;
              // Reads below it that start now fail at once, cleanly.
              if (to > 1) throwsCode(() => applier.range({ key: b('a'), range_end: b('z'), revision: to - 1 }), 'Compacted');
            }
            applier.commit(++applied);
            for (const r of reads) {
              const got = await r.response;
              const want = keys.map((k) => expectAt(k, r.rev)).filter((kv) => kv !== undefined);
              assert.equal(got.kvs.map(plain), want, `seed ${seed} step ${step}: range at ${r.rev}`);
            }
          } else if (what < 0.97) {
            applier.commit(++applied);
            await applier.flush();
          } else {
            applier.commit(++applied);
            await applier.close();
            applier = await openApplier(dir);
          }
          applier.commit(++applied);
        }
        // Finally every readable revision, one key at a time.
        await applier.flush();
        for (let rev = Math.max(compacted, 1); rev < states.length; rev++) {
          for (const key of keys) {
            const got = await applier.range({ key: b(key), revision: rev });
            assert.equal(plain(got.kvs[0]), expectAt(key, rev), `seed ${seed}: ${key} at ${rev}`);
          }
        }
      } finally {
        await applier.close();
      }
    });
  }
});

test.run();
