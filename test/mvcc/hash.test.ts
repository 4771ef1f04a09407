import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { marshalKeyValue } from '../../src/mvcc/hash.js';
import { KvStore } from '../../src/mvcc/kv-store.js';
import { crc32c } from '../../src/platform/crc32c.js';
import { silentLogger } from '../../src/platform/logger.js';
import { encode, messageType } from '../../src/proto/codec.js';
import { Backend } from '../../src/storage/backend.js';
import { SeededRandom } from '../../src/raft/seeded-random.js';
import { b, withTempDir } from './helpers.js';

async function rejectsCode(fn: () => Promise<unknown>, code: string): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.is((err as { code?: string }).code, code);
    return;
  }
  assert.unreachable(`expected KeyraftError ${code}`);
}

type Store = { backend: Backend; store: KvStore };

async function open(dir: string): Promise<Store> {
  const backend = await Backend.open(join(dir, 'db'), { logger: silentLogger });
  const store = await KvStore.open(backend, { logger: silentLogger });
  return { backend, store };
}

async function close(s: Store): Promise<void> {
  await s.store.close();
  await s.backend.close();
}

/** One write of the naive model: a put (value) or a delete (value null) of `key` at `rev`. */
interface Write { rev: number; key: string; value: string | null; create: number; version: number; lease: bigint }

/** The test's own record of every write, and etcd's HashKV rules computed over it the plain way. */
class Model {
  writes: Write[] = [];
  compacted = -1;

  visible(key: string, at: number): Write | undefined {
    let last: Write | undefined;
    for (const w of this.writes) if (w.key === key && w.rev <= at) last = w;
    return last !== undefined && last.value !== null ? last : undefined;
  }

  hash(at: number): number {
    const keys = [...new Set(this.writes.map((w) => w.key))];
    // etcd: keep = what a compaction at `at` keeps, i.e. each key's visible revision at `at`.
    const anyKept = keys.some((k) => this.visible(k, at) !== undefined);
    const keepRev = this.compacted >= 0 && !anyKept ? this.compacted : at;
    let h = crc32c(b('key'));
    const included = this.writes
      .filter((w) => w.rev <= at && (w.rev > this.compacted || this.visible(w.key, keepRev) === w))
      .sort((x, y) => x.rev - y.rev || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    let lastRev = -1;
    let sub = 0;
    for (const w of included) {
      if (w.rev !== lastRev) { lastRev = w.rev; sub = 0; }
      const revKey = Buffer.alloc(w.value === null ? 18 : 17);
      revKey.writeBigUInt64BE(BigInt(w.rev), 0);
      revKey[8] = 0x5f;
      revKey.writeBigUInt64BE(BigInt(sub++), 9);
      if (w.value === null) revKey[17] = 0x74;
      const kv = w.value === null
        ? encode(messageType('mvccpb.KeyValue'), { key: b(w.key) })
        : encode(messageType('mvccpb.KeyValue'), { key: b(w.key), create_revision: w.create, mod_revision: w.rev, version: w.version, value: b(w.value), lease: w.lease });
      h = crc32c(revKey, h);
      h = crc32c(kv, h);
    }
    return h;
  }
}

/** Applies one txn of puts/deletes (keys in key order) to the store and the model. */
function write(s: Store, model: Model, ops: Array<{ key: string; value: string | null; lease?: bigint }>): void {
  const txn = s.store.write();
  const rev = txn.startRevision + 1;
  for (const op of ops) {
    if (op.value === null) {
      if (txn.deleteRange(b(op.key), undefined) > 0) model.writes.push({ rev, key: op.key, value: null, create: 0, version: 0, lease: 0n });
    } else {
      txn.put(b(op.key), b(op.value), op.lease ?? 0n);
      const prev = model.visible(op.key, rev - 1);
      model.writes.push({ rev, key: op.key, value: op.value, create: prev?.create ?? rev, version: (prev?.version ?? 0) + 1, lease: op.lease ?? 0n });
    }
  }
  txn.end();
}

test('crc32c: the standard check value, and chaining equals one pass', () => {
  assert.is(crc32c(b('123456789')), 0xe3069283);
  assert.is(crc32c(b('')), 0);
  const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff));
  assert.is(crc32c(data.subarray(300), crc32c(data.subarray(0, 300))), crc32c(data));
});

test('marshalKeyValue writes the bytes protobufjs writes for mvccpb.KeyValue', () => {
  const type = messageType('mvccpb.KeyValue');
  const cases = [
    { key: b('foo'), create_revision: 2, mod_revision: 9, version: 3, value: b('bar'), lease: 0n },
    { key: b('k'), create_revision: 300, mod_revision: 2 ** 40, version: 1, value: Buffer.alloc(200, 7), lease: 0x694d7a3b9c6f3a0en },
    { key: b('neg'), create_revision: 5, mod_revision: 5, version: 1, value: Buffer.alloc(0), lease: -1n },
  ];
  for (const c of cases) {
    assert.equal(Buffer.from(marshalKeyValue(c.key, c.create_revision, c.mod_revision, c.version, c.value, c.lease)), Buffer.from(encode(type, c)));
  }
  assert.equal(Buffer.from(marshalKeyValue(b('t'), 0, 0, 0, Buffer.alloc(0), 0n)), Buffer.from(encode(type, { key: b('t') })));
});

