import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, readdir, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wal, WalCorruptionError, type WalEntry } from '../../src/storage/wal.js';

// Start-up after damage: a torn tail (a write cut by a crash) is cut with a warning; any other
// damage stops open() with an error naming the file and byte offset. The offsets below follow
// the layout documented in src/storage/wal-record.ts: a batch header record is 32 bytes, an
// entry record with 8 data bytes is 12 + 20 + 8 = 40 bytes.

const segmentSizeBytes = 16 * 1024;
const firstSegment = '0000000000000001-0000000000000001.wal';
const batchHeaderBytes = 32;
const smallEntryBytes = 40;

function entry(index: number, bytes = 8): WalEntry {
  const data = Buffer.alloc(bytes);
  // Never zero, so zeroed bytes always differ from what was written.
  for (let i = 0; i < bytes; i++) data[i] = 1 + ((index * 13 + i) % 250);
  return { index, term: 1, type: 0, data };
}

function entries(from: number, to: number, bytes = 8): WalEntry[] {
  const out: WalEntry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, bytes));
  return out;
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-wal-recovery-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes `batches` (each awaited: one write + fdatasync per batch) into a fresh WAL. */
async function build(dir: string, batches: WalEntry[][]): Promise<Buffer> {
  const { wal } = await Wal.open(dir, { segmentSizeBytes });
  for (const batch of batches) await wal.append(batch);
  await wal.close();
  return readFile(join(dir, firstSegment));
}

async function reopen(dir: string): Promise<{ indexes: number[]; torn: boolean }> {
  const { wal, replay } = await Wal.open(dir, { segmentSizeBytes });
  await wal.close();
  return { indexes: replay.entries.map((e) => e.index), torn: replay.tornTailTruncated };
}

async function expectCorruption(dir: string, file: string, offset: number): Promise<WalCorruptionError> {
  try {
    const { wal } = await Wal.open(dir, { segmentSizeBytes });
    await wal.close();
  } catch (err) {
    assert.instance(err, WalCorruptionError);
    const corruption = err as WalCorruptionError;
    assert.is(corruption.file, join(dir, file));
    assert.is(corruption.offset, offset, corruption.message);
    assert.ok(corruption.message.includes(join(dir, file)) && corruption.message.includes(`byte offset ${offset}`), corruption.message);
    assert.is(corruption.code, 'Corrupt');
    return corruption;
  }
  assert.unreachable(`open() of ${dir} must fail with corruption at ${offset}`);
  throw new Error('unreachable');
}

// Fresh segment: its first batch is a header with no records (no hard state yet): [0, 32).
// Batch A (entries 1..3): [32, 184). Batch B (entries 4, 5): [184, 296).
const batchAStart = batchHeaderBytes;
const batchBStart = batchAStart + batchHeaderBytes + 3 * smallEntryBytes;
const batchBEnd = batchBStart + batchHeaderBytes + 2 * smallEntryBytes;

test('layout assumption: the last batch ends where the non-zero bytes end', () => withDir(async (dir) => {
  const bytes = await build(dir, [entries(1, 3), entries(4, 5)]);
  assert.is(bytes.length, segmentSizeBytes, 'segment is preallocated');
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  assert.is(end, batchBEnd, 'entry data is never zero and 40-byte entry records need no padding');
}));

test('torn tail at every byte offset of the last batch (zeroed) is cut, and the log continues', () => withDir(async (dir) => {
  const original = await build(dir, [entries(1, 3), entries(4, 5)]);
  const path = join(dir, firstSegment);
  for (let cut = batchBStart; cut < batchBEnd; cut++) {
    const torn = Buffer.from(original);
    torn.fill(0, cut, batchBEnd);
    await writeFile(path, torn);
    const { indexes, torn: truncated } = await reopen(dir);
    assert.equal(indexes, [1, 2, 3], `cut at ${cut}`);
    // Cutting at the batch start leaves only zeros: the normal end of the log, nothing torn.
    assert.is(truncated, cut > batchBStart, `cut at ${cut}: tornTailTruncated`);
  }
  // After a torn tail was cut, the log continues from it and replays cleanly.
  const torn = Buffer.from(original);
  torn.fill(0, batchBEnd - 5, batchBEnd);
  await writeFile(path, torn);
  const { wal } = await Wal.open(dir, { segmentSizeBytes });
  await wal.append(entries(4, 6));
  await wal.close();
  assert.equal(await reopen(dir), { indexes: [1, 2, 3, 4, 5, 6], torn: false });
}));

test('torn tail at every byte offset of the last batch (file cut short) is cut', () => withDir(async (dir) => {
  const original = await build(dir, [entries(1, 3), entries(4, 5)]);
  const path = join(dir, firstSegment);
  for (let cut = batchBStart; cut <= batchBEnd; cut++) {
    await writeFile(path, original.subarray(0, cut));
    const { indexes, torn } = await reopen(dir);
    const whole = cut === batchBEnd; // 40-byte entry records have no padding
    assert.equal(indexes, whole ? [1, 2, 3, 4, 5] : [1, 2, 3], `cut at ${cut}`);
    assert.is(torn, cut > batchBStart && !whole, `cut at ${cut}: tornTailTruncated`);
  }
}));

