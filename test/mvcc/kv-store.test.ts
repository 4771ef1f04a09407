import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KvStore } from '../../src/mvcc/kv-store.js';
import { encodeUint64 } from '../../src/mvcc/revision.js';
import { silentLogger } from '../../src/platform/logger.js';
import type { KeyValue } from '../../src/proto/etcd-types.js';
import { Backend, Bucket } from '../../src/storage/backend.js';
import { b, plain, throwsCode, withTempDir } from './helpers.js';

/**
 * `thread`: how start-up scans the backend, in chunks of 8 KiB (many chunks, even for small
 * tests): one worker thread, two reading halves of the bucket at once ('workers'), or inline.
 */
async function open(dir: string, thread?: 'worker' | 'workers' | 'inline'): Promise<{ backend: Backend; store: KvStore }> {
  const backend = await Backend.open(join(dir, 'db'), { logger: silentLogger });
  const recoveryScan = thread === undefined ? undefined
    : thread === 'inline' ? { thread, chunkBytes: 8192 } : { thread: 'worker' as const, chunkBytes: 8192, workers: thread === 'workers' ? 2 : 1 };
  const store = await KvStore.open(backend, { logger: silentLogger, recoveryScan });
  return { backend, store };
}

async function close(s: { backend: Backend; store: KvStore }): Promise<void> {
  await s.store.close();
  await s.backend.close();
}

function put(store: KvStore, key: string, value: string): number {
  const txn = store.write();
  txn.put(b(key), b(value), 0n);
  return txn.end();
}

function del(store: KvStore, key: string, end?: string): number {
  const txn = store.write();
  const n = txn.deleteRange(b(key), end === undefined ? undefined : b(end));
  txn.end();
  return n;
}

const everything = async (store: KvStore, revision = 0) =>
  (await store.rangeResolved(b('\0'), b('\0'), { revision })).kvs.map(plain);

async function recordCount(backend: Backend): Promise<number> {
  return backend.scan(Bucket.key, () => {});
}

test('restart reproduces every revision; uncommitted writes are not on disk', () => withTempDir(async (dir) => {
  let s = await open(dir);
  for (let i = 0; i < 50; i++) put(s.store, `k${i % 7}`, `v${i}`);
  del(s.store, 'k1');
  del(s.store, 'k2', 'k5');
  put(s.store, 'k3', 'again');
  const txn = s.store.write();
  txn.put(b('t1'), b('x'), 0n);
  txn.put(b('t2'), b('y'), 0n);
  txn.deleteRange(b('k6'), undefined);
  txn.end();
  s.store.commit(10);
  const revision = s.store.currentRevision;
  const history: unknown[] = [];
  for (let rev = 1; rev <= revision; rev++) history.push(await everything(s.store, rev));
  // Written after the last commit: a crash must lose these, and the applied index with them.
  put(s.store, 'lost', 'x');
  await s.backend.flush();
  await close(s);

  s = await open(dir);
  try {
    assert.is(s.store.appliedIndex, 10);
    assert.is(s.store.currentRevision, revision);
    for (let rev = 1; rev <= revision; rev++) assert.equal(await everything(s.store, rev), history[rev - 1], `revision ${rev}`);
    assert.equal((await s.store.rangeResolved(b('lost'), undefined)).count, 0);
    throwsCode(() => s.store.read().range(b('k'), undefined, { revision: revision + 1 }), 'FutureRevision');
  } finally {
    await close(s);
  }
}));

test('many commits without waiting land in order; flush makes them durable', () => withTempDir(async (dir) => {
  let s = await open(dir);
  for (let i = 1; i <= 2000; i++) {
    put(s.store, `key${i % 100}`, `value${i}`);
    s.store.commit(i);
  }
  await s.store.flush();
  await close(s);
  s = await open(dir);
  try {
    assert.is(s.store.appliedIndex, 2000);
    assert.is(s.store.currentRevision, 2001);
    assert.is(plain((await s.store.rangeResolved(b('key0'), undefined)).kvs[0])!.hasOwnProperty('value'), true);
    assert.equal(plain((await s.store.rangeResolved(b('key0'), undefined)).kvs[0]), {
      key: 'key0', create_revision: 101, mod_revision: 2001, version: 20, value: 'value2000', lease: '0',
    });
    assert.is(await recordCount(s.backend), 2000);
  } finally {
    await close(s);
  }
}));

