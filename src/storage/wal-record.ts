import { crc32 } from 'node:zlib';
import { assert } from '../platform/assert.js';
import { Limits } from '../platform/limits.js';

/**
 * The WAL record format: one fixed binary layout, described here once.
 *
 * A segment file is a sequence of records, each starting at a multiple of 8 bytes, followed by
 * zeros up to the preallocated size. All integers are little-endian; 64-bit values (indexes,
 * terms) are written as two u32 halves (low, high) and must be safe integers.
 *
 *   offset  size  field
 *   0       4     payloadBytes   length of the payload that follows the 12-byte header
 *   4       1     type           1 entry, 2 hard state, 3 snapshot marker, 4 batch header
 *   5       3     reserved       zero
 *   8       4     crc            CRC-32 (IEEE, zlib.crc32) of bytes 0..7 and then the payload
 *   12      n     payload
 *   12+n    0..7  zero padding to the next multiple of 8
 *
 * Payloads:
 *   entry (1)            u64 index, u64 term, u32 entry type (0 normal, 1 conf change), data...
 *                        (data length = payloadBytes - 20)
 *   hard state (2)       u64 term, u64 vote (a 64-bit member id), u64 commit           (24 bytes)
 *   snapshot marker (3)  u64 index, u64 term, u32 voterCount, u32 learnerCount, then voterCount
 *                        and learnerCount u64 member ids: the Raft snapshot's metadata, the
 *                        configuration as of index included (24 + 8 per member bytes)
 *   batch header (4)     u64 batchSeq, u32 batchBytes, u32 recordCount                  (16 bytes)
 *
 * Every write the WAL writer makes (one per group commit, followed by one fdatasync) is a batch:
 * a batch header record, then `recordCount` records, `batchBytes` bytes in all, the header
 * included. batchSeq grows by one per batch across all segments. The next batch is written only
 * after the previous one's fdatasync returned, so on start-up only the last batch of the last
 * segment can be torn; a damaged record followed by a later valid batch header is corruption
 * of data that was acknowledged as durable (wal-reader.ts decides, with worked examples).
 *
 * Worked example: an append of entry {index 7, term 2, data "ab"} and hard state
 * {term 2, vote 1, commit 6}, the first write into a segment, takes 112 bytes:
 *   0    batch header  payloadBytes 16, type 4, crc, seq, batchBytes 112, recordCount 2
 *                      (12 + 16 = 28 bytes, padded to 32)
 *   32   entry         payloadBytes 22, type 1, crc, index 7, term 2, entry type 0, "ab"
 *                      (12 + 20 + 2 = 34 bytes, padded to 40)
 *   72   hard state    payloadBytes 24, type 2, crc, term 2, vote 1, commit 6
 *                      (12 + 24 = 36 bytes, padded to 40; the next batch starts at 112)
 *
 * Why a fixed layout rather than keyraftpb.Entry via protobufjs: the worker fills CRCs and reads
 * indexes straight from the bytes without loading protobufjs or allocating per entry; entry data
 * is already an encoded InternalRequest and is copied once, not re-encoded; terms and indexes
 * stay plain numbers without Long conversion; and the bounds checks of a hand-written decoder
 * are exactly what torn-tail detection needs.
 */

export interface WalEntry {
  term: number;
  index: number;
  /** 0 normal (data is an encoded InternalRequest, empty for a leader's no-op), 1 conf change. */
  type: number;
  data: Uint8Array;
}

/** The Raft core's hard state; vote is a member id (64-bit, 0n = none). */
export interface HardState {
  term: number;
  vote: bigint;
  commit: number;
}

/**
 * The metadata of the Raft snapshot the log continues from: every entry at or below index is
 * covered by the state machine image, and the configuration as of index travels with it (a
 * restart rebuilds the membership from it plus the conf changes in the entries after it).
 */
export interface SnapshotMarker {
  index: number;
  term: number;
  voters: readonly bigint[];
  learners: readonly bigint[];
}

