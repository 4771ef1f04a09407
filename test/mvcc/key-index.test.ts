import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { entryKeptAt, entryLastModRevision, isUnread, KeyIndex, type IndexEntry } from '../../src/mvcc/key-index.js';
import { RecordArena } from '../../src/mvcc/record-arena.js';
import { LatestSlots } from '../../src/mvcc/latest-slots.js';
import type { KeyValue } from '../../src/proto/etcd-types.js';
import { b, rng } from './helpers.js';

const key = b('foo');

/** Builds the header comment's example: puts @1 @2, delete @3, puts @4 @5, delete @6. */
function example(): KeyIndex {
  const ki = new KeyIndex(key);
  let create = 0;
  let version = 0;
  for (const [rev, kind] of [[1, 'p'], [2, 'p'], [3, 't'], [4, 'p'], [5, 'p'], [6, 't']] as const) {
    if (kind === 't') {
      ki.tombstone({ key, create_revision: 0, mod_revision: rev, version: 0, value: b(''), lease: 0n });
      version = 0;
      continue;
    }
    if (version === 0) create = rev;
    version++;
    ki.put({ key, create_revision: create, mod_revision: rev, version, value: b(`v${rev}`), lease: 0n });
  }
  return ki;
}

const revs = (ki: KeyIndex): number[][] => ki.generations;
const at = (ki: KeyIndex, rev: number): string | undefined => {
  const kv = ki.get(rev);
  // Old revisions come without their value (it lives in the backend): name them by mod revision.
  if (kv === undefined) return undefined;
  assert.ok(isUnread(kv) || kv === ki.latest(), 'only the latest revision carries its value');
  return `r${kv.mod_revision}/c${kv.create_revision}/v${kv.version}`;
};

test('get at every revision follows generations and tombstones', () => {
  const ki = example();
  assert.equal(revs(ki), [[1, 2, 3], [4, 5, 6], []]);
  assert.is(at(ki, 0), undefined);
  assert.is(at(ki, 1), 'r1/c1/v1');
  assert.is(at(ki, 2), 'r2/c1/v2');
  assert.is(at(ki, 3), undefined);
  assert.is(at(ki, 4), 'r4/c4/v1');
  assert.is(at(ki, 5), 'r5/c4/v2');
  assert.is(at(ki, 6), undefined);
  assert.is(at(ki, 100), undefined);
  assert.is(ki.latest(), undefined);
});

function compacted(rev: number): { ki: KeyIndex; removed: number[] } {
  const ki = example();
  const removed: number[] = [];
  ki.compact(rev, removed);
  return { ki, removed: removed.sort((x, y) => x - y) };
}

test('compaction follows etcd key_index rules (the header example)', () => {
  assert.equal(revs(compacted(1).ki), [[1, 2, 3], [4, 5, 6], []]);
  let r = compacted(2);
  assert.equal(revs(r.ki), [[2, 3], [4, 5, 6], []]);
  assert.equal(r.removed, [1]);
  r = compacted(3); // tombstone at the compact revision: the generation goes
  assert.equal(revs(r.ki), [[4, 5, 6], []]);
  assert.equal(r.removed, [1, 2, 3]);
  r = compacted(4);
  assert.equal(revs(r.ki), [[4, 5, 6], []]);
  r = compacted(5);
  assert.equal(revs(r.ki), [[5, 6], []]);
  assert.equal(r.removed, [1, 2, 3, 4]);
  assert.is(at(r.ki, 5), 'r5/c4/v2');
  r = compacted(6);
  assert.equal(revs(r.ki), [[]]);
  assert.ok(r.ki.isEmpty());
  assert.equal(r.removed, [1, 2, 3, 4, 5, 6]);
  r = compacted(100);
  assert.ok(r.ki.isEmpty());
});

test('compaction never changes what reads at or after the compact revision see', () => {
  for (let c = 0; c <= 7; c++) {
    const { ki } = compacted(c);
    for (let rev = c; rev <= 8; rev++) assert.is(at(ki, rev), at(example(), rev), `compact ${c}, read ${rev}`);
  }
});