test('physical compaction removes exactly the unreadable records from the backend', () => withTempDir(async (dir) => {
  let s = await open(dir);
  for (let i = 0; i < 30; i++) put(s.store, `k${i % 3}`, `v${i}`); // revisions 2..31
  del(s.store, 'k0'); // 32
  put(s.store, 'z', 'z'); // 33
  s.store.commit(1);
  const before = await everything(s.store, 32);
  s.store.compact(32);
  throwsCode(() => s.store.read().range(b('k1'), undefined, { revision: 31 }), 'Compacted');
  s.store.commit(2);
  await s.store.flush();
  // Left: k1@30, k2@31 (each key's latest at 32), z@33; k0 died at 32 and is gone entirely.
  assert.is(await recordCount(s.backend), 3);
  assert.is(s.store.keyCount, 3);
  assert.equal(await everything(s.store, 32), before);
  await close(s);
  s = await open(dir);
  try {
    assert.is(s.store.compactedRevision, 32);
    assert.equal(await everything(s.store, 32), before);
    assert.equal((await everything(s.store)).map((kv) => (kv as { key: string }).key), ['k1', 'k2', 'z']);
  } finally {
    await close(s);
  }
}));

test('a compaction interrupted by a crash is finished at start-up', () => withTempDir(async (dir) => {
  let s = await open(dir);
  for (let i = 0; i < 40; i++) put(s.store, `k${i % 4}`, `v${i}`); // revisions 2..41
  del(s.store, 'k3'); // 42
  s.store.commit(5);
  await s.store.flush();
  const at42 = await everything(s.store, 42);
  // The crash: the meta naming compacted revision 42 reached disk, none of the deletes did.
  const meta = Buffer.concat([encodeUint64(5), encodeUint64(42), encodeUint64(42 + 1)]);
  s.backend.put(Bucket.meta, Buffer.from('mvcc', 'ascii'), meta);
  s.backend.commit();
  await s.backend.flush();
  await close(s);
  s = await open(dir);
  try {
    assert.is(s.store.compactedRevision, 42);
    throwsCode(() => s.store.read().range(b('k0'), undefined, { revision: 41 }), 'Compacted');
    assert.equal(await everything(s.store, 42), at42);
    await s.store.flush();
    assert.is(await recordCount(s.backend), 3); // k0, k1, k2 latest; k3 gone
    assert.is(s.store.keyCount, 3);
  } finally {
    await close(s);
  }
}));

test('background compaction over many keys runs in chunks while writes continue', () => withTempDir(async (dir) => {
  const s = await open(dir);
  try {
    for (let i = 0; i < 25_000; i++) put(s.store, `key${String(i).padStart(6, '0')}`, 'a');
    for (let i = 0; i < 25_000; i += 2) put(s.store, `key${String(i).padStart(6, '0')}`, 'b');
    s.store.commit(1);
    const compactAt = s.store.currentRevision;
    s.store.compact(compactAt);
    s.store.commit(2);
    assert.ok(s.store.compaction.running);
    // Writes between chunks: newer than the compact revision, never touched by the pass.
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(s.store.compaction.running, 'still mid-pass');
    // Mid-pass reads at and after the compact revision are unaffected.
    assert.is((await s.store.rangeResolved(b('key024998'), undefined, { revision: compactAt })).kvs[0]!.value.toString(), 'b');
    assert.is((await s.store.rangeResolved(b('key'), b('kez'), { revision: compactAt })).count, 25_000);
    put(s.store, 'key000000', 'c');
    del(s.store, 'key000001');
    s.store.commit(3);
    await s.store.flush();
    assert.not.ok(s.store.compaction.running);
    assert.is(s.store.compaction.removedRevisions, 12_500);
    assert.is(await recordCount(s.backend), 25_000 + 2);
    assert.is((await s.store.rangeResolved(b('key000000'), undefined, { revision: compactAt })).kvs[0]!.value.toString(), 'b');
    assert.is((await s.store.rangeResolved(b('key000000'), undefined)).kvs[0]!.value.toString(), 'c');
    assert.is((await s.store.rangeResolved(b('key000001'), undefined)).count, 0);
    assert.is((await s.store.rangeResolved(b('key'), b('kez'))).count, 24_999);
  } finally {
    await close(s);
  }
}));

