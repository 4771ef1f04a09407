import { KeyraftError } from '../platform/errors.js';
import {
  RecordType, decodeBatchHeader, decodeEntry, decodeHardState, decodeSnapshotMarker, readRecord,
  recordAlignBytes, type HardState, type RecordRead, type SnapshotMarker, type WalEntry,
} from './wal-record.js';
import type { SegmentName } from './wal-segment.js';

/**
 * Replay: scanning segments (format in wal-record.ts) and rebuilding the Raft log from them.
 *
 * Torn tail or corruption? Only the last batch of the last segment can be torn, because the
 * writer issues the next batch only after the previous one's fdatasync returned, and starts a
 * new segment only after that too. The disk may persist the sectors of an unsynced write in any
 * order; unwritten space reads as zeros because segments are zero-filled before use. So, at the
 * first offset `o` where a record cannot be read in the last segment:
 *
 *   - all bytes from o to the end are zero: the normal end of the log (preallocated space). If o
 *     is inside a batch whose records are not all there, that batch is a torn tail.
 *   - a header no torn write can produce (unknown type, reserved bits set, length over the
 *     limit): corruption.
 *   - a valid batch header with a higher batch sequence somewhere after o: the damaged batch was
 *     synced before that later batch was written, so this is corruption.
 *   - no valid record at all after o: a torn tail (the write was cut at o).
 *   - valid records of the same batch after o: a torn tail only if the damaged record has a
 *     512-byte sector whose part in the record is all zeros (a sector the disk did not write
 *     before the crash); otherwise the bytes were written and changed since: corruption.
 *
 * A torn tail is cut at the start of its batch (the batch was never acknowledged, so none of its
 * records may count), logged as a warning, and zeroed on disk by the writer. Anything that is not
 * a torn tail stops start-up with WalCorruptionError naming the file and byte offset. In any
 * segment but the last, every unreadable non-zero byte is corruption.
 *
 * Worked example: the last segment holds batches B1 (seq 7, offsets 0..4095) and B2 (seq 8,
 * 4096..9000) and a crash hit during B2's write. Case a: bytes 6000.. were not written -> the
 * record at 5992 fails its crc, nothing valid follows, B2 is cut at 4096; the log ends with B1.
 * Case b: later, after B3 (seq 9) was synced at 9000, a bit flips at 5000 -> the record there
 * fails its crc, B3's header is found after it: WalCorruptionError(file, 4992 or wherever the
 * damaged record starts).
 */

const sectorBytes = 512;

export class WalCorruptionError extends KeyraftError {
  override name = 'WalCorruptionError';
  readonly file: string;
  readonly offset: number;
  readonly reason: string;

  constructor(file: string, offset: number, reason: string) {
    super('Corrupt', `wal: corrupt record in ${file} at byte offset ${offset}: ${reason}`);
    this.file = file;
    this.offset = offset;
    this.reason = reason;
  }
}

/**
 * The Raft log as replay rebuilds it. A record for an index the log already holds truncates the
 * log from that index (Raft's overwrite of an uncommitted suffix), so after replay the log is
 * exactly what was last written. A snapshot marker drops the entries it covers.
 *
 * Invariant: entries are contiguous (entries[i].index === entries[0].index + i) and their terms
 * never decrease.
 */
export class LogAssembler {
  entries: WalEntry[] = [];
  hardState: HardState | undefined;
  snapshot: SnapshotMarker | undefined;
  /** Marker index after which entries started with a gap (only at the start of the log); a later marker must close it. */
  private gapAfter: number | null = null;

  /** Returns a reason when the entry cannot follow the log (a gap or a term going back). */
  addEntry(entry: WalEntry): string | undefined {
    if (this.snapshot && entry.index <= this.snapshot.index) return undefined; // covered by the snapshot
    const entries = this.entries;
    if (entries.length === 0) {
      if (this.snapshot && entry.index !== this.snapshot.index + 1) {
        // Legal only at the start of what survives a release: the first remaining segment's header
        // carries the marker that was latest when it was created, and the marker that covers the
        // released entries comes later in the log (release follows the marker it releases up to).
        // checkComplete() verifies at the end that a later marker closed the gap.
        if (this.gapAfter !== null || entry.index < this.snapshot.index + 1) {
          return `entry ${entry.index} does not follow snapshot marker at ${this.snapshot.index}`;
        }
        this.gapAfter = this.snapshot.index;
      }
      entries.push(entry);
      return undefined;
    }
    const first = entries[0]!.index;
    const last = entries[entries.length - 1]!.index;
    if (entry.index > last + 1) return `entry ${entry.index} leaves a gap after ${last}`;
    if (entry.index < first) {
      entries.length = 0;
    } else if (entry.index <= last) {
      entries.length = entry.index - first; // overwrite: cut the suffix from entry.index on
    }
    const previous = entries[entries.length - 1];
    if (previous && entry.term < previous.term) {
      return `entry ${entry.index} has term ${entry.term}, below term ${previous.term} of entry ${previous.index}`;
    }
    entries.push(entry);
    return undefined;
  }

