import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { readdirSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wal, type HardState, type WalEntry } from '../../src/storage/wal.js';
import { AssertionError } from '../../src/platform/assert.js';
import { Registry } from 'prom-client';

// Behaviour of the WAL through its public API: round trip, replay, Raft overwrite, group commit,
// segment roll-over and release, close. Torn tails and corruption: wal-recovery.test.ts.

const smallSegmentBytes = 16 * 1024;

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'keyraft-wal-'));
}

/** Entry data derived from (index, term), so a replay can be checked byte for byte. */
function entry(index: number, term = 1, bytes = 24): WalEntry {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (index * 31 + term * 7 + i) & 0xff;
  return { index, term, type: index % 5 === 0 ? 1 : 0, data };
}

function range(from: number, to: number, term = 1, bytes = 24): WalEntry[] {
  const out: WalEntry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, bytes));
  return out;
}

function assertLog(actual: WalEntry[], expected: WalEntry[]): void {
  assert.is(actual.length, expected.length, 'log length');
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.equal({ index: a.index, term: a.term, type: a.type }, { index: e.index, term: e.term, type: e.type }, `entry ${i}`);
    assert.ok(Buffer.from(a.data).equals(Buffer.from(e.data)), `data of entry ${e.index}`);
  }
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a fresh WAL replays empty, and appended entries and hard state come back on reopen', () => withDir(async (dir) => {
  let { wal, replay } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes });
  assert.equal(replay.entries, []);
  assert.is(replay.firstIndex, 1);
  assert.is(replay.hardState, undefined);
  assert.is(replay.tornTailTruncated, false);
  await wal.append(range(1, 3), { term: 1, vote: 2n, commit: 1 });
  await wal.append(range(4, 4, 2, 0), { term: 2, vote: 0n, commit: 3 });
  await wal.append([], { term: 3, vote: 1n, commit: 4 });
  await wal.close();

  ({ wal, replay } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes }));
  try {
    assertLog(replay.entries, [...range(1, 3), entry(4, 2, 0)]);
    assert.equal(replay.hardState, { term: 3, vote: 1n, commit: 4 });
    assert.is(replay.firstIndex, 1);
    assert.is(replay.tornTailTruncated, false, 'preallocated zeros after the last record are not a torn tail');
    // The log continues after a reopen.
    await wal.append(range(5, 6, 3));
  } finally {
    await wal.close();
  }
  ({ wal, replay } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes }));
  await wal.close();
  assertLog(replay.entries, [...range(1, 3), entry(4, 2, 0), ...range(5, 6, 3)]);
}));

test('a later record for an existing index truncates the log from there (Raft overwrite)', () => withDir(async (dir) => {
  let { wal } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes });
  await wal.append(range(1, 10, 1));
  await wal.append(range(6, 8, 2)); // leader change: 6..10 of term 1 replaced by 6..8 of term 2
  await wal.append(range(9, 9, 3));
  await wal.close();
  let replay;
  ({ wal, replay } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes }));
  await wal.close();
  assertLog(replay.entries, [...range(1, 5, 1), ...range(6, 8, 2), ...range(9, 9, 3)]);
}));