test('the change listener sees each revision once, in op order, tombstones with create_revision 0', () => withTempDir(async (dir) => {
  const s = await open(dir);
  try {
    const seen: Array<{ revision: number; changes: unknown[] }> = [];
    s.store.onChanges((changes: readonly KeyValue[], revision: number) => seen.push({ revision, changes: changes.map(plain) }));
    put(s.store, 'b', '1');
    const txn = s.store.write();
    txn.put(b('c'), b('2'), 0n);
    txn.deleteRange(b('b'), undefined);
    txn.put(b('a'), b('3'), 0n);
    txn.end();
    del(s.store, 'nothing');
    assert.equal(seen, [
      { revision: 2, changes: [{ key: 'b', create_revision: 2, mod_revision: 2, version: 1, value: '1', lease: '0' }] },
      { revision: 3, changes: [
        { key: 'c', create_revision: 3, mod_revision: 3, version: 1, value: '2', lease: '0' },
        { key: 'b', create_revision: 0, mod_revision: 3, version: 0, value: '', lease: '0' },
        { key: 'a', create_revision: 3, mod_revision: 3, version: 1, value: '3', lease: '0' },
      ] },
    ]);
  } finally {
    await close(s);
  }
}));

test('stored values do not alias request buffers', () => withTempDir(async (dir) => {
  const s = await open(dir);
  try {
    const key = b('k');
    const value = b('hello');
    const txn = s.store.write();
    txn.put(key, value, 0n);
    txn.end();
    key.write('x');
    value.write('HELLO');
    assert.equal(plain((await s.store.rangeResolved(b('k'), undefined)).kvs[0])!, { key: 'k', create_revision: 2, mod_revision: 2, version: 1, value: 'hello', lease: '0' });
  } finally {
    await close(s);
  }
}));


// Every key a put creates waits in slot form (latest-slots.ts) until something reads it: reads,
// history, watch catch-up and later writes must see exactly what was put, for small values (in
// the arena's chunks), large ones (their own memory), empty ones and values with a lease.
test('keys created by puts read back exactly: latest, at a revision, as history and when written again', () => withTempDir(async (dir) => {
  const s = await open(dir);
  try {
    const big = 'x'.repeat(5000);
    const txn = s.store.write();
    txn.put(b('a'), b('one'), 0n);
    txn.put(b('b'), b(big), 0n);
    txn.put(b('c'), b(''), 0n);
    txn.put(b('d'), b('leased'), 77n);
    txn.end(); // revision 2
    for (let i = 0; i < 100; i++) put(s.store, `many/${i}`, `v${i}`); // revisions 3..102
    const history = await s.store.changesSince(b('a'), b('e'), 2);
    const brief = (kv: KeyValue) => [kv.key.toString(), kv.value.length, kv.version, kv.lease];
    assert.equal(history.map(brief), [['a', 3, 1, 0n], ['b', 5000, 1, 0n], ['c', 0, 1, 0n], ['d', 6, 1, 77n]]);
    assert.is(history[1]!.value.toString(), big);
    assert.equal((await s.store.rangeResolved(b('many/42'), undefined)).kvs.map(plain), [{ key: 'many/42', create_revision: 45, mod_revision: 45, version: 1, value: 'v42', lease: '0' }]);
    put(s.store, 'a', 'two'); // revision 103: the slot's KeyValue becomes history
    const prev = s.store.write();
    prev.deleteRange(b('b'), undefined);
    prev.end(); // revision 104
    assert.equal((await s.store.rangeResolved(b('a'), b('e'), { revision: 2 })).kvs.map(brief), history.map(brief));
    assert.equal((await s.store.rangeResolved(b('a'), undefined)).kvs.map(plain), [{ key: 'a', create_revision: 2, mod_revision: 103, version: 2, value: 'two', lease: '0' }]);
    assert.equal((await s.store.rangeResolved(b('b'), undefined)).kvs, []);
    assert.equal((await s.store.rangeResolved(b('many/'), b('many0'), { countOnly: true })).count, 100);
    assert.equal((await s.store.rangeResolved(b('a'), b('e'))).kvs.map(brief), [['a', 3, 2, 0n], ['c', 0, 1, 0n], ['d', 6, 1, 77n]]);
  } finally {
    await close(s);
  }
}));