test('HashKV equals the plain model of etcd rules over seeded histories, before and after compactions', () => withTempDir(async (dir) => {
  const s = await open(dir);
  const model = new Model();
  const random = new SeededRandom(12);
  const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
  try {
    let applied = 0;
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 40; i++) {
        const n = 1 + random.nextInt(3);
        const chosen = [...new Set(Array.from({ length: n }, () => keys[random.nextInt(keys.length)]!))].sort();
        write(s, model, chosen.map((key) => ({ key, value: random.nextInt(4) === 0 ? null : `v${round}.${i}`, lease: random.nextInt(5) === 0 ? BigInt(random.nextInt(1000) + 1) : 0n })));
      }
      s.store.commit(++applied);
      const current = s.store.currentRevision;
      for (const at of [current, current - 3, model.compacted + 1, Math.floor((current + model.compacted) / 2)]) {
        if (at <= model.compacted || at < 1) continue;
        const got = await s.store.hashKV(at === current ? 0 : at);
        assert.is(got.hash, model.hash(at), `round ${round} hash at ${at} (compacted ${model.compacted})`);
        assert.is(got.compactRevision, model.compacted);
        assert.is(got.currentRevision, current);
      }
      const compactAt = current - 5 - random.nextInt(10);
      if (compactAt > model.compacted) {
        s.store.compact(compactAt);
        model.compacted = compactAt;
        s.store.commit(++applied);
        // While the compaction pass runs and after: the same value.
        const during = await s.store.hashKV(0);
        await s.store.compaction.idle();
        const after = await s.store.hashKV(0);
        assert.is(during.hash, after.hash);
        assert.is(after.hash, model.hash(s.store.currentRevision));
      }
    }
    // Every key deleted: etcd's keep set at `at` is empty, so the compacted region's kept revisions count.
    write(s, model, keys.map((key) => ({ key, value: null })));
    s.store.commit(++applied);
    assert.is((await s.store.hashKV(0)).hash, model.hash(s.store.currentRevision));
  } finally {
    await close(s);
  }
}));

test('two stores fed the same writes agree; a restart keeps the value; a put changes it', () => withTempDir(async (dir) => {
  const one = await open(join(dir, '1'));
  const two = await open(join(dir, '2'));
  const model = new Model();
  const other = new Model();
  try {
    for (let i = 0; i < 200; i++) {
      const ops = [{ key: `k${i % 17}`, value: i % 11 === 0 ? null : `v${i}` }];
      write(one, model, ops);
      write(two, other, ops);
    }
    one.store.compact(150);
    two.store.compact(150);
    one.store.commit(1);
    two.store.commit(1);
    model.compacted = 150;
    const h1 = await one.store.hashKV(0);
    const h2 = await two.store.hashKV(0);
    assert.is(h1.hash, h2.hash);
    assert.is(h1.hash, model.hash(one.store.currentRevision));
    const at180 = await one.store.hashKV(180);
    assert.is(at180.hash, (await two.store.hashKV(180)).hash);
    assert.is.not(at180.hash, h1.hash);

    await one.store.flush();
    await close(one);
    const reopened = await open(join(dir, '1'));
    try {
      assert.is((await reopened.store.hashKV(0)).hash, h1.hash);
      assert.is((await reopened.store.hashKV(180)).hash, at180.hash);
      write(reopened, model, [{ key: 'k1', value: 'changed' }]);
      reopened.store.commit(2);
      const after = await reopened.store.hashKV(0);
      assert.is.not(after.hash, h1.hash);
      // The hash at the older revision does not see the new write.
      assert.is((await reopened.store.hashKV(h1.currentRevision)).hash, h1.hash);
      assert.is((await reopened.store.hashBackend()) === (await two.store.hashBackend()), false);
    } finally {
      await close(reopened);
    }
  } finally {
    await close(two);
  }
}));

test('compaction rules: a compaction changes HashKV only where a key keeps an older revision than the hashed one', () => withTempDir(async (dir) => {
  const s = await open(dir);
  const model = new Model();
  try {
    write(s, model, [{ key: 'a', value: '1' }]); // rev 2
    write(s, model, [{ key: 'b', value: '1' }]); // rev 3
    s.store.commit(1);
    const at3 = await s.store.hashKV(3);
    write(s, model, [{ key: 'a', value: '2' }]); // rev 4
    s.store.commit(2);
    const at4 = await s.store.hashKV(4);
    // Compact at 2: a@2 is what a compaction at 3 keeps of a, so HashKV(3) is unchanged; but at
    // 4, a is a@4, so a@2 (now at or below the compacted revision) leaves HashKV(4).
    s.store.compact(2);
    s.store.commit(3);
    model.compacted = 2;
    assert.is((await s.store.hashKV(3)).hash, at3.hash);
    const at4After = await s.store.hashKV(4);
    assert.is.not(at4After.hash, at4.hash);
    assert.is(at4After.hash, model.hash(4));
    // Compact at 3: b@3 is still b at 4, so it stays in: HashKV(4) unchanged.
    s.store.compact(3);
    s.store.commit(4);
    model.compacted = 3;
    assert.is((await s.store.hashKV(4)).hash, at4After.hash);
    await rejectsCode(() => s.store.hashKV(3), 'Compacted');
    await rejectsCode(() => s.store.hashKV(2), 'Compacted');
    await rejectsCode(() => s.store.hashKV(5), 'FutureRevision');
  } finally {
    await close(s);
  }
}));

test.run();