test('random appends with overwrites replay exactly as a naive model of the log (seeded)', () => withDir(async (dir) => {
  let seed = 0x5eed;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const model: WalEntry[] = [];
  let term = 1;
  let hardState: HardState | undefined;
  let { wal } = await Wal.open(dir, { segmentSizeBytes: 8 * 1024 });
  const pending: Promise<void>[] = [];
  for (let step = 0; step < 300; step++) {
    const last = model.length;
    // Mostly extend; sometimes overwrite a suffix from a random earlier index with a higher term.
    const overwrite = last > 0 && random(6) === 0;
    const from = overwrite ? Math.max(1, last - random(8)) : last + 1;
    if (overwrite) term++;
    const batch = range(from, from + random(4), term, random(200));
    model.length = from - 1;
    model.push(...batch);
    if (random(3) === 0) hardState = { term, vote: BigInt(random(3)), commit: Math.max(0, from - 1) };
    pending.push(wal.append(batch, random(3) === 0 ? hardState : undefined));
    if (random(4) === 0) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  await wal.close();
  let replay;
  ({ wal, replay } = await Wal.open(dir, { segmentSizeBytes: 8 * 1024 }));
  await wal.close();
  assertLog(replay.entries, model);
  assert.ok(wal.stats.segmentsCreated === 0 && replay.firstIndex === 1);
}));

test('appends issued in one tick share one write and one fdatasync, and resolve in call order', () => withDir(async (dir) => {
  const { wal } = await Wal.open(dir, { segmentSizeBytes: 1024 * 1024 });
  try {
    await wal.append(range(1, 1));
    const syncsBefore = wal.stats.syncs;
    const batchesBefore = wal.stats.batches;
    const order: number[] = [];
    const appenders = 200;
    const all: Promise<void>[] = [];
    for (let i = 0; i < appenders; i++) {
      const index = i + 2;
      all.push(wal.append([entry(index)]).then(() => { order.push(index); }));
    }
    await Promise.all(all);
    const syncs = wal.stats.syncs - syncsBefore;
    const batches = wal.stats.batches - batchesBefore;
    assert.ok(syncs >= 1 && syncs <= 2, `${appenders} appends took ${syncs} fdatasyncs`);
    assert.is(batches, 1, `${appenders} appends in one tick took ${batches} writes`);
    assert.equal(order, range(2, appenders + 1).map((e) => e.index));
  } finally {
    await wal.close();
  }
}));

test('appends arriving while a fdatasync runs are grouped into the next one', () => withDir(async (dir) => {
  const { wal } = await Wal.open(dir, { segmentSizeBytes: 1024 * 1024 });
  try {
    // One append per event-loop turn, 300 turns: each turn posts its own message; the writer
    // drains whatever waits when its fdatasync returns, so writes are far fewer than turns.
    const turns = 300;
    const batchesBefore = wal.stats.batches;
    const all: Promise<void>[] = [];
    for (let i = 1; i <= turns; i++) {
      all.push(wal.append([entry(i)]));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await Promise.all(all);
    const batches = wal.stats.batches - batchesBefore;
    assert.is(wal.stats.messages, turns);
    assert.ok(batches < turns, `${turns} turns took ${batches} writes`);
  } finally {
    await wal.close();
  }
}));

test('segments roll over when full; releaseTo deletes only old segments whose entries are all released', () => withDir(async (dir) => {
  const segmentSizeBytes = 8 * 1024;
  let { wal } = await Wal.open(dir, { segmentSizeBytes });
  for (let i = 1; i <= 400; i += 10) await wal.append(range(i, i + 9, 1, 100), { term: 1, vote: 1n, commit: i - 1 });
  const segmentNames = async () => (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
  const before = await segmentNames();
  assert.ok(before.length >= 4, `expected several segments, got ${before.join(',')}`);
  assert.is(before[0], '0000000000000001-0000000000000001.wal');
  // Names carry the first index the segment was opened for, in order.
  const firstIndexes = before.map((n) => Number.parseInt(n.slice(17, 33), 16));
  assert.equal([...firstIndexes].sort((a, b) => a - b), firstIndexes);
  const secondFirst = firstIndexes[1]!;
  const thirdFirst = firstIndexes[2]!;

  await wal.releaseTo(secondFirst - 2); // segment 1 still holds secondFirst - 1: nothing goes
  assert.equal(await segmentNames(), before);
  await wal.releaseTo(thirdFirst - 1); // segments 1 and 2 hold only entries <= thirdFirst - 1
  assert.equal(await segmentNames(), before.slice(2));
  await wal.releaseTo(10_000); // never the segment being written
  const after = await segmentNames();
  assert.equal(after, before.slice(-1));
  await wal.close();

  let replay;
  ({ wal, replay } = await Wal.open(dir, { segmentSizeBytes }));
  try {
    const lastFirst = firstIndexes[firstIndexes.length - 1]!;
    assertLog(replay.entries, range(lastFirst, 400, 1, 100));
    assert.is(replay.firstIndex, lastFirst);
    // The hard state survives although the segment that held it was deleted: each segment
    // starts with the latest one.
    assert.equal(replay.hardState, { term: 1, vote: 1n, commit: 390 });
    await wal.append(range(401, 401));
  } finally {
    await wal.close();
  }
}));

test('an empty log after release continues at the released index + 1', () => withDir(async (dir) => {
  const segmentSizeBytes = 4096;
  let { wal } = await Wal.open(dir, { segmentSizeBytes });
  await wal.append(range(1, 100, 1, 100), { term: 1, vote: 1n, commit: 100 });
  await wal.append(range(101, 101, 1, 5000)); // bigger than what is left: a new segment
  await wal.releaseTo(101);
  await wal.close();
  let replay;
  ({ wal, replay } = await Wal.open(dir, { segmentSizeBytes }));
  await wal.close();
  assertLog(replay.entries, range(101, 101, 1, 5000));
  assert.equal(replay.hardState, { term: 1, vote: 1n, commit: 100 });
}));

test('a snapshot marker drops the entries it covers on replay', () => withDir(async (dir) => {
  let { wal } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes });
  await wal.append(range(1, 20));
  await wal.appendSnapshotMarker({ index: 15, term: 1, voters: [0xfedcba9876543210n, 2n], learners: [3n] });
  await wal.append(range(21, 22));
  await wal.close();
  let replay;
  ({ wal, replay } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes }));
  await wal.close();
  assertLog(replay.entries, range(16, 22));
  assert.is(replay.firstIndex, 16);
  assert.equal(replay.snapshot, { index: 15, term: 1, voters: [0xfedcba9876543210n, 2n], learners: [3n] });
}));

