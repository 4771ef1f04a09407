import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/platform/logger.js';
import { Backend, Bucket, type BackendSnapshotReader } from '../../src/storage/backend.js';
import {
  installStateImage, StateImageError, StateImageReader, writeStateImage, type StateImageRecord,
} from '../../src/storage/state-image.js';
import { KvStore, readAppliedIndex } from '../../src/mvcc/kv-store.js';

const logger = silentLogger;
const voters = [1n, 2n, 3n];

function describe(index: number) {
  return { term: 3, voters, learners: [9n] };
}

/** A backend with mvcc history through a real KvStore, plus records in the other buckets. */
async function filledBackend(dir: string, keys: number): Promise<{ backend: Backend; appliedIndex: number }> {
  const backend = await Backend.open(dir, { logger });
  const store = await KvStore.open(backend, { logger });
  let index = 10;
  for (let i = 0; i < keys; i++) {
    const txn = store.write();
    txn.put(Buffer.from(`key-${i % (keys / 2)}`), Buffer.alloc(1 + (i % 300), i % 251), 0n);
    txn.end();
    if (i % 100 === 99) store.commit(++index);
  }
  for (let i = 0; i < 50; i++) backend.put(Bucket.members, Buffer.from(`m${i}`), Buffer.from(`{"i":${i}}`));
  backend.put(Bucket.lease, Buffer.from('l1'), Buffer.alloc(0));
  backend.put(Bucket.auth, Buffer.from('enabled'), Buffer.from([1]));
  store.commit(++index);
  await backend.flush();
  return { backend, appliedIndex: index };
}

async function allRecords(backend: Backend): Promise<string[]> {
  const out: string[] = [];
  for (const bucket of [Bucket.key, Bucket.meta, Bucket.lease, Bucket.auth, Bucket.members]) {
    await backend.scan(bucket, (k, v) => { out.push(`${bucket}:${k.toString('hex')}=${v.toString('hex')}`); });
  }
  return out;
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-image-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const options = { appliedIndex: (r: BackendSnapshotReader) => readAppliedIndex((b, k) => r.get(b, k)), describe };

test('round trip: thousands of keys across buckets, one applied index, identical records', () => withDir(async (dir) => {
  const { backend, appliedIndex } = await filledBackend(join(dir, 'db'), 6000);
  const image = join(dir, 'image.krimg');
  const written = await writeStateImage(backend, image, options);
  assert.is(written.header.index, appliedIndex);
  assert.is(written.header.term, 3);
  assert.equal(written.header.voters, voters);
  assert.equal(written.header.learners, [9n]);
  assert.is(written.sizeBytes, (await stat(image)).size);
  const expected = await allRecords(backend);
  assert.is(written.records, expected.length);
  await backend.close();

  const installed = await installStateImage(image, join(dir, 'db2'), logger);
  assert.is(installed.header.index, appliedIndex);
  assert.is(installed.records, expected.length);
  const copy = await Backend.open(join(dir, 'db2'), { logger });
  assert.equal(await allRecords(copy), expected);
  const store = await KvStore.open(copy, { logger });
  assert.is(store.appliedIndex, appliedIndex);
  assert.is(store.keyCount, 3000);
  await copy.close();
}));

test('the image is one consistent point: writes committed after it starts are not in it', () => withDir(async (dir) => {
  const { backend, appliedIndex } = await filledBackend(join(dir, 'db'), 2000);
  const before = await allRecords(backend);
  const image = join(dir, 'image.krimg');
  const writing = writeStateImage(backend, image, {
    ...options,
    describe: (index) => {
      // Runs after the snapshot's meta was read: a later batch must not show up.
      backend.put(Bucket.key, Buffer.from('zzz-late'), Buffer.from('late'));
      backend.put(Bucket.meta, Buffer.from('mvcc'), Buffer.alloc(24, 0xff));
      backend.commit();
      return describe(index);
    },
  });
  const written = await writing;
  assert.is(written.header.index, appliedIndex);
  const seen: string[] = [];
  const reader = await StateImageReader.open(image);
  for await (const batch of reader.records()) for (const r of batch) seen.push(`${r.bucket}:${r.key.toString('hex')}=${r.value.toString('hex')}`);
  assert.equal(seen, before);
  await backend.close();
}));

async function expectRefused(image: string, dir: string, code: string, pattern: RegExp): Promise<void> {
  const target = join(dir, 'target');
  try {
    await installStateImage(image, target, logger);
    assert.unreachable('install should fail');
  } catch (err) {
    assert.instance(err, StateImageError);
    assert.is((err as StateImageError).code, code);
    assert.match((err as Error).message, pattern);
  }
  assert.not.ok(existsSync(target), 'nothing installed');
}

test('a flipped byte in the records is a checksum mismatch; nothing is installed', () => withDir(async (dir) => {
  const { backend } = await filledBackend(join(dir, 'db'), 3000);
  const image = join(dir, 'image.krimg');
  await writeStateImage(backend, image, options);
  await backend.close();
  const bytes = await readFile(image);
  // A byte inside some value, far from the framing: only the checksum can catch it.
  const at = Math.floor(bytes.length / 2);
  bytes[at] = bytes[at]! ^ 0x01;
  await writeFile(image, bytes);
  await expectRefused(image, dir, 'ChecksumMismatch', /sha256/);
}));

test('a truncated image is refused; nothing is installed', () => withDir(async (dir) => {
  const { backend } = await filledBackend(join(dir, 'db'), 3000);
  const image = join(dir, 'image.krimg');
  const written = await writeStateImage(backend, image, options);
  await backend.close();
  await truncate(image, Math.floor(written.sizeBytes * 0.7));
  await expectRefused(image, dir, 'Truncated', /ends inside its records/);
  await truncate(image, 20);
  await expectRefused(image, dir, 'Truncated', /header cut short|cut short/);
}));

test('wrong magic and an unknown version are refused with a clear error', () => withDir(async (dir) => {
  const { backend } = await filledBackend(join(dir, 'db'), 200);
  const image = join(dir, 'image.krimg');
  await writeStateImage(backend, image, options);
  await backend.close();
  const bytes = await readFile(image);
  const badMagic = Buffer.from(bytes);
  badMagic.write('SQLit', 0, 'ascii');
  await writeFile(join(dir, 'magic.krimg'), badMagic);
  await expectRefused(join(dir, 'magic.krimg'), dir, 'BadMagic', /not a state image.*expected "KRIMG"/);
  const badVersion = Buffer.from(bytes);
  badVersion[5] = 2;
  await writeFile(join(dir, 'version.krimg'), badVersion);
  await expectRefused(join(dir, 'version.krimg'), dir, 'UnsupportedVersion', /format version 2; this keyraft reads version 1/);
}));

test('an install over an existing directory replaces it only on success', () => withDir(async (dir) => {
  const { backend } = await filledBackend(join(dir, 'db'), 500);
  const image = join(dir, 'image.krimg');
  const written = await writeStateImage(backend, image, options);
  await backend.close();
  const result = await installStateImage(image, join(dir, 'target'), logger);
  assert.is(result.records, written.records);
  const records: StateImageRecord[] = [];
  for await (const batch of (await StateImageReader.open(image)).records()) records.push(...batch);
  assert.is(records.length, written.records);
}));

test.run();