test('restore rebuilds from records, skipping a tombstone whose generation is gone', () => {
  const ki = new KeyIndex(key);
  ki.restore({ key, create_revision: 0, mod_revision: 3, version: 0, value: b(''), lease: 0n });
  assert.ok(ki.isEmpty());
  ki.restore({ key, create_revision: 4, mod_revision: 5, version: 2, value: b('v5'), lease: 0n });
  ki.restore({ key, create_revision: 0, mod_revision: 6, version: 0, value: b(''), lease: 0n });
  assert.equal(revs(ki), [[5, 6], []]);
  assert.is(at(ki, 5), 'r5/c4/v2');
});

test('each old revision keeps its own lease, version and create revision through compaction (reference model, seeded)', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const random = rng(seed);
    const ki = new KeyIndex(key);
    /** rev -> what get(rev) must answer. */
    const model = new Map<number, { create: number; version: number; lease: bigint } | undefined>();
    let live: { create: number; version: number; lease: bigint } | undefined;
    let rev = 1;
    for (let step = 0; step < 60; step++) {
      rev += 1 + Math.floor(random() * 2);
      if (live !== undefined && random() < 0.2) {
        ki.tombstone({ key, create_revision: 0, mod_revision: rev, version: 0, value: b(''), lease: 0n });
        live = undefined;
      } else {
        const lease = random() < 0.3 ? BigInt(1 + Math.floor(random() * 5)) : 0n;
        live = { create: live?.create ?? rev, version: (live?.version ?? 0) + 1, lease };
        ki.put({ key, create_revision: live.create, mod_revision: rev, version: live.version, value: b(`v${rev}`), lease });
      }
      model.set(rev, live);
    }
    const expected = (r: number) => {
      let m: { create: number; version: number; lease: bigint } | undefined;
      let modRev = 0;
      for (const [at, v] of model) if (at <= r) { m = v; modRev = at; }
      return m === undefined ? undefined : `${modRev}/c${m.create}/v${m.version}/l${m.lease}`;
    };
    const got = (r: number) => {
      const kv = ki.get(r);
      return kv === undefined ? undefined : `${kv.mod_revision}/c${kv.create_revision}/v${kv.version}/l${kv.lease}`;
    };
    for (const compactAt of [0, Math.floor(rev / 3), Math.floor(rev / 2), rev - 5]) {
      ki.compact(compactAt, []);
      for (let r = compactAt; r <= rev + 1; r++) assert.is(got(r), expected(r), `seed ${seed}: compact ${compactAt}, read ${r}`);
      // collectBetween hands out the same descriptions as get.
      const since: KeyValue[] = [];
      ki.collectBetween(compactAt + 1, rev, since);
      for (const kv of since) {
        if (kv.create_revision === 0) assert.is(expected(kv.mod_revision), undefined, `seed ${seed}: tombstone at ${kv.mod_revision}`);
        else assert.is(`${kv.mod_revision}/c${kv.create_revision}/v${kv.version}/l${kv.lease}`, expected(kv.mod_revision), `seed ${seed}: collected ${kv.mod_revision}`);
      }
    }
  }
});

test('out-of-order writes are refused by assertion', () => {
  const ki = example();
  assert.throws(() => ki.put({ key, create_revision: 7, mod_revision: 6, version: 1, value: b(''), lease: 0n }));
  assert.throws(() => ki.tombstone({ key, create_revision: 0, mod_revision: 9, version: 0, value: b(''), lease: 0n }));
});