  addSnapshotMarker(marker: SnapshotMarker): void {
    this.snapshot = marker;
    const keepFrom = this.entries.findIndex((e) => e.index > marker.index);
    this.entries = keepFrom < 0 ? [] : this.entries.slice(keepFrom);
    const first = this.entries[0];
    if (this.gapAfter !== null && (first === undefined || first.index === marker.index + 1)) this.gapAfter = null;
  }

  /** Once every segment is read: a gap left at the start of the log must be covered by a marker by now. */
  checkComplete(): string | undefined {
    const first = this.entries[0];
    if (this.gapAfter === null || this.snapshot === undefined || first === undefined || first.index === this.snapshot.index + 1) return undefined;
    return `entries start at ${first.index} but the latest snapshot marker is at ${this.snapshot.index}: entries ${this.snapshot.index + 1}..${first.index - 1} are missing`;
  }
}

export interface SegmentScan {
  segment: SegmentName;
  /** Offset after the last complete batch: where the next batch goes. */
  validEnd: number;
  /** Highest entry index written in this segment (firstIndex - 1 when it holds no entry). */
  maxIndex: number;
  /** Sequence of the last complete batch, or `previousBatchSeq` when the segment holds none. */
  lastBatchSeq: number;
  batches: number;
  /** Set when a torn tail was found: bytes validEnd..dirtyEnd must be zeroed. */
  torn: { offset: number; reason: string; dirtyEnd: number } | undefined;
}

interface PendingRecord {
  type: RecordType;
  payloadOffset: number;
  payloadBytes: number;
  offset: number;
}

/**
 * Scans one segment's bytes (`buf`, the whole file) and feeds every complete batch to `log`.
 * Throws WalCorruptionError; reports a torn tail in the result (last segment only).
 * `previousBatchSeq` is the last batch sequence of the segment before (0 for the first one read).
 */
export function scanSegment(
  buf: Buffer, segment: SegmentName, isLast: boolean, previousBatchSeq: number, log: LogAssembler,
): SegmentScan {
  const end = buf.length;
  const file = segment.fileName;
  let offset = 0;
  let lastBatchSeq = previousBatchSeq;
  let maxIndex = segment.firstIndex - 1;
  let batches = 0;
  const pending: PendingRecord[] = [];

  const result = (torn: SegmentScan['torn']): SegmentScan => ({
    segment, validEnd: offset, maxIndex, lastBatchSeq, batches, torn,
  });

  for (;;) {
    // Expect a batch header at `offset`.
    const batchStart = offset;
    const head = readRecord(buf, batchStart, end);
    if (head.kind === 'zero' && isZero(buf, batchStart, end)) return result(undefined);
    if (head.kind !== 'record') {
      return result(classifyDamage(buf, file, isLast, batchStart, batchStart, head, lastBatchSeq));
    }
    if (head.type !== RecordType.batchHeader) {
      throw new WalCorruptionError(file, batchStart, `expected a batch header, found record type ${head.type}`);
    }
    const header = decodeBatchHeader(buf, head.payloadOffset)!;
    if (lastBatchSeq !== 0 && header.batchSeq !== lastBatchSeq + 1) {
      throw new WalCorruptionError(file, batchStart, `batch sequence ${header.batchSeq} does not follow ${lastBatchSeq}`);
    }
    const batchEnd = batchStart + header.batchBytes;
    pending.length = 0;
    let at = head.next;
    for (let i = 0; i < header.recordCount; i++) {
      const read = readRecord(buf, at, end);
      if (read.kind !== 'record') {
        return result(classifyDamage(buf, file, isLast, batchStart, at, read, lastBatchSeq));
      }
      if (read.type === RecordType.batchHeader) {
        throw new WalCorruptionError(file, at, `batch at ${batchStart} promises ${header.recordCount} records but a batch header follows after ${i}`);
      }
      pending.push({ type: read.type, payloadOffset: read.payloadOffset, payloadBytes: read.payloadBytes, offset: at });
      at = read.next;
    }
    if (at !== batchEnd) {
      throw new WalCorruptionError(file, batchStart, `batch length ${header.batchBytes} does not match its ${header.recordCount} records (${at - batchStart} bytes)`);
    }
    // The batch is whole: its records count.
    for (const record of pending) {
      const reason = applyRecord(buf, record, log);
      if (reason !== undefined) throw new WalCorruptionError(file, record.offset, reason);
      if (record.type === RecordType.entry) {
        const index = log.entries.length > 0 ? log.entries[log.entries.length - 1]!.index : maxIndex;
        if (index > maxIndex) maxIndex = index;
      }
    }
    lastBatchSeq = header.batchSeq;
    batches++;
    offset = batchEnd;
  }
}