export const RecordType = {
  entry: 1,
  hardState: 2,
  snapshotMarker: 3,
  batchHeader: 4,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

export const recordHeaderBytes = 12;
export const recordAlignBytes = 8;
export const entryFixedBytes = 20;
export const hardStatePayloadBytes = 24;
/** The fixed part of a snapshot marker's payload; each member id adds 8 bytes. */
export const snapshotMarkerFixedBytes = 24;
export const batchHeaderPayloadBytes = 16;
/** A batch header record's size on disk: 12 + 16 = 28, padded to 32. */
export const batchHeaderRecordBytes = align8(recordHeaderBytes + batchHeaderPayloadBytes);
export const hardStateRecordBytes = align8(recordHeaderBytes + hardStatePayloadBytes);
/** A snapshot marker record's size on disk, padding included. */
export function snapshotMarkerRecordBytes(marker: SnapshotMarker): number {
  return align8(recordHeaderBytes + snapshotMarkerFixedBytes + 8 * (marker.voters.length + marker.learners.length));
}

const twoTo32 = 0x1_0000_0000;

export function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Bytes one entry record takes on disk, padding included. */
export function entryRecordBytes(dataBytes: number): number {
  return align8(recordHeaderBytes + entryFixedBytes + dataBytes);
}

export function writeU64(buf: Buffer, offset: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, () => `WAL u64 field must be a safe non-negative integer, got ${value}`);
  buf.writeUInt32LE(value % twoTo32, offset);
  buf.writeUInt32LE(Math.floor(value / twoTo32), offset + 4);
}

/** Reads a u64 written by writeU64; returns -1 when it is not a safe integer (only corrupt data). */
export function readU64(buf: Buffer, offset: number): number {
  const low = buf.readUInt32LE(offset);
  const high = buf.readUInt32LE(offset + 4);
  if (high > 0x1f_ffff) return -1;
  return high * twoTo32 + low;
}

/** Writes a record header with crc 0; `sealRecord` fills the crc once the payload is in place. */
function writeHeader(buf: Buffer, offset: number, type: RecordType, payloadBytes: number): void {
  buf.writeUInt32LE(payloadBytes, offset);
  buf.writeUInt32LE(type, offset + 4); // type byte + 3 reserved zero bytes
  buf.writeUInt32LE(0, offset + 8);
}

/** Encodes an entry record at `offset` (crc left 0). Returns the offset after its padding. */
export function encodeEntryRecord(buf: Buffer, offset: number, entry: WalEntry): number {
  assert(entry.type === 0 || entry.type === 1, () => `WAL entry ${entry.index} has unknown type ${entry.type}`);
  const payloadBytes = entryFixedBytes + entry.data.length;
  assert(payloadBytes <= Limits.walRecordBytesMax, () => `WAL entry ${entry.index} is ${payloadBytes} bytes, over walRecordBytesMax`);
  writeHeader(buf, offset, RecordType.entry, payloadBytes);
  const p = offset + recordHeaderBytes;
  writeU64(buf, p, entry.index);
  writeU64(buf, p + 8, entry.term);
  buf.writeUInt32LE(entry.type, p + 16);
  buf.set(entry.data, p + entryFixedBytes);
  const end = p + payloadBytes;
  const padded = offset + align8(recordHeaderBytes + payloadBytes);
  buf.fill(0, end, padded);
  return padded;
}

export function encodeHardStateRecord(buf: Buffer, offset: number, state: HardState): number {
  writeHeader(buf, offset, RecordType.hardState, hardStatePayloadBytes);
  const p = offset + recordHeaderBytes;
  writeU64(buf, p, state.term);
  assert(state.vote >= 0n && state.vote < 1n << 64n, () => `WAL hard state vote ${state.vote} is not a 64-bit member id`);
  buf.writeBigUInt64LE(state.vote, p + 8);
  writeU64(buf, p + 16, state.commit);
  buf.fill(0, p + hardStatePayloadBytes, offset + hardStateRecordBytes);
  return offset + hardStateRecordBytes;
}

