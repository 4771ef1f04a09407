/**
 * The bbolt writer and reader (src/storage/bbolt): a seeded round trip through every page shape
 * (multi-level branch trees, overflow pages, empty buckets), and both against real etcd 3.4 files:
 * our reader on a snapshot etcd wrote (same numbers as `etcdctl snapshot status`), and our
 * writer's file checked by etcdctl (whose status runs bbolt's own consistency check, tx.Check).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { BboltReader } from '../../src/storage/bbolt/bbolt-reader.js';
import { BboltWriter } from '../../src/storage/bbolt/bbolt-writer.js';
import { BboltFormatError } from '../../src/storage/bbolt/bbolt-format.js';
import { checkSnapshotTrailer, SnapshotFileError } from '../../src/storage/bbolt/snapshot-trailer.js';
import { etcdSnapshotStatus } from '../../src/server/etcd-snapshot-status.js';
import { crc32c } from '../../src/platform/crc32c.js';
import { needEtcd } from '../etcd-binaries.js';
import { rng } from '../seeded-random.js';
import { EtcdFixture } from '../cli/etcd-fixture.js';
import { runCommand } from '../integration/harness.js';
import { EtcdClient } from '../../src/cli/ctl-client.js';

const etcd = needEtcd('storage/bbolt', ['etcd', 'etcdctl']);

type Buckets = Map<string, Array<[Buffer, Buffer]>>;

/** Seeded buckets: sorted unique keys, values from empty to several pages. */
function seededBuckets(seed: number): Buckets {
  const random = rng(seed);
  const out: Buckets = new Map();
  // Not named "key": etcdctl's status reads that bucket's keys as revisions.
  const sizes: Record<string, number> = { kv: 20_000, meta: 3, empty: 0, big: 40, lease: 300 };
  for (const [name, count] of Object.entries(sizes)) {
    const keys = new Map<string, Buffer>();
    while (keys.size < count) {
      const k = Buffer.alloc(1 + Math.floor(random() * 40));
      for (let i = 0; i < k.length; i++) k[i] = Math.floor(random() * 256);
      keys.set(k.toString('hex'), k);
    }
    const pairs: Array<[Buffer, Buffer]> = [...keys.values()].sort(Buffer.compare).map((k) => {
      const length = name === 'big' ? Math.floor(random() * 20_000) : Math.floor(random() * 300);
      const v = Buffer.alloc(length);
      for (let i = 0; i < v.length; i++) v[i] = Math.floor(random() * 256);
      return [k, v];
    });
    out.set(name, pairs);
  }
  return out;
}

async function writeBuckets(path: string, buckets: Buckets): Promise<number> {
  const w = await BboltWriter.create(path);
  // Buckets in a non-sorted order: the writer sorts the root bucket itself.
  for (const [name, pairs] of buckets) {
    w.beginBucket(Buffer.from(name));
    for (const [k, v] of pairs) {
      const pending = w.put(k, v);
      if (pending) await pending;
    }
    await w.endBucket();
  }
  return (await w.finish()).sizeBytes;
}