// A key with one revision nobody has read is held in slot form: its index entry is a slot of
// the store's LatestSlots (key-index.ts). The questions every key is asked (compaction, HashKV,
// watch catch-up) are answered from the slot; the KeyIndex made from it answers as a key built
// by put, and the slot is released.
test('slot form: entries answer from the slot; the KeyIndex made from it equals the same key built by put', () => {
  const chunk = Buffer.from('..hello..');
  const table = new LatestSlots(new RecordArena());
  const c = table.addChunk(chunk);
  const plain = new KeyIndex(b('foo'));
  plain.put({ key: b('foo'), create_revision: 3, mod_revision: 7, version: 4, value: b('hello'), lease: 5n });
  const foo: IndexEntry = table.add(7, 3, 4, 5n, c, 2, 5);
  const bar: IndexEntry = table.add(8, 8, 1, 0n, c, 0, 0);
  table.seal();
  assert.is(table.live, 2);
  assert.is(entryLastModRevision(foo, table), 7);
  assert.is(entryKeptAt(foo, table, 6), 0);
  assert.is(entryKeptAt(foo, table, 7), 7);
  assert.is(entryKeptAt(foo, table, 100), plain.keptAt(100));
  assert.is(entryLastModRevision(plain, table), 7);
  const ki = KeyIndex.fromSlot('foo', table, foo);
  assert.is(table.live, 1);
  const kv = ki.latest()!;
  assert.equal({ ...kv, key: kv.key.toString(), value: kv.value.toString() }, { ...plain.latest()!, key: 'foo', value: 'hello' });
  assert.ok(Object.isFrozen(kv));
  assert.is(kv.value.buffer, chunk.buffer, 'the value stays where it was, no copy');
  assert.equal(ki.generations, plain.generations);
  assert.equal(ki.get(7), plain.get(7));
  assert.is(ki.revisionCount(), 1);
  // A KeyIndex made from a slot goes on as any key.
  const other = KeyIndex.fromSlot('bar', table, bar as number);
  other.tombstone({ key: other.key, create_revision: 0, mod_revision: 9, version: 0, value: b(''), lease: 0n });
  assert.equal(other.generations, [[8, 9], []]);
  assert.is(other.get(8)!.version, 1);
  assert.is(table.live, 0);
});

test('LatestSlots at run time: one chunk per memory, slots and chunks reused, a chunk let go with its last slot', () => {
  const arena = new RecordArena();
  const table = new LatestSlots(arena);
  table.seal(); // as after start-up: slots are added at run time only
  const memory = Buffer.allocUnsafeSlow(64).fill(0x61);
  const slots: number[] = [];
  for (let i = 0; i < 4; i++) slots.push(table.addValue(10 + i, 10 + i, 1, 0n, memory.subarray(i * 8, i * 8 + 8)));
  assert.is(table.chunksHeld, 1, 'four values in one memory: one chunk');
  const own = Buffer.allocUnsafeSlow(3).fill(0x62);
  const big = table.addValue(20, 20, 1, 0n, own);
  assert.is(table.chunksHeld, 2);
  assert.is(KeyIndex.fromSlot('big', table, big).latest()!.value.toString(), 'bbb');
  assert.is(table.chunksHeld, 1, 'the chunk of a value alone goes with its slot');
  for (let i = 0; i < 3; i++) assert.is(KeyIndex.fromSlot(`k${i}`, table, slots[i]!).latest()!.mod_revision, 10 + i);
  assert.is(table.live, 1);
  const made = table.made;
  const again = table.addValue(30, 30, 1, 0n, memory.subarray(60, 64));
  assert.is(table.made, made, 'a released slot is reused');
  assert.is(KeyIndex.fromSlot('again', table, again).latest()!.value.toString(), 'aaaa');
  const last = KeyIndex.fromSlot('k3', table, slots[3]!).latest()!;
  assert.equal([last.key.toString(), last.value.toString(), last.create_revision, last.version], ['k3', 'aaaaaaaa', 13, 1]);
  assert.is(table.live, 0);
  assert.is(table.chunksHeld, 0);
  // After every slot is released the table still takes values.
  const later = KeyIndex.fromSlot('later', table, table.addValue(40, 40, 1, 5n, own)).latest()!;
  assert.equal([later.value.toString(), later.lease], ['bbb', 5n]);
});

test('LatestSlots.relocate copies the values of the chunks it is told to empty into the arena, and they read back the same', () => {
  const table = new LatestSlots(new RecordArena());
  const scan = Buffer.from('xxoneyytwozz');
  const c = table.addChunk(scan);
  const one = table.add(5, 5, 1, 0n, c, 2, 3);
  const two = table.add(6, 6, 1, 3n, c, 7, 3);
  assert.is(table.relocate((memory) => memory === scan.buffer), 6);
  table.seal();
  scan.fill(0); // the scan's chunk is no longer read
  const a = KeyIndex.fromSlot('a', table, one).latest()!;
  const b = KeyIndex.fromSlot('b', table, two).latest()!;
  assert.equal([a.value.toString(), b.value.toString(), b.lease], ['one', 'two', 3n]);
  assert.is(a.value.buffer, b.value.buffer, 'both copies in one arena chunk');
  assert.is(table.chunksHeld, 0);
});

test.run();