export function encodeSnapshotMarkerRecord(buf: Buffer, offset: number, marker: SnapshotMarker): number {
  const payloadBytes = snapshotMarkerFixedBytes + 8 * (marker.voters.length + marker.learners.length);
  writeHeader(buf, offset, RecordType.snapshotMarker, payloadBytes);
  const p = offset + recordHeaderBytes;
  writeU64(buf, p, marker.index);
  writeU64(buf, p + 8, marker.term);
  buf.writeUInt32LE(marker.voters.length, p + 16);
  buf.writeUInt32LE(marker.learners.length, p + 20);
  let at = p + snapshotMarkerFixedBytes;
  for (const id of [...marker.voters, ...marker.learners]) {
    buf.writeBigUInt64LE(id, at);
    at += 8;
  }
  const end = offset + snapshotMarkerRecordBytes(marker);
  buf.fill(0, at, end);
  return end;
}

export function encodeBatchHeaderRecord(buf: Buffer, offset: number, batchSeq: number, batchBytes: number, recordCount: number): number {
  writeHeader(buf, offset, RecordType.batchHeader, batchHeaderPayloadBytes);
  const p = offset + recordHeaderBytes;
  writeU64(buf, p, batchSeq);
  buf.writeUInt32LE(batchBytes, p + 8);
  buf.writeUInt32LE(recordCount, p + 12);
  buf.fill(0, p + batchHeaderPayloadBytes, offset + batchHeaderRecordBytes);
  sealRecord(buf, offset);
  return offset + batchHeaderRecordBytes;
}

function recordCrc(buf: Buffer, offset: number, payloadBytes: number): number {
  const head = crc32(buf.subarray(offset, offset + 8));
  return crc32(buf.subarray(offset + recordHeaderBytes, offset + recordHeaderBytes + payloadBytes), head);
}

/** Computes and stores the crc of the record at `offset`. Returns the offset of the next record. */
export function sealRecord(buf: Buffer, offset: number): number {
  const payloadBytes = buf.readUInt32LE(offset);
  buf.writeUInt32LE(recordCrc(buf, offset, payloadBytes), offset + 8);
  return offset + align8(recordHeaderBytes + payloadBytes);
}

/** The outcome of reading the bytes at one offset. */
export type RecordRead =
  | { kind: 'record'; type: RecordType; payloadOffset: number; payloadBytes: number; next: number }
  /** The 12 header bytes are all zero: no record starts here (end of data, or preallocated space). */
  | { kind: 'zero' }
  /** The record would run past the end of the file, or its header is cut. */
  | { kind: 'short'; reason: string }
  /** A header no torn write of ours can produce: unknown type, reserved bits, impossible length. */
  | { kind: 'impossible'; reason: string }
  /** The header is plausible but the crc does not match (a torn write or corruption). */
  | { kind: 'crc'; reason: string; next: number };

const minPayloadBytes: Record<RecordType, number> = {
  [RecordType.entry]: entryFixedBytes,
  [RecordType.hardState]: hardStatePayloadBytes,
  [RecordType.snapshotMarker]: snapshotMarkerFixedBytes,
  [RecordType.batchHeader]: batchHeaderPayloadBytes,
};

/**
 * Reads the record header at `offset` and checks its crc. Type 0 with a non-zero length is
 * reported as 'crc' (not 'impossible'): a write cut inside the header leaves the type byte zero.
 */
