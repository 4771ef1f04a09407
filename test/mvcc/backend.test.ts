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
