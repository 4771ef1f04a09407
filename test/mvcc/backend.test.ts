import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../src/platform/logger.js';
import { Backend, Bucket } from '../../src/storage/backend.js';
import { withTempDir } from './helpers.js';

const k = (s: string): Buffer => Buffer.from(s);

async function entries(backend: Backend, bucket: Bucket): Promise<string[]> {
  const out: string[] = [];
  await backend.scan(bucket, (key, value) => out.push(`${key.toString()}=${value.toString()}`));
  return out;
}

test('staged operations reach LevelDB only on commit, in commit order, buckets kept apart', () => withTempDir(async (dir) => {
  const backend = await Backend.open(join(dir, 'db'), { logger: silentLogger });
  try {
    backend.put(Bucket.key, k('a'), k('1'));
    backend.put(Bucket.meta, k('a'), k('meta'));
    assert.equal(await entries(backend, Bucket.key), []);
    backend.commit();
    // Later commits while the first batch is in flight: merged, applied in order (last put wins).
    backend.put(Bucket.key, k('a'), k('2'));
    backend.commit();
    backend.del(Bucket.key, k('a'));
    backend.put(Bucket.key, k('b'), k('3'));
    backend.commit();
    backend.put(Bucket.key, k('a'), k('4'));
    backend.commit();
    backend.put(Bucket.key, k('staged-only'), k('x'));
    await backend.flush();
    assert.equal(await entries(backend, Bucket.key), ['a=4', 'b=3']);
    assert.equal(await entries(backend, Bucket.meta), ['a=meta']);
    assert.equal(await entries(backend, Bucket.lease), []);
    assert.is((await backend.get(Bucket.meta, k('a')))?.toString(), 'meta');
    assert.is(await backend.get(Bucket.meta, k('missing')), undefined);
    assert.is(backend.stagedOps, 1);
    const some: string[] = [];
    await backend.scan(Bucket.key, (key) => some.push(key.toString()), { gte: k('b') });
    assert.equal(some, ['b']);
  } finally {
    await backend.close();
  }
  // Closing dropped the staged-only put; committed data survives a reopen.
  const again = await Backend.open(join(dir, 'db'), { logger: silentLogger });
  try {
    assert.equal(await entries(again, Bucket.key), ['a=4', 'b=3']);
  } finally {
    await again.close();
  }
}));

test('a failed batch write fails every later commit and flush', () => withTempDir(async (dir) => {
  const backend = await Backend.open(join(dir, 'db'), { logger: silentLogger });
  // Pull the database out from under the backend to make the next write fail.
  await (backend as unknown as { db: { close(): Promise<void> } }).db.close();
  backend.put(Bucket.key, k('a'), k('1'));
  backend.commit();
  let flushError: unknown;
  await backend.flush().catch((err: unknown) => { flushError = err; });
  assert.ok(flushError instanceof Error, 'flush rejects');
  assert.throws(() => backend.commit());
  let again: unknown;
  await backend.flush().catch((err: unknown) => { again = err; });
  assert.is(again, flushError);
}));

test.run();

// The start-up scan reads a large bucket in several worker threads at once, each a consecutive
// part (split by size on disk), and must still hand out every record once, in key order.
async function fillRevisions(backend: Backend, records: number): Promise<void> {
  for (let rev = 1; rev <= records; rev++) {
    const key = Buffer.alloc(8 + 6);
    key.writeUInt32BE(Math.floor(rev / 0x1_0000_0000), 0);
    key.writeUInt32BE(rev >>> 0, 4);
    key.write(`k${rev % 10_000}`.padEnd(6, '.'), 8, 'latin1');
    backend.put(Bucket.key, key, Buffer.alloc(200 + (rev % 50), rev % 251));
    if (rev % 1000 === 0) backend.commit();
  }
  backend.commit();
  // Into table files: LevelDB sizes (approximateSize, which the split reads) count only those.
  await backend.defragment();
}

test('a worker scan split in parts visits every record once, in key order', () => withTempDir(async (dir) => {
  const backend = await Backend.open(join(dir, 'db'), { logger: silentLogger });
  try {
    const records = 20_000;
    await fillRevisions(backend, records);
    for (const workers of [1, 3]) {
      let expected = 1;
      const visited = await backend.scanPacked(Bucket.key, (chunk, keyStart, keyEnd, headEnd, tails, tailStart, tailEnd) => {
        const rev = chunk.readUInt32BE(keyStart) * 0x1_0000_0000 + chunk.readUInt32BE(keyStart + 4);
        if (rev !== expected) assert.unreachable(`record ${rev} visited, expected ${expected}`);
        const value = Buffer.concat([chunk.subarray(keyEnd, headEnd), tails.subarray(tailStart, tailEnd)]);
        if (!value.equals(Buffer.alloc(200 + (rev % 50), rev % 251))) assert.unreachable(`value of record ${rev}`);
        expected++;
      }, { thread: 'worker', chunkBytes: 64 * 1024, headBytes: 24, workers });
      assert.is(visited, records);
      assert.is(expected, records + 1);
      if (workers === 1) assert.is(backend.lastScanParts, 1);
      else assert.ok(backend.lastScanParts >= 2, `scanned in ${backend.lastScanParts} part(s)`);
    }
  } finally {
    await backend.close();
  }
}));

test('a visitor failing in a split worker scan stops every worker and fails the scan', () => withTempDir(async (dir) => {
  const backend = await Backend.open(join(dir, 'db'), { logger: silentLogger });
  try {
    await fillRevisions(backend, 20_000);
    let seen = 0;
    const scan = backend.scanPacked(Bucket.key, () => {
      if (++seen === 15_000) throw new Error('bad record');
    }, { thread: 'worker', chunkBytes: 64 * 1024, headBytes: 24, workers: 2 });
    await scan.then(() => assert.unreachable('the scan succeeded'), (err: Error) => assert.is(err.message, 'bad record'));
    assert.is(backend.lastScanParts, 2);
    // Every worker closed its handle: the backend still reads and closes normally.
    assert.is((await entries(backend, Bucket.meta)).length, 0);
  } finally {
    await backend.close();
  }
}));
