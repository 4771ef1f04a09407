import * as fs from 'node:fs';
import { join } from 'node:path';
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { assert } from '../src/platform/assert.js';
import type { FromWriter, OpenedReplay, PackedEntries, ToWriter, WalWriterData, WriterStats } from '../src/storage/wal-protocol.js';
import { LogAssembler, WalCorruptionError, scanSegment } from '../src/storage/wal-reader.js';
import {
  RecordType, batchHeaderRecordBytes, decodeHardState, decodeSnapshotMarker, encodeBatchHeaderRecord,
  encodeHardStateRecord, encodeSnapshotMarkerRecord, hardStateRecordBytes, readU64, recordHeaderBytes,
  sealRecord, snapshotMarkerRecordBytes, type HardState, type SnapshotMarker, type WalEntry,
} from '../src/storage/wal-record.js';
import { listSegments, segmentFileName, temporarySuffix, type SegmentName } from '../src/storage/wal-segment.js';

/**
 * The WAL writer: a worker thread that owns the WAL directory. It replays the segments on start,
 * then writes appended records in group commits: everything waiting on the port goes out as one
 * batch, one writev and one fdatasync, then one 'synced' answer. Synchronous fs calls are right
 * here: this thread does nothing else, and blocking it is what lets appends pile up into the next
 * batch while a fdatasync runs.
 *
 * Segment life cycle (wal-segment.ts): once the current segment is half full, a spare segment is
 * zero-filled ahead of need in 1 MiB steps while the writer is idle, so a roll-over costs one
 * rename instead of writing 64 MiB;
 * zero-filled (not sparse) files mean a fdatasync never has block allocation metadata to flush.
 */

const data = workerData as WalWriterData;
const port: MessagePort = data.port;
const dir = data.dir;
const segmentSizeBytes = data.segmentSizeBytes;
const spareFile = `spare${temporarySuffix}`;
const zeroFillStepBytes = 1024 * 1024;
const zeroStep = Buffer.alloc(zeroFillStepBytes);

interface LiveSegment {
  name: SegmentName;
  /** Highest entry index written into it: it may be released once that index is. */
  maxIndex: number;
}

const stats: WriterStats = {
  syncs: 0, batches: 0, bytesWritten: 0, syncMicrosTotal: 0, syncMicrosMax: 0, segmentsCreated: 0, segmentsReleased: 0,
};

const segments: LiveSegment[] = [];
let fd = -1;
let writeOffset = 0;
/** End of the current segment's first batch: past it, the segment holds appends and may roll. */
let segmentInitialEnd = 0;
let batchSeq = 0;
/** Index of the last entry written (after overwrites): the next segment's name starts after it. */
let lastIndex = 0;
let hardState: HardState | undefined;
let snapshot: SnapshotMarker | undefined;
let spareFilledBytes = -1; // -1: no spare file yet
let spareFd = -1;
let spareScheduled = false;
let failed: string | undefined;
let closing = false;
let pumping = false;
const queue: ToWriter[] = [];
/** fdatasync durations not yet reported to the main thread. */
let recentSyncSeconds: number[] = [];

function send(message: FromWriter, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer ?? []);
}

function timedFdatasync(target: number): void {
  const started = process.hrtime.bigint();
  fs.fdatasyncSync(target);
  const micros = Number(process.hrtime.bigint() - started) / 1000;
  stats.syncs++;
  recentSyncSeconds.push(micros / 1e6);
  stats.syncMicrosTotal += micros;
  if (micros > stats.syncMicrosMax) stats.syncMicrosMax = micros;
}

function syncDir(): void {
  const dirFd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}

// ---- replay --------------------------------------------------------------------------------