test('changesSince returns history in revision order for a key, a range, and refuses compacted revisions', () => withTempDir(async (dir) => {
  const s = await open(dir);
  try {
    put(s.store, 'a', '1'); // 2
    put(s.store, 'b', '1'); // 3
    put(s.store, 'a', '2'); // 4
    del(s.store, 'a'); // 5
    put(s.store, 'a', '3'); // 6
    put(s.store, 'c', '1'); // 7
    const txn = s.store.write(); // 8: two keys in one revision
    txn.put(b('c'), b('2'), 0n);
    txn.put(b('b'), b('2'), 0n);
    txn.end();
    const brief = (kvs: KeyValue[]) => kvs.map((kv) => `${kv.key}@${kv.mod_revision}${kv.create_revision === 0 ? 'x' : ''}`);
    assert.equal(brief(await s.store.changesSince(b('a'), undefined, 0)), ['a@2', 'a@4', 'a@5x', 'a@6']);
    assert.equal(brief(await s.store.changesSince(b('a'), undefined, 5)), ['a@5x', 'a@6']);
    assert.equal(brief(await s.store.changesSince(b('a'), b('c'), 4)), ['a@4', 'a@5x', 'a@6', 'b@8']);
    assert.equal(brief(await s.store.changesSince(b('\0'), b('\0'), 7)), ['c@7', 'b@8', 'c@8'].sort((x, y) => Number(x.split('@')[1]) - Number(y.split('@')[1]) || x.localeCompare(y)));
    assert.equal(await s.store.changesSince(b('a'), b('\0'), 9), []);
    throwsCode(() => s.store.changesSince(b('a'), undefined, 10), 'FutureRevision');
    s.store.compact(5);
    throwsCode(() => s.store.changesSince(b('a'), undefined, 4), 'Compacted');
    assert.equal(brief(await s.store.changesSince(b('a'), undefined, 5)), ['a@5x', 'a@6']);
  } finally {
    await close(s);
  }
}));

// Start-up keeps recovered values as views of the scan's chunks, and copies the survivors out of
// chunks that later records mostly replaced. Both scan paths (a worker thread for a large
// backend, inline for a small one) must give values that stay correct after the restart, through
// later writes and compactions: a chunk reused or released while a value still viewed it would
// show up here as a changed value.
for (const thread of ['worker', 'workers', 'inline'] as const) {
  test(`restart with much history (${thread} scan): latest values and history as before, and they survive later writes and compactions`, () => withTempDir(async (dir) => {
    const keys = 400;
    const rounds = 12;
    const valueOf = (k: number, round: number) => `value-${k}-${round}-`.padEnd(96 + (k % 7) * 13, String.fromCharCode(97 + ((k + round) % 26)));
    let s = await open(dir);
    const latest = new Map<string, string>();
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < keys; k++) {
        // Every fifth key is deleted now and then: tombstones end generations in the history.
        if (k % 5 === 0 && round % 4 === 3) {
          del(s.store, `key-${k}`);
          latest.delete(`key-${k}`);
          continue;
        }
        put(s.store, `key-${k}`, valueOf(k, round));
        latest.set(`key-${k}`, valueOf(k, round));
      }
      s.store.commit(round + 1);
    }
    // A store that never saw history: its values stay where the scan put them.
    const revision = s.store.currentRevision;
    const atRevisions = [1, keys, Math.floor(revision / 2), revision - 1, revision];
    const before = new Map<number, unknown>();
    for (const rev of atRevisions) before.set(rev, await everything(s.store, rev));
    await s.backend.flush();
    await close(s);

    s = await open(dir, thread);
    try {
      assert.is(s.store.currentRevision, revision);
      assert.is(s.store.recovered.records, revision - 1);
      // Most of what was read was replaced by later records: the survivors were copied out. (Read
      // in two parts, the last round's records start a chunk of their own at the cut: that
      // layout may leave nothing worth moving.)
      assert.ok(s.store.recovered.replacedBytes > s.store.recovered.valueBytes / 2, JSON.stringify(s.store.recovered));
      if (thread === 'workers') assert.is(s.backend.lastScanParts, 2);
      else assert.ok(s.store.recovered.relocatedBytes > 0, JSON.stringify(s.store.recovered));
      for (const rev of atRevisions) assert.equal(await everything(s.store, rev), before.get(rev), `revision ${rev}`);
      // Later writes to half the keys, a compaction of everything older, more writes: the values
      // of the keys not written since the restart are still the recovered ones.
      for (let k = 0; k < keys; k += 2) {
        put(s.store, `key-${k}`, `after-${k}`);
        latest.set(`key-${k}`, `after-${k}`);
      }
      s.store.commit(rounds + 1);
      s.store.compact(s.store.currentRevision);
      s.store.commit(rounds + 2);
      await s.store.flush();
      for (let k = 1; k < keys; k += 4) {
        put(s.store, `key-${k}`, `later-${k}`);
        latest.set(`key-${k}`, `later-${k}`);
      }
      s.store.commit(rounds + 3);
      const got = new Map((await everything(s.store)).map((kv) => [(kv as { key: string }).key, (kv as { value: string }).value]));
      assert.equal(got, latest);
    } finally {
      await close(s);
    }
    // And once more from disk: what the restarted store wrote reads back the same.
    s = await open(dir, thread);
    try {
      const got = new Map((await everything(s.store)).map((kv) => [(kv as { key: string }).key, (kv as { value: string }).value]));
      assert.equal(got, latest);
    } finally {
      await close(s);
    }
  }));
}