test('close flushes appends made just before it; later appends are refused', () => withDir(async (dir) => {
  let { wal } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes });
  const acked: number[] = [];
  const appends = range(1, 50).map((e) => wal.append([e]).then(() => { acked.push(e.index); }));
  await wal.close();
  assert.is(acked.length, 50, 'every append resolved before close did');
  await Promise.all(appends);
  await wal.append([entry(51)]).then(
    () => assert.unreachable('append after close must fail'),
    (err: Error) => assert.match(err.message, /stopped/),
  );
  let replay;
  ({ wal, replay } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes }));
  await wal.close();
  assertLog(replay.entries, range(1, 50));
}));

test('a gap or a non-contiguous append is a bug: assertion, nothing written', () => withDir(async (dir) => {
  const { wal } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes });
  try {
    await wal.append(range(1, 2));
    assert.throws(() => wal.append([entry(4)]), (err: Error) => err instanceof AssertionError && /gap/.test(err.message));
    assert.throws(() => wal.append([entry(3), entry(5)]), (err: Error) => err instanceof AssertionError);
    await wal.append([entry(3)]);
  } finally {
    await wal.close();
  }
}));

test('the pending-bytes bound refuses appends with TooManyRequests instead of growing', () => withDir(async (dir) => {
  const { wal } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes, pendingBytesMax: 1000 });
  try {
    const first = wal.append([entry(1, 1, 500)]);
    let refused: unknown;
    await wal.append([entry(2, 1, 600)]).catch((err) => { refused = err; });
    assert.is((refused as { code?: string }).code, 'TooManyRequests');
    await first;
  } finally {
    await wal.close();
  }
}));

test('if the writer dies, pending appends settle and later ones fail instead of hanging', () => withDir(async (dir) => {
  const { wal } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes });
  await wal.append(range(1, 1));
  const pending = wal.append(range(2, 2));
  // Kill the worker from outside, as a crash of the writer thread would.
  await (wal as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
  // The writer may or may not have confirmed it before dying; either way it settles, no hang.
  const outcome = await pending.then(() => 'durable', (err: Error) => err.message);
  assert.ok(outcome === 'durable' || /wal writer exited/.test(outcome), outcome);
  await wal.append(range(3, 3)).then(() => assert.unreachable('append after failure'), (err: Error) => {
    assert.match(err.message, /wal writer exited/);
  });
  await wal.close();
}));

test('fdatasync latency and bytes written are exported under etcd\'s metric names', () => withDir(async (dir) => {
  const registry = new Registry();
  const { wal } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes, metrics: registry });
  try {
    await wal.append(range(1, 10));
    await wal.append(range(11, 20));
    const text = await registry.metrics();
    const count = Number(/etcd_disk_wal_fsync_duration_seconds_count (\d+)/.exec(text)?.[1]);
    const bytes = Number(/etcd_disk_wal_write_bytes_total (\d+)/.exec(text)?.[1]);
    assert.is(count, wal.stats.batches, 'one fsync observation per group-commit write');
    assert.ok(bytes >= 20 * 56, `write bytes ${bytes}`);
  } finally {
    await wal.close();
  }
}));

test('a release past a segment whose header carries an older marker still replays: the later marker covers the gap', () => withDir(async (dir) => {
  // Segments of 16 KiB, entries of ~100 B: each segment holds about 130 entries.
  let { wal } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes });
  const conf = { voters: [1n], learners: [] };
  await wal.append(range(1, 100, 1, 100));
  await wal.appendSnapshotMarker({ index: 50, term: 1, ...conf });
  // Later segments are created while marker 50 is the latest: their headers carry it.
  for (let i = 101; i <= 1000; i += 50) await wal.append(range(i, i + 49, 1, 100));
  // The member compacts far ahead (as after a long run) and releases up to there: every segment
  // whose entries are all <= 900 goes, and the first one left starts past its header's marker.
  await wal.appendSnapshotMarker({ index: 900, term: 1, ...conf });
  await wal.releaseTo(900);
  await wal.append(range(1001, 1010, 1, 100));
  await wal.close();
  let replay;
  ({ wal, replay } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes }));
  await wal.close();
  assert.is(replay.snapshot?.index, 900);
  assert.is(replay.entries[0]!.index, 901);
  assertLog(replay.entries, range(901, 1010, 1, 100));
}));

test('a gap at the start of the log that no later marker covers is corruption, named', () => withDir(async (dir) => {
  let { wal } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes });
  await wal.append(range(1, 100, 1, 100));
  await wal.appendSnapshotMarker({ index: 50, term: 1, voters: [1n], learners: [] });
  for (let i = 101; i <= 600; i += 50) await wal.append(range(i, i + 49, 1, 100));
  await wal.close();
  // Lose the oldest segments by hand (no release, no covering marker).
  const names = readdirSync(dir).filter((n) => n.endsWith('.wal')).sort();
  for (const name of names.slice(0, 2)) unlinkSync(join(dir, name));
  let error: Error | undefined;
  try {
    ({ wal } = await Wal.open(dir, { segmentSizeBytes: smallSegmentBytes }));
    await wal.close();
  } catch (err) {
    error = err as Error;
  }
  assert.match(error?.message ?? 'opened', /entries start at \d+ but the latest snapshot marker is at 50: entries 51\.\.\d+ are missing/);
}));

test.run();