function open(): void {
  fs.mkdirSync(dir, { recursive: true });
  const names = fs.readdirSync(dir);
  for (const name of names) {
    if (name.endsWith(temporarySuffix)) fs.unlinkSync(join(dir, name)); // an interrupted creation
  }
  const found = listSegments(names);
  const log = new LogAssembler();
  const usedBuffers: ArrayBuffer[] = [];
  let torn: OpenedReplay['torn'];
  let previousSeq = 0;
  for (let i = 0; i < found.length; i++) {
    const segment = found[i]!;
    if (i > 0 && segment.seq !== found[i - 1]!.seq + 1) {
      throw new WalCorruptionError(segment.fileName, 0, `segment sequence ${segment.seq} does not follow ${found[i - 1]!.seq}: a segment is missing`);
    }
    const path = join(dir, segment.fileName);
    const bytes = fs.readFileSync(path);
    const isLast = i === found.length - 1;
    const scan = scanSegment(bytes, segment, isLast, previousSeq, log);
    previousSeq = scan.lastBatchSeq;
    segments.push({ name: segment, maxIndex: scan.maxIndex });
    if (scan.torn) {
      torn = { file: segment.fileName, offset: scan.torn.offset, reason: scan.torn.reason };
      zeroRange(path, scan.validEnd, scan.torn.dirtyEnd);
    }
    if (isLast) {
      writeOffset = scan.validEnd;
      segmentInitialEnd = scan.batches > 1 ? 0 : scan.validEnd;
    }
    usedBuffers.push(rehomeEntries(log.entries, bytes, scan.validEnd));
  }
  const incomplete = log.checkComplete();
  if (incomplete !== undefined) throw new WalCorruptionError(found[0]?.fileName ?? dir, 0, incomplete);
  batchSeq = previousSeq;
  hardState = log.hardState;
  snapshot = log.snapshot;
  const firstSegmentStart = found.length > 0 ? found[0]!.firstIndex : 1;
  const floor = Math.max(snapshot?.index ?? 0, firstSegmentStart - 1);
  const firstIndex = log.entries.length > 0 ? log.entries[0]!.index : floor + 1;
  lastIndex = log.entries.length > 0 ? log.entries[log.entries.length - 1]!.index : floor;

  if (segments.length === 0) {
    createSegment(1, lastIndex + 1);
  } else {
    fd = fs.openSync(join(dir, segments[segments.length - 1]!.name.fileName), 'r+');
  }
  recentSyncSeconds = [];
  const entries = packEntries(log.entries, usedBuffers);
  const replay: OpenedReplay = { entries, hardState, snapshot, firstIndex, torn, segments: segments.length };
  send({ kind: 'opened', replay, stats }, [entries.numbers.buffer as ArrayBuffer, entries.layout.buffer as ArrayBuffer, ...entries.buffers]);
}

/**
 * Entries decoded from `bytes` are views into the whole segment file, mostly zeros. Re-point
 * them at a copy of the used part only, whose buffer is transferred to the main thread.
 */
function rehomeEntries(entries: WalEntry[], bytes: Buffer, usedBytes: number): ArrayBuffer {
  const used = new Uint8Array(usedBytes);
  used.set(bytes.subarray(0, usedBytes));
  // Entries read from this segment are a suffix of the log: a record only ever appends after
  // cutting the log, so walk back from the end until an entry from an earlier segment.
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i]!;
    if (entry.data.buffer !== bytes.buffer) break;
    const start = entry.data.byteOffset - bytes.byteOffset;
    entry.data = used.subarray(start, start + entry.data.length);
  }
  return used.buffer;
}

function packEntries(entries: WalEntry[], buffers: ArrayBuffer[]): PackedEntries {
  const bufferNumber = new Map(buffers.map((b, i) => [b, i]));
  const numbers = new Float64Array(entries.length * 2);
  const layout = new Uint32Array(entries.length * 4);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const n = bufferNumber.get(e.data.buffer as ArrayBuffer);
    assert(n !== undefined, () => `replayed entry ${e.index} does not point into a segment buffer`);
    numbers[2 * i] = e.index;
    numbers[2 * i + 1] = e.term;
    layout[4 * i] = e.type;
    layout[4 * i + 1] = n;
    layout[4 * i + 2] = e.data.byteOffset;
    layout[4 * i + 3] = e.data.length;
  }
  return { count: entries.length, numbers, layout, buffers };
}

/** Zeroes a torn tail, so the next batch's scan can never mistake old bytes for its own. */
function zeroRange(path: string, from: number, to: number): void {
  if (to <= from) return;
  const target = fs.openSync(path, 'r+');
  try {
    for (let at = from; at < to; at += zeroFillStepBytes) {
      const n = Math.min(zeroFillStepBytes, to - at);
      fs.writeSync(target, zeroStep, 0, n, at);
    }
    timedFdatasync(target);
  } finally {
    fs.closeSync(target);
  }
}

// ---- segments ------------------------------------------------------------------------------