test('restart without history keeps every value where the scan put it (nothing to relocate)', () => withTempDir(async (dir) => {
  let s = await open(dir);
  for (let k = 0; k < 500; k++) put(s.store, `key-${k}`, `value-${k}`.repeat(10));
  s.store.commit(1);
  const before = await everything(s.store);
  await s.backend.flush();
  await close(s);
  for (const thread of ['worker', 'workers', 'inline'] as const) {
    s = await open(dir, thread);
    try {
      assert.equal(s.store.recovered, { records: 500, imageRecords: 0, valueBytes: s.store.recovered.valueBytes, replacedBytes: 0, relocatedBytes: 0 });
      assert.equal(await everything(s.store), before);
    } finally {
      await close(s);
    }
  }
}));

/** A store that writes its history image after every 50 operations not covered. */
async function openImaged(dir: string): Promise<{ backend: Backend; store: KvStore }> {
  const backend = await Backend.open(join(dir, 'db'), { logger: silentLogger });
  const store = await KvStore.open(backend, { logger: silentLogger, historyImage: { recordsMin: 50 } });
  return { backend, store };
}

test('restart from the history image: the same store; a damaged image falls back to LevelDB; a compaction since makes it unused', () => withTempDir(async (dir) => {
  let s = await openImaged(dir);
  for (let i = 0; i < 400; i++) put(s.store, `k${i % 60}`, `v${i}`);
  del(s.store, 'k1', 'k3');
  s.store.commit(1);
  await s.store.historyImageSettled();
  // Written after the image: read from LevelDB above the image's revision.
  put(s.store, 'after', 'image');
  del(s.store, 'k10');
  s.store.commit(2);
  const revision = s.store.currentRevision;
  const history = async (store: KvStore) => Promise.all([1, 100, 250, 399, revision - 1, revision].map((rev) => everything(store, rev)));
  const expected = await history(s.store);
  await s.backend.drain();
  const records = await recordCount(s.backend);
  await close(s);

  s = await openImaged(dir);
  assert.ok(s.store.recovered.imageRecords >= 300 && s.store.recovered.imageRecords < records, `records from the image: ${s.store.recovered.imageRecords}`);
  assert.is(s.store.recovered.records, records);
  assert.equal(await history(s.store), expected);
  await close(s);

  // One flipped byte in the middle of the image: LevelDB alone, the same store.
  const path = join(dir, 'db', 'KEYRAFT-BUCKET-IMAGE');
  const bytes = await readFile(path);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x40;
  await writeFile(path, bytes);
  s = await openImaged(dir);
  assert.is(s.store.recovered.imageRecords, 0);
  assert.equal(await history(s.store), expected);

  // A compaction: the image taken before it is not used (it would bring k10's older revisions back).
  s.store.compact(300);
  s.store.commit(3);
  await s.store.flush();
  await close(s);
  s = await open(dir);
  try {
    assert.is(s.store.recovered.imageRecords, 0);
    assert.equal(await everything(s.store), expected[expected.length - 1]);
  } finally {
    await close(s);
  }
}));

test.run();