test('a bit flip in a batch followed by later batches is corruption at that record', () => withDir(async (dir) => {
  const original = await build(dir, [entries(1, 3), entries(4, 5), entries(6, 6)]);
  const entry2 = batchAStart + batchHeaderBytes + smallEntryBytes;
  const damaged = Buffer.from(original);
  damaged[entry2 + 12 + 20 + 3]! ^= 0x10; // a data byte of entry 2
  await writeFile(join(dir, firstSegment), damaged);
  const err = await expectCorruption(dir, firstSegment, entry2);
  assert.match(err.message, /crc mismatch/);
}));

test('an impossible record length is corruption, even in the last batch', () => withDir(async (dir) => {
  const original = await build(dir, [entries(1, 3), entries(4, 5)]);
  const entry4 = batchBStart + batchHeaderBytes;
  const damaged = Buffer.from(original);
  damaged.writeUInt32LE(0x7fff_fff0, entry4);
  await writeFile(join(dir, firstSegment), damaged);
  const err = await expectCorruption(dir, firstSegment, entry4);
  assert.match(err.message, /exceeds walRecordBytesMax/);
}));

test('a bit flip in the last batch with valid records after it is corruption, not a torn tail', () => withDir(async (dir) => {
  const original = await build(dir, [entries(1, 3), entries(4, 5)]);
  const entry4 = batchBStart + batchHeaderBytes;
  const damaged = Buffer.from(original);
  damaged[entry4 + 12 + 20]! ^= 0x01;
  await writeFile(join(dir, firstSegment), damaged);
  await expectCorruption(dir, firstSegment, entry4);
}));

test('a never-written sector inside the last batch is a torn tail (the disk wrote sectors out of order)', () => withDir(async (dir) => {
  // Batch B: entry 4 with 2000 data bytes spans sectors [512, 1024), [1024, 1536) ... entry 5 follows.
  const original = await build(dir, [entries(1, 3), [entry(4, 2000), entry(5)]]);
  const path = join(dir, firstSegment);
  const damaged = Buffer.from(original);
  damaged.fill(0, 1024, 1536);
  await writeFile(path, damaged);
  assert.equal(await reopen(dir), { indexes: [1, 2, 3], torn: true });
}));

test('zeroed bytes in a batch followed by a later batch are corruption', () => withDir(async (dir) => {
  const original = await build(dir, [entries(1, 3), entries(4, 5), entries(6, 6)]);
  const damaged = Buffer.from(original);
  damaged.fill(0, batchBStart, batchBEnd); // a whole synced batch reads as zeros
  await writeFile(join(dir, firstSegment), damaged);
  await expectCorruption(dir, firstSegment, batchBStart);
}));

test('damage in a segment that is not the last one is corruption; a missing segment too', () => withDir(async (dir) => {
  const { wal } = await Wal.open(dir, { segmentSizeBytes: 4096 });
  for (let i = 1; i <= 200; i += 20) await wal.append(entries(i, i + 19, 100));
  await wal.close();
  const names = (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
  assert.ok(names.length >= 3, `expected 3+ segments, got ${names.length}`);
  const first = join(dir, names[0]!);
  const original = await readFile(first);
  // Zero the tail end of segment 1's data: it would look torn, but segment 2 exists.
  let end = original.length;
  while (end > 0 && original[end - 1] === 0) end--;
  const damaged = Buffer.from(original);
  damaged.fill(0, end - 50, end);
  await writeFile(first, damaged);
  try {
    await Wal.open(dir, { segmentSizeBytes: 4096 });
    assert.unreachable('open must fail');
  } catch (err) {
    assert.instance(err, WalCorruptionError);
    assert.is((err as WalCorruptionError).file, first);
    assert.match((err as Error).message, /not the last segment/);
  }
  await writeFile(first, original);
  await unlink(join(dir, names[1]!));
  try {
    await Wal.open(dir, { segmentSizeBytes: 4096 });
    assert.unreachable('open must fail');
  } catch (err) {
    assert.instance(err, WalCorruptionError);
    assert.match((err as Error).message, /a segment is missing/);
  }
}));

test('a torn tail at the start of a fresh segment after roll-over is cut; older segments stay intact', () => withDir(async (dir) => {
  const { wal } = await Wal.open(dir, { segmentSizeBytes: 4096 });
  for (let i = 1; i <= 60; i += 20) await wal.append(entries(i, i + 19, 100));
  await wal.close();
  const names = (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
  const last = join(dir, names[names.length - 1]!);
  const bytes = await readFile(last);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  await truncate(last, end - 7);
  const reopened = await Wal.open(dir, { segmentSizeBytes: 4096 });
  await reopened.wal.close();
  assert.is(reopened.replay.tornTailTruncated, true);
  const indexes = reopened.replay.entries.map((e) => e.index);
  assert.equal(indexes, Array.from({ length: 40 }, (_, i) => i + 1), 'the last batch (41..60) was cut whole');
}));

test.run();
