/**
 * Messages between Backend.scanPacked (main thread, backend.ts) and the scan worker
 * (workers/backend-scan.ts), which reads one bucket of the backend in its own thread at start-up.
 *
 * Why a thread: classic-level hands every record to JavaScript as two Buffers of their own (key
 * and value), made on the thread that reads them; at 1M records that allocation, and the garbage
 * it leaves, was the largest cost of rebuilding the store (profile: a third of start-up in native
 * Buffer creation, a fifth in GC). The worker pays it on the other core and packs the records into
 * large chunks it transfers (not copies) to the main thread, which reads them in place.
 *
 * A chunk is two buffers. `records`: per record
 *
 *   key length (u32 LE) | head length (u32 LE) | tail length (u32 LE) | key (without the bucket byte) | head
 *
 * and `tails`: each record's tail, back to back. A value is split into its first `headBytes`
 * (all of it if shorter), read once and dropped with `records`, and the rest, which the reader
 * may keep views of: the mvcc store's recovered values are views of `tails` (kv-store.ts), so
 * `tails` holds nothing else (no keys, no headers) and is cut to its used length before it is
 * sent. E.g. key 00..05 "foo" (11 B) with a 27-byte mvcc record and headBytes 24:
 * records 0b 00 00 00 | 18 00 00 00 | 03 00 00 00 | 11 B key | 24 B header; tails: 3 B value.
 * A record larger than a chunk gets a chunk of its own.
 *
 * Flow control: the worker keeps at most `chunksInFlightMax` chunks unacknowledged; the main
 * thread acks each once it has visited it. So a backend larger than memory is never all queued.
 */
import type { MessagePort } from 'node:worker_threads';

export interface ScanWorkerData {
  location: string;
  /** First and end key, WITH the bucket byte. */
  gte: Uint8Array;
  lt: Uint8Array;
  chunkBytes: number;
  headBytes: number;
  chunksInFlightMax: number;
  port: MessagePort;
}

export const PACKED_RECORD_HEADER_BYTES = 12;

export type FromScanWorker =
  | { kind: 'chunk'; records: ArrayBuffer; recordsBytes: number; tails: ArrayBuffer; count: number }
  | { kind: 'done'; records: number }
  | { kind: 'failed'; message: string };

export type ToScanWorker = { kind: 'ack' } | { kind: 'stop' };

export interface PackedChunk {
  records: Buffer;
  recordsBytes: number;
  /** Exactly the used bytes, in memory of its own (byteOffset 0: transferable whole). */
  tails: Buffer;
  count: number;
}

/**
 * Fills chunks of `chunkBytes` (records and tails each) in the layout above. Synchronous: full
 * chunks wait in `full` until the caller takes them (the worker, between its reads, with flow
 * control).
 */
export class RecordPacker {
  private records: Buffer;
  private recordsUsed = 0;
  private tails: Buffer;
  private tailsUsed = 0;
  private count = 0;
  /** Chunks filled and not yet taken, in record order. */
  readonly full: PackedChunk[] = [];

  constructor(private readonly chunkBytes: number, private readonly headBytes: number) {
    this.records = Buffer.allocUnsafeSlow(chunkBytes);
    this.tails = Buffer.allocUnsafeSlow(chunkBytes);
  }

  /** Adds one LevelDB entry; `key` still has its bucket byte, which is dropped. */
  add(key: Buffer, value: Buffer): void {
    const head = Math.min(this.headBytes, value.length);
    const recordNeed = PACKED_RECORD_HEADER_BYTES + key.length - 1 + head;
    const tailNeed = value.length - head;
    if (this.recordsUsed + recordNeed > this.records.length || this.tailsUsed + tailNeed > this.tails.length) {
      this.close();
      this.records = Buffer.allocUnsafeSlow(Math.max(recordNeed, this.chunkBytes));
      this.tails = Buffer.allocUnsafeSlow(Math.max(tailNeed, this.chunkBytes));
    }
    const records = this.records;
    let at = this.recordsUsed;
    records.writeUInt32LE(key.length - 1, at);
    records.writeUInt32LE(head, at + 4);
    records.writeUInt32LE(tailNeed, at + 8);
    at += PACKED_RECORD_HEADER_BYTES;
    at += key.copy(records, at, 1);
    at += value.copy(records, at, 0, head);
    this.recordsUsed = at;
    this.tailsUsed += value.copy(this.tails, this.tailsUsed, head);
    this.count++;
  }

  /** Moves the chunk being filled, if it holds any record, to `full`; add() starts a new one. */
  close(): void {
    if (this.count === 0) return;
    // Tails outlive the chunk as views: a partly used buffer is cut to size (a copy, here in the
    // packer's thread), or its unused bytes would stay allocated with them.
    let tails = this.tails;
    if (this.tailsUsed < tails.length) {
      tails = Buffer.allocUnsafeSlow(this.tailsUsed);
      this.tails.copy(tails, 0, 0, this.tailsUsed);
    }
    this.full.push({ records: this.records, recordsBytes: this.recordsUsed, tails, count: this.count });
    this.records = EMPTY_CHUNK;
    this.tails = EMPTY_CHUNK;
    this.recordsUsed = 0;
    this.tailsUsed = 0;
    this.count = 0;
  }
}

const EMPTY_CHUNK = Buffer.alloc(0);

/**
 * Visits the records of one chunk in order: `visit(records, keyStart, keyEnd, headEnd, tails,
 * tailStart, tailEnd)`: the key at records[keyStart, keyEnd) (without the bucket byte), the
 * value's head at records[keyEnd, headEnd) and its tail at tails[tailStart, tailEnd). The visitor
 * may keep views of `tails` (never reused), not of `records`. Returns the number of records.
 */
export function visitPacked(chunk: PackedChunk, visit: PackedRecordVisitor): number {
  const { records, recordsBytes, tails } = chunk;
  let at = 0;
  let tailAt = 0;
  let count = 0;
  while (at < recordsBytes) {
    const keyStart = at + PACKED_RECORD_HEADER_BYTES;
    const keyEnd = keyStart + records.readUInt32LE(at);
    const headEnd = keyEnd + records.readUInt32LE(at + 4);
    const tailEnd = tailAt + records.readUInt32LE(at + 8);
    if (headEnd > recordsBytes || tailEnd > tails.length) {
      throw new Error(`packed backend record at ${at} runs past its chunk (${recordsBytes} record bytes, ${tails.length} tail bytes)`);
    }
    visit(records, keyStart, keyEnd, headEnd, tails, tailAt, tailEnd);
    at = headEnd;
    tailAt = tailEnd;
    count++;
  }
  if (tailAt !== tails.length) throw new Error(`packed backend chunk has ${tails.length - tailAt} tail bytes no record claims`);
  return count;
}

export type PackedRecordVisitor = (
  records: Buffer, keyStart: number, keyEnd: number, headEnd: number, tails: Buffer, tailStart: number, tailEnd: number,
) => void;