/** Fills the spare file up to `upTo` bytes (1 MiB per call when idle, all at once on roll-over). */
function fillSpare(upTo: number): void {
  if (spareFilledBytes < 0) {
    spareFd = fs.openSync(join(dir, spareFile), 'w+');
    spareFilledBytes = 0;
  }
  while (spareFilledBytes < upTo) {
    const n = Math.min(zeroFillStepBytes, segmentSizeBytes - spareFilledBytes);
    fs.writeSync(spareFd, zeroStep, 0, n, spareFilledBytes);
    spareFilledBytes += n;
  }
}

/**
 * Creates segment `seq` from the spare: its first batch carries the latest hard state and
 * snapshot marker, is synced, and only then does the file get its name (wal-segment.ts).
 */
function createSegment(seq: number, firstIndex: number): void {
  fillSpare(segmentSizeBytes);
  const records = (hardState ? 1 : 0) + (snapshot ? 1 : 0);
  const bytes = batchHeaderRecordBytes + (hardState ? hardStateRecordBytes : 0) + (snapshot ? snapshotMarkerRecordBytes(snapshot) : 0);
  const first = Buffer.alloc(bytes);
  let at = batchHeaderRecordBytes;
  if (hardState) at = sealAt(first, at, encodeHardStateRecord(first, at, hardState));
  if (snapshot) at = sealAt(first, at, encodeSnapshotMarkerRecord(first, at, snapshot));
  encodeBatchHeaderRecord(first, 0, batchSeq + 1, bytes, records);
  writeFully(spareFd, [first], 0);
  timedFdatasync(spareFd);
  const name: SegmentName = { seq, firstIndex, fileName: segmentFileName(seq, firstIndex) };
  fs.renameSync(join(dir, spareFile), join(dir, name.fileName));
  syncDir();
  if (fd >= 0) fs.closeSync(fd);
  fd = spareFd;
  spareFd = -1;
  spareFilledBytes = -1;
  batchSeq++;
  writeOffset = bytes;
  segmentInitialEnd = bytes;
  segments.push({ name, maxIndex: firstIndex - 1 });
  stats.segmentsCreated++;
  stats.bytesWritten += bytes;
}

function sealAt(buf: Buffer, at: number, next: number): number {
  sealRecord(buf, at);
  return next;
}

function writeFully(target: number, buffers: Buffer[], position: number): void {
  let expected = 0;
  for (const b of buffers) expected += b.length;
  const written = fs.writevSync(target, buffers, position);
  // Linux writes regular files whole unless the disk is full; a short write is an I/O failure.
  if (written !== expected) throw new Error(`wal: short write of ${written} of ${expected} bytes at ${position}`);
}

/** Keeps a spare segment ready: one zero-fill step per idle turn of the event loop. */
function scheduleSpare(): void {
  if (spareScheduled || closing || failed !== undefined || spareFilledBytes >= segmentSizeBytes) return;
  // Not before the current segment is half full: a short-lived member (tests, tools) then never
  // writes a second 64 MiB file, and a busy one still has half a segment's time to fill it.
  if (writeOffset < segmentSizeBytes / 2) return;
  spareScheduled = true;
  setImmediate(() => {
    spareScheduled = false;
    drainPort();
    if (queue.length > 0) {
      pump();
      return;
    }
    if (closing || failed !== undefined) return;
    try {
      fillSpare(Math.min(segmentSizeBytes, Math.max(spareFilledBytes, 0) + zeroFillStepBytes));
    } catch (err) {
      fail(err);
      return;
    }
    scheduleSpare();
  });
}

// ---- appends and releases ------------------------------------------------------------------

function drainPort(): void {
  for (;;) {
    const received = receiveMessageOnPort(port);
    if (!received) return;
    queue.push(received.message as ToWriter);
  }
}

/** Fills crcs and notes what the records say: entry indexes, the latest hard state and marker. */
function sealAppend(buf: Buffer, records: number): { maxIndex: number; lastEntryIndex: number } {
  let at = 0;
  let maxIndex = 0;
  let lastEntryIndex = -1;
  for (let i = 0; i < records; i++) {
    const type = buf[at + 4];
    const payload = at + recordHeaderBytes;
    if (type === RecordType.entry) {
      lastEntryIndex = readU64(buf, payload);
      if (lastEntryIndex > maxIndex) maxIndex = lastEntryIndex;
    } else if (type === RecordType.hardState) {
      hardState = decodeHardState(buf, payload);
    } else if (type === RecordType.snapshotMarker) {
      snapshot = decodeSnapshotMarker(buf, payload, buf.readUInt32LE(at));
    }
    at = sealRecord(buf, at);
  }
  assert(at === buf.length, () => `wal append of ${records} records is ${buf.length} bytes, records end at ${at}`);
  return { maxIndex, lastEntryIndex };
}