export function readRecord(buf: Buffer, offset: number, end: number): RecordRead {
  if (offset + recordHeaderBytes > end) {
    for (let i = offset; i < end; i++) if (buf[i] !== 0) return { kind: 'short', reason: `record header cut at end of file` };
    return { kind: 'zero' };
  }
  const payloadBytes = buf.readUInt32LE(offset);
  const type = buf[offset + 4]!;
  const reserved = buf.readUIntLE(offset + 5, 3);
  const crc = buf.readUInt32LE(offset + 8);
  if (payloadBytes === 0 && type === 0 && reserved === 0 && crc === 0) return { kind: 'zero' };
  if (reserved !== 0) return { kind: 'impossible', reason: `reserved header bytes are ${reserved.toString(16)}, not zero` };
  if (type > RecordType.batchHeader) return { kind: 'impossible', reason: `unknown record type ${type}` };
  if (payloadBytes > Limits.walRecordBytesMax) return { kind: 'impossible', reason: `record length ${payloadBytes} exceeds walRecordBytesMax ${Limits.walRecordBytesMax}` };
  const next = offset + align8(recordHeaderBytes + payloadBytes);
  if (type === 0) return { kind: 'crc', reason: 'record type 0 with non-zero header (torn header?)', next: Math.min(next, end) };
  const recordType = type as RecordType;
  if (payloadBytes < minPayloadBytes[recordType]) {
    return { kind: 'impossible', reason: `record length ${payloadBytes} is below the minimum ${minPayloadBytes[recordType]} for type ${type}` };
  }
  if (recordType !== RecordType.entry && recordType !== RecordType.snapshotMarker && payloadBytes !== minPayloadBytes[recordType]) {
    return { kind: 'impossible', reason: `record length ${payloadBytes} is not ${minPayloadBytes[recordType]} for type ${type}` };
  }
  if (offset + recordHeaderBytes + payloadBytes > end) {
    return { kind: 'short', reason: `record of ${payloadBytes} payload bytes runs past the end of the file` };
  }
  const actual = recordCrc(buf, offset, payloadBytes);
  if (actual !== crc) {
    return { kind: 'crc', reason: `crc mismatch: stored ${crc.toString(16)}, computed ${actual.toString(16)}`, next };
  }
  return { kind: 'record', type: recordType, payloadOffset: offset + recordHeaderBytes, payloadBytes, next };
}

export function decodeEntry(buf: Buffer, payloadOffset: number, payloadBytes: number): WalEntry | undefined {
  const index = readU64(buf, payloadOffset);
  const term = readU64(buf, payloadOffset + 8);
  const type = buf.readUInt32LE(payloadOffset + 16);
  if (index < 0 || term < 0 || (type !== 0 && type !== 1)) return undefined;
  const data = buf.subarray(payloadOffset + entryFixedBytes, payloadOffset + payloadBytes);
  return { index, term, type, data };
}

export function decodeHardState(buf: Buffer, payloadOffset: number): HardState | undefined {
  const term = readU64(buf, payloadOffset);
  const vote = buf.readBigUInt64LE(payloadOffset + 8);
  const commit = readU64(buf, payloadOffset + 16);
  if (term < 0 || commit < 0) return undefined;
  return { term, vote, commit };
}

export function decodeSnapshotMarker(buf: Buffer, payloadOffset: number, payloadBytes: number): SnapshotMarker | undefined {
  const index = readU64(buf, payloadOffset);
  const term = readU64(buf, payloadOffset + 8);
  const voterCount = buf.readUInt32LE(payloadOffset + 16);
  const learnerCount = buf.readUInt32LE(payloadOffset + 20);
  if (index < 0 || term < 0) return undefined;
  if (payloadBytes !== snapshotMarkerFixedBytes + 8 * (voterCount + learnerCount)) return undefined;
  const ids: bigint[] = [];
  for (let i = 0; i < voterCount + learnerCount; i++) ids.push(buf.readBigUInt64LE(payloadOffset + snapshotMarkerFixedBytes + 8 * i));
  return { index, term, voters: ids.slice(0, voterCount), learners: ids.slice(voterCount) };
}

export interface BatchHeader {
  batchSeq: number;
  batchBytes: number;
  recordCount: number;
}

export function decodeBatchHeader(buf: Buffer, payloadOffset: number): BatchHeader | undefined {
  const batchSeq = readU64(buf, payloadOffset);
  if (batchSeq < 0) return undefined;
  return { batchSeq, batchBytes: buf.readUInt32LE(payloadOffset + 8), recordCount: buf.readUInt32LE(payloadOffset + 12) };
}
