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
 * Chunk layout: records back to back, each
 *
 *   key length (u32 LE) | value length (u32 LE) | key (without the bucket byte) | value
 *
 * e.g. key 00..05 "foo" (11 B) with a 27-byte value: 0b 00 00 00 | 1b 00 00 00 | 11 B | 27 B.
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
  chunksInFlightMax: number;
  port: MessagePort;
}

export const PACKED_RECORD_HEADER_BYTES = 8;

export type FromScanWorker =
  | { kind: 'chunk'; buffer: ArrayBuffer; bytes: number; records: number }
  | { kind: 'done'; records: number }
  | { kind: 'failed'; message: string };

export type ToScanWorker = { kind: 'ack' } | { kind: 'stop' };

export interface PackedChunk {
  chunk: Buffer;
  bytes: number;
  records: number;
}

/**
 * Fills chunks of `chunkBytes` with records in the layout above. Synchronous: full chunks wait in
 * `full` until the caller takes them (the worker, between its reads, and with flow control).
 */
export class RecordPacker {
  private chunk: Buffer;
  private used = 0;
  private records = 0;
  /** Chunks filled and not yet taken, in record order. */
  readonly full: PackedChunk[] = [];

  constructor(private readonly chunkBytes: number) {
    this.chunk = Buffer.allocUnsafeSlow(chunkBytes);
  }

  /** Adds one LevelDB entry; `key` still has its bucket byte, which is dropped. */
  add(key: Buffer, value: Buffer): void {
    const need = PACKED_RECORD_HEADER_BYTES + key.length - 1 + value.length;
    if (this.used + need > this.chunk.length) {
      this.close();
      this.chunk = Buffer.allocUnsafeSlow(Math.max(need, this.chunkBytes));
    }
    const chunk = this.chunk;
    let at = this.used;
    chunk.writeUInt32LE(key.length - 1, at);
    chunk.writeUInt32LE(value.length, at + 4);
    at += PACKED_RECORD_HEADER_BYTES;
    at += key.copy(chunk, at, 1);
    at += value.copy(chunk, at);
    this.used = at;
    this.records++;
  }

  /** Moves the chunk being filled, if it holds any record, to `full`; add() starts a new one. */
  close(): void {
    if (this.records === 0) return;
    this.full.push({ chunk: this.chunk, bytes: this.used, records: this.records });
    this.chunk = EMPTY_CHUNK;
    this.used = 0;
    this.records = 0;
  }
}

const EMPTY_CHUNK = Buffer.alloc(0);

/**
 * Visits the records of one chunk in order: `visit(chunk, keyStart, keyEnd, valueEnd)`, the key
 * at [keyStart, keyEnd) (without the bucket byte) and the value at [keyEnd, valueEnd), views of
 * the chunk for the visitor to read in place. Returns the number of records.
 */
export function visitPacked(chunk: Buffer, bytes: number, visit: PackedRecordVisitor): number {
  let at = 0;
  let records = 0;
  while (at < bytes) {
    const keyStart = at + PACKED_RECORD_HEADER_BYTES;
    const keyEnd = keyStart + chunk.readUInt32LE(at);
    const valueEnd = keyEnd + chunk.readUInt32LE(at + 4);
    if (valueEnd > bytes) throw new Error(`packed backend record at ${at} runs past its chunk of ${bytes} bytes`);
    visit(chunk, keyStart, keyEnd, valueEnd);
    at = valueEnd;
    records++;
  }
  return records;
}

export type PackedRecordVisitor = (chunk: Buffer, keyStart: number, keyEnd: number, valueEnd: number) => void;
