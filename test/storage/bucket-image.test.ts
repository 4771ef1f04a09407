import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/platform/logger.js';
import { Backend, Bucket } from '../../src/storage/backend.js';
import { visitPacked } from '../../src/storage/backend-scan-protocol.js';
import {
  BUCKET_IMAGE_CHUNK_HEADER_BYTES, BUCKET_IMAGE_DATA_START, BUCKET_IMAGE_SLOT_BYTES, BucketImageError, BucketImageReader,
} from '../../src/storage/bucket-image.js';

/**
 * The bucket image (storage/bucket-image.ts): written from a LevelDB that is being written
 * meanwhile, read back chunk by chunk with exactly the records below its end key, extended in
 * place where a crash midway (a torn slot, chunks written past the data end) leaves the previous
 * image whole, and every kind of damage (a flipped byte in a chunk or in the slot, a file cut
 * short, another version) refused with a BucketImageError, never taken as a smaller image.
 */

const key = (n: number): Buffer => {
  const k = Buffer.alloc(8 + 6);
  k.writeUInt32BE(0, 0);
  k.writeUInt32BE(n, 4);
  k.write(`k${String(n % 1000).padStart(5, '0')}`, 8, 'latin1');
  return k;
};
const value = (n: number): Buffer => Buffer.alloc(24 + (n % 200), n % 251);