function applyRecord(buf: Buffer, record: PendingRecord, log: LogAssembler): string | undefined {
  switch (record.type) {
    case RecordType.entry: {
      const entry = decodeEntry(buf, record.payloadOffset, record.payloadBytes);
      if (!entry) return 'entry with an out-of-range index, term or type';
      return log.addEntry(entry);
    }
    case RecordType.hardState: {
      const state = decodeHardState(buf, record.payloadOffset);
      if (!state) return 'hard state with an out-of-range field';
      log.hardState = state;
      return undefined;
    }
    case RecordType.snapshotMarker: {
      const marker = decodeSnapshotMarker(buf, record.payloadOffset, record.payloadBytes);
      if (!marker) return 'snapshot marker with an out-of-range field';
      log.addSnapshotMarker(marker);
      return undefined;
    }
    case RecordType.batchHeader:
      return 'nested batch header';
  }
}

/** Decides torn tail (returned) or corruption (thrown) for an unreadable record at `at`. */
function classifyDamage(
  buf: Buffer, file: string, isLast: boolean, batchStart: number, at: number, read: RecordRead, lastBatchSeq: number,
): NonNullable<SegmentScan['torn']> {
  const reason = read.kind === 'zero' ? 'zero bytes where a record should be' : read.kind === 'record' ? 'unexpected record' : read.reason;
  if (!isLast) throw new WalCorruptionError(file, at, `${reason} (not the last segment)`);
  if (read.kind === 'impossible') throw new WalCorruptionError(file, at, reason);
  const end = buf.length;
  const dirtyEnd = lastNonZero(buf, at, end);
  const torn = { offset: batchStart, reason: `${reason} at byte offset ${at}`, dirtyEnd: Math.max(dirtyEnd, batchStart) };
  if (dirtyEnd <= at) return torn; // only zeros after the damage: the write stopped here
  const later = findLaterBatchHeader(buf, at + recordAlignBytes, dirtyEnd, lastBatchSeq);
  if (later >= 0) {
    throw new WalCorruptionError(file, at, `${reason}; a later batch starts at byte offset ${later}`);
  }
  const recordEnd = read.kind === 'crc' ? read.next : Math.min(at + sectorBytes, end);
  if (!findValidRecord(buf, at + recordAlignBytes, dirtyEnd)) return torn;
  if (read.kind === 'short' || read.kind === 'zero' || hasUnwrittenSector(buf, at, Math.min(recordEnd, end))) return torn;
  throw new WalCorruptionError(file, at, `${reason}; valid records follow in the same batch`);
}

function isZero(buf: Buffer, from: number, to: number): boolean {
  return lastNonZero(buf, from, to) <= from;
}

const zeroChunk = Buffer.alloc(64 * 1024);

/** One past the last non-zero byte in [from, to), or `from` when all are zero. */
function lastNonZero(buf: Buffer, from: number, to: number): number {
  let high = to;
  // Skip whole zero chunks from the end with memcmp: preallocated space is most of a segment.
  while (high - from >= zeroChunk.length && buf.subarray(high - zeroChunk.length, high).equals(zeroChunk)) {
    high -= zeroChunk.length;
  }
  while (high > from && buf[high - 1] === 0) high--;
  return high;
}

function findLaterBatchHeader(buf: Buffer, from: number, to: number, lastBatchSeq: number): number {
  for (let at = alignUp(from); at + 12 <= to; at += recordAlignBytes) {
    if (buf[at + 4] !== RecordType.batchHeader) continue;
    const read = readRecord(buf, at, to);
    if (read.kind !== 'record' || read.type !== RecordType.batchHeader) continue;
    const header = decodeBatchHeader(buf, read.payloadOffset);
    if (header && header.batchSeq > lastBatchSeq) return at;
  }
  return -1;
}

function findValidRecord(buf: Buffer, from: number, to: number): boolean {
  for (let at = alignUp(from); at + 12 <= to; at += recordAlignBytes) {
    const type = buf[at + 4]!;
    if (type === 0 || type > RecordType.batchHeader) continue;
    if (readRecord(buf, at, to).kind === 'record') return true;
  }
  return false;
}

/** Whether some 512-byte sector's part inside [from, to) is all zeros (a sector never written). */
function hasUnwrittenSector(buf: Buffer, from: number, to: number): boolean {
  for (let sector = from - (from % sectorBytes); sector < to; sector += sectorBytes) {
    const a = Math.max(sector, from);
    const b = Math.min(sector + sectorBytes, to);
    if (b > a && isZero(buf, a, b)) return true;
  }
  return false;
}

function alignUp(n: number): number {
  return (n + recordAlignBytes - 1) & ~(recordAlignBytes - 1);
}