function writeAppends(): void {
  const first = queue[0] as Extract<ToWriter, { kind: 'append' }>;
  const current = segments[segments.length - 1]!;
  const segmentHasAppends = writeOffset > segmentInitialEnd;
  if (writeOffset + batchHeaderRecordBytes + first.bytes > segmentSizeBytes && segmentHasAppends) {
    createSegment(current.name.seq + 1, lastIndex + 1);
  }
  // Take every waiting append that fits in the segment (the first one always: an append larger
  // than a segment gets a segment of its own that grows past the preallocated size).
  const buffers: Buffer[] = [Buffer.alloc(batchHeaderRecordBytes)];
  let bytes = batchHeaderRecordBytes;
  let records = 0;
  let seq = 0;
  let taken = 0;
  while (queue.length > 0 && queue[0]!.kind === 'append') {
    const next = queue[0] as Extract<ToWriter, { kind: 'append' }>;
    if (taken > 0 && writeOffset + bytes + next.bytes > segmentSizeBytes) break;
    taken++;
    queue.shift();
    const buf = Buffer.from(next.buffer, 0, next.bytes);
    const noted = sealAppend(buf, next.records);
    const live = segments[segments.length - 1]!;
    if (noted.maxIndex > live.maxIndex) live.maxIndex = noted.maxIndex;
    if (noted.lastEntryIndex >= 0) lastIndex = noted.lastEntryIndex;
    buffers.push(buf);
    bytes += next.bytes;
    records += next.records;
    seq = next.seq;
  }
  encodeBatchHeaderRecord(buffers[0]!, 0, batchSeq + 1, bytes, records);
  writeFully(fd, buffers, writeOffset);
  timedFdatasync(fd);
  batchSeq++;
  writeOffset += bytes;
  stats.batches++;
  stats.bytesWritten += bytes;
  send({ kind: 'synced', seq, stats, syncSeconds: recentSyncSeconds });
  recentSyncSeconds = [];
}

function release(message: Extract<ToWriter, { kind: 'release' }>): void {
  const deleted: string[] = [];
  // Only a prefix of segments goes, oldest first, and never the one being written.
  while (segments.length > 1 && segments[0]!.maxIndex <= message.index) {
    const segment = segments.shift()!;
    fs.unlinkSync(join(dir, segment.name.fileName));
    deleted.push(segment.name.fileName);
  }
  if (deleted.length > 0) {
    syncDir();
    stats.segmentsReleased += deleted.length;
  }
  send({ kind: 'released', seq: message.seq, deleted, stats });
}

function close(message: Extract<ToWriter, { kind: 'close' }>): void {
  closing = true;
  if (fd >= 0) fs.closeSync(fd);
  fd = -1;
  if (spareFd >= 0) {
    fs.closeSync(spareFd);
    fs.unlinkSync(join(dir, spareFile));
    spareFd = -1;
  }
  send({ kind: 'closed', seq: message.seq, stats });
  port.close();
}

function fail(err: unknown): void {
  failed = err instanceof Error ? `${err.message}` : String(err);
  send({ kind: 'failed', message: failed });
}

function pump(): void {
  if (pumping) return;
  pumping = true;
  try {
    for (;;) {
      drainPort();
      const message = queue[0];
      if (!message) break;
      if (failed !== undefined) {
        queue.length = 0;
        send({ kind: 'failed', message: failed });
        break;
      }
      if (message.kind === 'append') {
        writeAppends();
      } else if (message.kind === 'release') {
        queue.shift();
        release(message);
      } else {
        queue.shift();
        close(message);
        return;
      }
    }
  } catch (err) {
    fail(err);
  } finally {
    pumping = false;
  }
  scheduleSpare();
}

port.on('message', (message: ToWriter) => {
  queue.push(message);
  pump();
});

try {
  open();
  scheduleSpare();
} catch (err) {
  const corruption = err instanceof WalCorruptionError ? { file: err.file, offset: err.offset, reason: err.reason } : undefined;
  send({ kind: 'open-failed', message: err instanceof Error ? (err.stack ?? err.message) : String(err), corruption });
  port.close();
}