async function withBackend(fn: (backend: Backend, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-bimg-'));
  const backend = await Backend.open(join(dir, 'db'), { logger: silentLogger });
  try {
    await fn(backend, dir);
  } finally {
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function fill(backend: Backend, from: number, to: number): void {
  for (let n = from; n < to; n++) {
    backend.put(Bucket.key, key(n), value(n));
    if (n % 100 === 99) backend.commit();
  }
  backend.put(Bucket.meta, Buffer.from('other bucket'), Buffer.from('x'));
  backend.commit();
}

/** Every record of an image as "hex key=value length". */
async function readImage(backend: Backend): Promise<string[]> {
  const image = await backend.openImage();
  assert.ok(image !== null, 'an image');
  const out: string[] = [];
  try {
    for await (const chunk of image!.chunks()) {
      visitPacked(chunk, (records, keyStart, keyEnd, headEnd, tails, tailStart, tailEnd) => {
        out.push(`${records.toString('hex', keyStart, keyEnd)}=${headEnd - keyEnd + tailEnd - tailStart}`);
      });
    }
  } finally {
    await image!.close();
  }
  return out;
}

async function scanBelow(backend: Backend, lt: Buffer): Promise<string[]> {
  const out: string[] = [];
  await backend.scan(Bucket.key, (k, v) => { out.push(`${k.toString('hex')}=${v.length}`); }, { lt: lt.subarray(1) });
  return out;
}

const endKey = (n: number): Buffer => Buffer.concat([Buffer.from([Bucket.key]), key(n).subarray(0, 8)]);

test('an image holds exactly the records below its end key, while writes go on', () => withBackend(async (backend) => {
  fill(backend, 0, 5000);
  const lt = endKey(3000);
  const writing = backend.writeImage(Bucket.key, lt, Buffer.from('tag!'), 24);
  fill(backend, 5000, 6000); // committed while the image is read: above the end key, not in it
  const written = await writing;
  assert.is(written.records, 3000);
  const image = await backend.openImage();
  assert.equal(image!.header, { bucket: Bucket.key, lt, tag: Buffer.from('tag!') });
  await image!.close();
  assert.equal(await readImage(backend), await scanBelow(backend, lt));
  // A second image replaces the first.
  assert.is((await backend.writeImage(Bucket.key, endKey(6000), Buffer.alloc(0), 24)).records, 6000);
  assert.is((await readImage(backend)).length, 6000);
}));

test('an image extended (append) is the old one plus the records up to its new end key', () => withBackend(async (backend) => {
  fill(backend, 0, 2000);
  await backend.writeImage(Bucket.key, endKey(1000), Buffer.from('one'), 24);
  fill(backend, 2000, 2500);
  const written = await backend.writeImage(Bucket.key, endKey(2200), Buffer.from('two'), 24, endKey(1000));
  assert.is(written.records, 2200);
  const image = await backend.openImage();
  assert.equal(image!.header, { bucket: Bucket.key, lt: endKey(2200), tag: Buffer.from('two') });
  await image!.close();
  assert.equal(await readImage(backend), await scanBelow(backend, endKey(2200)));
  // Extending from a key the image does not end at is refused; the image in place stays.
  try {
    await backend.writeImage(Bucket.key, endKey(2400), Buffer.from('three'), 24, endKey(1000));
    assert.unreachable('extended an image from the wrong key');
  } catch (err) {
    assert.match((err as Error).message, 'does not end where this one starts');
  }
  assert.is((await readImage(backend)).length, 2200);
}));

test('no image: openImage gives null', () => withBackend(async (backend) => {
  assert.is(await backend.openImage(), null);
}));

async function damaged(backend: Backend, damage: (path: string, bytes: Buffer) => Promise<void>): Promise<string> {
  fill(backend, 0, 3000);
  await backend.writeImage(Bucket.key, endKey(3000), Buffer.from('t'), 24);
  await damage(backend.imagePath, await readFile(backend.imagePath));
  try {
    await readImage(backend);
  } catch (err) {
    assert.instance(err, BucketImageError);
    return (err as Error).message;
  }
  assert.unreachable('the damaged image was read');
  return '';
}

test('an extension cut short by a crash leaves the previous image; the next extension replaces what it left', () => withBackend(async (backend) => {
  fill(backend, 0, 3000);
  await backend.writeImage(Bucket.key, endKey(1000), Buffer.from('one'), 24);
  const first = await readFile(backend.imagePath);
  // Crash after new chunks were written past the data end, before the slot naming them: the
  // previous image, exactly.
  await writeFile(backend.imagePath, Buffer.concat([first, Buffer.alloc(5000, 0xab)]));
  assert.equal(await readImage(backend), await scanBelow(backend, endKey(1000)));
  // The next extension writes from the data end on and cuts what was after it.
  await backend.writeImage(Bucket.key, endKey(2000), Buffer.from('two'), 24, endKey(1000));
  assert.equal(await readImage(backend), await scanBelow(backend, endKey(2000)));
  const second = await readFile(backend.imagePath);
  assert.ok(second.subarray(0, first.length).subarray(BUCKET_IMAGE_DATA_START).equals(first.subarray(BUCKET_IMAGE_DATA_START)), 'the first image\'s chunks are kept byte for byte');
  // Crash while the new slot (B) was written: it fails its checksum, slot A's image counts.
  const torn = Buffer.from(second);
  torn[BUCKET_IMAGE_SLOT_BYTES + 20]! ^= 0x40;
  await writeFile(backend.imagePath, torn);
  const image = await backend.openImage();
  assert.equal(image!.header.tag, Buffer.from('one'));
  await image!.close();
  assert.equal(await readImage(backend), await scanBelow(backend, endKey(1000)));
  // A third extension goes on from the image that counts, into the other slot.
  await backend.writeImage(Bucket.key, endKey(2500), Buffer.from('three'), 24, endKey(1000));
  assert.equal(await readImage(backend), await scanBelow(backend, endKey(2500)));
}));

test('damage anywhere is refused with BucketImageError', async () => {
  await withBackend(async (backend) => {
    const message = await damaged(backend, async (path, bytes) => {
      bytes[BUCKET_IMAGE_DATA_START + BUCKET_IMAGE_CHUNK_HEADER_BYTES + 100]! ^= 0x10; // inside the first chunk's records
      await writeFile(path, bytes);
    });
    assert.match(message, 'checksum mismatch');
  });
  await withBackend(async (backend) => {
    const message = await damaged(backend, async (path, bytes) => {
      bytes[bytes.length - 5]! ^= 0x01; // the tails of the last chunk
      await writeFile(path, bytes.subarray(0, bytes.length));
    });
    assert.match(message, 'checksum mismatch');
  });
  await withBackend(async (backend) => {
    const message = await damaged(backend, async (path, bytes) => {
      bytes.writeUInt32LE(0x7fff_ffff, BUCKET_IMAGE_DATA_START); // a chunk's length: refused before it is allocated
      await writeFile(path, bytes);
    });
    assert.match(message, 'runs past the data end');
  });
  for (const [at, expect] of [[12, 'header checksum mismatch'], [9, 'header checksum mismatch'], [0, 'not a bucket image']] as const) {
    await withBackend(async (backend) => {
      fill(backend, 0, 10);
      await backend.writeImage(Bucket.key, endKey(5), Buffer.from('t'), 24);
      const bytes = await readFile(backend.imagePath);
      bytes[at]! ^= 0x01; // the sequence, the version (with its checksum), the magic: slot A, the only valid one
      if (at === 9) bytes.writeUInt32LE(1, 8); // an image of version 1
      await writeFile(backend.imagePath, bytes);
      try {
        await BucketImageReader.open(backend.imagePath);
        assert.unreachable('a damaged header was accepted');
      } catch (err) {
        assert.instance(err, BucketImageError);
        assert.match((err as Error).message, at === 9 ? 'version 1, this build reads 2' : expect);
      }
    });
  }
  await withBackend(async (backend) => {
    const message = await damaged(backend, async (path) => {
      await truncate(path, (await stat(path)).size - 16); // the last chunk's end gone
    });
    assert.match(message, 'cut short');
  });
  await withBackend(async (backend) => {
    const message = await damaged(backend, async (path, bytes) => {
      await truncate(path, Math.floor(bytes.length / 2)); // cut in the middle of a chunk
    });
    assert.match(message, 'cut short');
  });
  await withBackend(async (backend) => {
    const message = await damaged(backend, async (path) => {
      await truncate(path, 300); // inside slot B
    });
    assert.match(message, 'cut short');
  });
});

test.run();