async function readBuckets(path: string, sizeBytes?: number): Promise<Buckets> {
  const r = await BboltReader.open(path, sizeBytes);
  const out: Buckets = new Map();
  try {
    for (const b of await r.buckets()) {
      const pairs: Array<[Buffer, Buffer]> = [];
      for await (const batch of r.entries(b)) for (const e of batch) pairs.push([e.key, e.value]);
      out.set(b.name.toString(), pairs);
    }
  } finally {
    await r.close();
  }
  return out;
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-bbolt-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('crc32c check value', () => {
  assert.is(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.is(crc32c(Buffer.from('56789'), crc32c(Buffer.from('1234'))), 0xe3069283);
});

test('round trip: every pair of every bucket comes back in order, through branch levels and overflow pages', () => withDir(async (dir) => {
  const buckets = seededBuckets(7);
  const path = join(dir, 'db');
  const size = await writeBuckets(path, buckets);
  assert.is((await readFile(path)).length, size);
  const back = await readBuckets(path);
  assert.equal([...back.keys()], [...buckets.keys()].sort());
  for (const [name, pairs] of buckets) {
    const got = back.get(name)!;
    assert.is(got.length, pairs.length, `bucket ${name}`);
    for (let i = 0; i < pairs.length; i++) {
      if (!got[i]![0].equals(pairs[i]![0]) || !got[i]![1].equals(pairs[i]![1])) assert.unreachable(`bucket ${name} pair ${i} differs`);
    }
  }
  // 20k keys of up to 40 bytes fill hundreds of leaves: the key bucket needs a branch level.
  const r = await BboltReader.open(path);
  const key = (await r.buckets()).find((b) => b.name.toString() === 'kv')!;
  const rootPage = Buffer.alloc(16);
  const fh = await import('node:fs/promises').then((fs) => fs.open(path, 'r'));
  await fh.read(rootPage, 0, 16, key.root * r.meta.pageSize);
  await fh.close();
  await r.close();
  assert.is(rootPage.readUInt16LE(8), 0x01, 'the kv bucket root is a branch page');
}));

test('reader: a truncated file, a file that is not bbolt, a page id out of range', () => withDir(async (dir) => {
  const path = join(dir, 'db');
  await writeBuckets(path, seededBuckets(3));
  const whole = await readFile(path);
  const cut = join(dir, 'cut');
  await writeFile(cut, whole.subarray(0, whole.length / 2));
  const err1 = await BboltReader.open(cut).then(() => null, (e: unknown) => e);
  assert.instance(err1, BboltFormatError);
  assert.is((err1 as BboltFormatError).code, 'Truncated');
  const junk = join(dir, 'junk');
  await writeFile(junk, Buffer.alloc(16384, 0x5a));
  const err2 = await BboltReader.open(junk).then(() => null, (e: unknown) => e);
  assert.is((err2 as BboltFormatError).code, 'NotBbolt');
  assert.match((err2 as Error).message, /not a bbolt database/);
  // A branch element pointing past the high-water mark: found while walking, not trusted.
  const bad = Buffer.from(whole);
  const r = await BboltReader.open(path);
  const key = (await r.buckets()).find((b) => b.name.toString() === 'kv')!;
  const at = key.root * r.meta.pageSize + 16 + 8; // first branch element's pgid
  await r.close();
  bad.writeUInt32LE(0x7fffffff, at);
  const badPath = join(dir, 'bad');
  await writeFile(badPath, bad);
  const err3 = await readBuckets(badPath).then(() => null, (e: unknown) => e);
  assert.is((err3 as BboltFormatError).code, 'Malformed');
}));

test('trailer: a correct one passes, a flipped byte and a missing one are refused', () => withDir(async (dir) => {
  const path = join(dir, 'db');
  const size = await writeBuckets(path, new Map([['key', [[Buffer.from('a'), Buffer.from('1')]]]]));
  const body = await readFile(path);
  await appendFile(path, createHash('sha256').update(body).digest());
  assert.equal(await checkSnapshotTrailer(path, false), { dbBytes: size, hasHash: true });
  const flipped = await readFile(path);
  flipped[flipped.length - 1]! ^= 1;
  await writeFile(path, flipped);
  const e1 = await checkSnapshotTrailer(path, false).then(() => null, (e: unknown) => e);
  assert.is((e1 as SnapshotFileError).code, 'HashMismatch');
  assert.equal(await checkSnapshotTrailer(path, true), { dbBytes: size, hasHash: true });
  await writeFile(path, body);
  const e2 = await checkSnapshotTrailer(path, false).then(() => null, (e: unknown) => e);
  assert.is((e2 as SnapshotFileError).code, 'MissingHash');
  assert.match((e2 as Error).message, 'snapshot missing hash but --skip-hash-check=false');
}));

etcd.test(test, "reads a snapshot etcd 3.4 wrote: etcdctl's status numbers and every revision", async () => {
  const fixture = await EtcdFixture.start({ etcd: etcd.path('etcd'), etcdctl: etcd.path('etcdctl') });
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-bbolt-etcd-'));
  try {
    // Enough keys for a multi-page key bucket (bbolt's own branch pages), a delete and a big value.
    const client = new EtcdClient([fixture.endpoint]);
    try {
      for (let i = 0; i < 400; i++) {
        await client.call('KV', 'Put', { key: Buffer.from(`key-${i}`), value: Buffer.from(`value-${i}-${'x'.repeat(i % 50)}`) }, { deadlineMs: Date.now() + 5000 });
      }
    } finally {
      client.close();
    }
    assert.is((await fixture.etcdctl(['put', 'big', 'B'.repeat(9000)])).code, 0);
    assert.is((await fixture.etcdctl(['del', 'key-7'])).code, 0);
    const snap = join(dir, 'etcd.db');
    const saved = await fixture.etcdctl(['snapshot', 'save', snap]);
    assert.is(saved.code, 0, saved.stderr);
    const theirs = await runCommand(etcd.path('etcdctl'), ['snapshot', 'status', snap, '-w', 'json']);
    assert.is(theirs.code, 0, theirs.stderr);
    const ours = await etcdSnapshotStatus(snap);
    assert.equal(ours, JSON.parse(theirs.stdout));
    const buckets = await readBuckets(snap, (await checkSnapshotTrailer(snap, false)).dbBytes);
    // Revisions 2..403: 400 puts, the big put and the delete, one record each.
    assert.is(buckets.get('key')!.length, 402);
    assert.ok(buckets.has('meta') && buckets.has('members') && buckets.has('lease'));
  } finally {
    await fixture.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

etcd.test(test, "our writer's file passes etcdctl snapshot status (bbolt's tx.Check) with the same numbers as ours", () => withDir(async (dir) => {
  const path = join(dir, 'ours.db');
  await writeBuckets(path, seededBuckets(11));
  const body = await readFile(path);
  await appendFile(path, createHash('sha256').update(body).digest());
  const theirs = await runCommand(etcd.path('etcdctl'), ['snapshot', 'status', path, '-w', 'json']);
  assert.is(theirs.code, 0, theirs.stderr);
  assert.equal(await etcdSnapshotStatus(path), JSON.parse(theirs.stdout));
}));

test.run();
