import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { assert } from '../platform/assert.js';
import type { Logger } from '../platform/logger.js';
import { Backend, Bucket, type BackendSnapshotReader } from './backend.js';

/**
 * The state image (DESIGN.md, Storage): every record of the backend at ONE applied index, in one
 * checksummed file, written and read in chunks so it is never whole in memory. It is what a
 * leader streams to a follower behind its compacted log, and what a member re-installs from if
 * it crashed between the WAL's snapshot marker and the end of the install.
 *
 * Format, version 1 (all integers big-endian):
 *
 *   header   "KRIMG" (5 bytes ASCII) | version u8 = 1 | index u64 | term u64
 *            | voter count u32 | voter ids u64... | learner count u32 | learner ids u64...
 *   records  bucket u8 (0x01..0x7e, backend.ts) | key length u32 | key | value length u32 | value
 *            ... repeated, in LevelDB key order (bucket, then key)
 *   end      0x00 (a bucket byte no record has) | record count u64
 *   trailer  SHA-256 (32 bytes) over every byte before it
 *
 * The record count sits at the end because the image is streamed: it is known only once the
 * last record is out. A reader trusts nothing before the trailer matched: records are installed
 * into a scratch backend, which becomes the member's only after the checksum and count agree.
 *
 * Worked example: an image at index 7, term 2, voters [1, 2, 3], no learners, holding the one
 * record meta "mvcc" -> 24 bytes is 5+1+8+8 + 4+24 + 4 = 54 bytes of header, 1+4+4+4+24 = 37
 * bytes of record, 9 bytes of end and 32 of trailer: 132 bytes.
 *
 * Consistency: the records come from one LevelDB iterator (an implicit snapshot at creation). The
 * image's index is NOT the member's applied index at that moment (batches may still be queued);
 * it is the applied index inside the image's own mvcc meta record, read through the same
 * iterator, which the backend wrote in the same batch as the data it covers. The caller maps
 * that index to its Raft term and configuration (`describe`).
 *
 * Worker: DESIGN.md puts this serialization in a piscina worker; it did not earn its place here
 * and is not used. Measured with bench/storage/state-image-bench.ts on 1M keys of 256 B (285 MB
 * image), 2 cores shared with other engineers' builds, medians:
 *
 *   mode     wall ms  main-thread busy ms  event loop delay p50/p99/max ms
 *   inline      4175                 2682                   5.6/27.6/43.4
 *   worker      6606                 3782                   5.7/24.1/50.7
 *   (a first run under heavier load: inline 4759 / 3466 busy, worker 6187 / 3909 busy)
 *
 * "worker": the LevelDB reads stay on the main thread (the database is open once, there), each
 * batch of records is posted to one piscina thread that encodes and hashes it and transfers the
 * chunk back. Most of the main thread's time is taking the records out of LevelDB (nextv makes
 * two Buffers per record); encoding is a memcpy per record and SHA-256 is native at about
 * 1 GB/s. Posting a batch costs a structured clone of every key and value, more than the
 * encoding it saves, so the worker costs the main thread MORE time and makes the image slower.
 * Either way no single turn is long: records are encoded synchronously per nextv batch (1000
 * records, ~0.3 MB), with the reads, the chunk writes and the fsync async, so the event loop
 * stays responsive (p99 delay in the tens of ms on the loaded machine, same as with the worker).
 */

export const STATE_IMAGE_MAGIC = Buffer.from('KRIMG', 'ascii');
export const STATE_IMAGE_VERSION = 1;
/** Encoded chunk size: one file write and one hash update per chunk. */
export const STATE_IMAGE_CHUNK_BYTES = 1024 * 1024;
const TRAILER_BYTES = 32;
const END_BYTES = 1 + 8;
const RECORD_OVERHEAD_BYTES = 1 + 4 + 4;
/** Records handed out (and installed) per batch when reading. */
const READ_BATCH_RECORDS = 4096;

export interface StateImageHeader {
  index: number;
  term: number;
  voters: bigint[];
  learners: bigint[];
}

export interface StateImageRecord {
  bucket: Bucket;
  key: Buffer;
  value: Buffer;
}

export interface WrittenStateImage {
  header: StateImageHeader;
  records: number;
  sizeBytes: number;
}

export type StateImageErrorCode = 'BadMagic' | 'UnsupportedVersion' | 'Truncated' | 'ChecksumMismatch' | 'Malformed';

/** An image that must not be installed; nothing was installed when this is thrown. */
export class StateImageError extends Error {
  override name = 'StateImageError';
  constructor(readonly code: StateImageErrorCode, message: string) {
    super(message);
  }
}

export interface WriteStateImageOptions {
  /** The applied index the snapshot's own meta records (mvcc's meta, read through `reader`). */
  appliedIndex(reader: BackendSnapshotReader): Promise<number>;
  /** The Raft term and configuration at that index. */
  describe(index: number): { term: number; voters: readonly bigint[]; learners: readonly bigint[] };
}

/**
 * Writes an image of the backend as it is now to `path` (created or truncated, fsync'd before
 * this resolves). The caller writes to a temporary name and renames: a crash leaves no half image
 * under the final name.
 */
export async function writeStateImage(backend: Backend, path: string, options: WriteStateImageOptions): Promise<WrittenStateImage> {
  const reader = backend.snapshotReader();
  const file = await open(path, 'w');
  try {
    const index = await options.appliedIndex(reader);
    const d = options.describe(index);
    const header: StateImageHeader = { index, term: d.term, voters: [...d.voters], learners: [...d.learners] };
    const out = new ChunkWriter(file);
    await out.put(encodeHeader(header));
    reader.rewind();
    let records = 0;
    for (;;) {
      const batch = await reader.nextBatch();
      if (batch.length === 0) break;
      // Synchronous per record (no await unless a chunk is full): an await per record cost
      // about 15 us each in microtask turns (measured: 343 ms of main thread for 20k records).
      for (const [key, value] of batch) {
        const bucket = key[0];
        if (bucket === undefined || bucket < Bucket.key || bucket >= Bucket.sync) assert(false, `backend key with bucket byte ${bucket} in an image`);
        if (!out.tryRecord(key, value)) await out.putLargeRecord(key, value);
        records++;
      }
    }
    const end = Buffer.allocUnsafe(END_BYTES);
    end[0] = 0;
    writeU64(end, records, 1);
    await out.put(end);
    const sizeBytes = await out.finish();
    await file.sync();
    return { header, records, sizeBytes };
  } finally {
    await file.close();
    await reader.close();
  }
}

/** Buffers encoded bytes into chunks; each full chunk is hashed and written (awaited) in one go. */
class ChunkWriter {
  private buffer = Buffer.allocUnsafe(STATE_IMAGE_CHUNK_BYTES);
  private used = 0;
  private written = 0;
  private readonly hash = createHash('sha256');

  constructor(private readonly file: import('node:fs/promises').FileHandle) {}

  async put(bytes: Buffer): Promise<void> {
    if (this.used + bytes.length > this.buffer.length) await this.flush();
    if (bytes.length > this.buffer.length) {
      await this.writeOut(bytes);
      return;
    }
    bytes.copy(this.buffer, this.used);
    this.used += bytes.length;
  }

  /**
   * Encodes one record (its key starts with its bucket byte, as LevelDB holds it) into the chunk.
   * Returns false when the chunk has no room: the caller then awaits putLargeRecord().
   */
  tryRecord(prefixedKey: Buffer, value: Buffer): boolean {
    const size = RECORD_OVERHEAD_BYTES + prefixedKey.length - 1 + value.length;
    if (this.used + size > this.buffer.length) return false;
    this.used = encodeRecordInto(this.buffer, this.used, prefixedKey, value);
    return true;
  }

  /** Writes the chunk out, then the record (into the fresh chunk, or on its own if bigger than one). */
  async putLargeRecord(prefixedKey: Buffer, value: Buffer): Promise<void> {
    await this.flush();
    if (this.tryRecord(prefixedKey, value)) return;
    const big = Buffer.allocUnsafe(RECORD_OVERHEAD_BYTES + prefixedKey.length - 1 + value.length);
    encodeRecordInto(big, 0, prefixedKey, value);
    await this.writeOut(big);
  }

  /** Writes what is buffered and the trailer; returns the file's size. */
  async finish(): Promise<number> {
    await this.flush();
    await this.writeOut(this.hash.digest(), false);
    return this.written;
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    const chunk = this.buffer.subarray(0, this.used);
    await this.writeOut(chunk);
    // The chunk was written out: the buffer can be reused (no copy per chunk).
    this.used = 0;
  }

  private async writeOut(bytes: Buffer, hashed = true): Promise<void> {
    if (hashed) this.hash.update(bytes);
    let at = 0;
    while (at < bytes.length) {
      const { bytesWritten } = await this.file.write(bytes, at, bytes.length - at);
      at += bytesWritten;
    }
    this.written += bytes.length;
  }
}

function encodeRecordInto(out: Buffer, at: number, prefixedKey: Buffer, value: Buffer): number {
  out[at] = prefixedKey[0]!;
  out.writeUInt32BE(prefixedKey.length - 1, at + 1);
  at += 5;
  at += prefixedKey.copy(out, at, 1);
  out.writeUInt32BE(value.length, at);
  at += 4;
  at += value.copy(out, at);
  return at;
}

export function encodeHeader(h: StateImageHeader): Buffer {
  const out = Buffer.allocUnsafe(5 + 1 + 8 + 8 + 4 + 8 * h.voters.length + 4 + 8 * h.learners.length);
  STATE_IMAGE_MAGIC.copy(out, 0);
  out[5] = STATE_IMAGE_VERSION;
  writeU64(out, h.index, 6);
  writeU64(out, h.term, 14);
  let at = 22;
  for (const ids of [h.voters, h.learners]) {
    out.writeUInt32BE(ids.length, at);
    at += 4;
    for (const id of ids) {
      out.writeBigUInt64BE(id, at);
      at += 8;
    }
  }
  return out;
}

/**
 * Reads an image in batches of records. `header` is parsed on open; `records()` yields batches
 * and, after the last one, checks the end block and the SHA-256 trailer: a consumer must treat
 * everything it got as untrusted until the generator has finished without throwing.
 */
export class StateImageReader {
  private constructor(readonly path: string, readonly header: StateImageHeader, private readonly headerBytes: number, readonly sizeBytes: number) {}

  static async open(path: string): Promise<StateImageReader> {
    const sizeBytes = (await stat(path)).size;
    const file = await open(path, 'r');
    try {
      const head = Buffer.alloc(Math.min(sizeBytes, 64 * 1024));
      await file.read(head, 0, head.length, 0);
      if (head.length < 6) throw new StateImageError('Truncated', `state image ${path} is ${sizeBytes} bytes: too short for a header`);
      if (!head.subarray(0, 5).equals(STATE_IMAGE_MAGIC)) {
        throw new StateImageError('BadMagic', `${path} is not a state image: magic ${JSON.stringify(head.subarray(0, 5).toString('latin1'))}, expected "KRIMG"`);
      }
      if (head[5] !== STATE_IMAGE_VERSION) {
        throw new StateImageError('UnsupportedVersion', `state image ${path} has format version ${head[5]}; this keyraft reads version ${STATE_IMAGE_VERSION}`);
      }
      const parsed = decodeHeader(head, path);
      if (parsed.bytes + END_BYTES + TRAILER_BYTES > sizeBytes) {
        throw new StateImageError('Truncated', `state image ${path} is ${sizeBytes} bytes: cut short`);
      }
      return new StateImageReader(path, parsed.header, parsed.bytes, sizeBytes);
    } finally {
      await file.close();
    }
  }

  /** Batches of records in file order; throws StateImageError at the end if anything does not add up. */
  async *records(): AsyncGenerator<StateImageRecord[]> {
    const bodyEnd = this.sizeBytes - TRAILER_BYTES;
    const hash = createHash('sha256');
    const stream = createReadStream(this.path, { highWaterMark: STATE_IMAGE_CHUNK_BYTES });
    let carry: Buffer = Buffer.alloc(0);
    let position = 0; // file offset of carry[0]
    let trailer = Buffer.alloc(0);
    let records = 0;
    let ended = false;
    let batch: StateImageRecord[] = [];
    try {
      for await (const piece of stream as AsyncIterable<Buffer>) {
        const start = position + carry.length;
        // Split off the trailer: it is not hashed and not parsed.
        const bodyPart = start >= bodyEnd ? piece.subarray(0, 0) : piece.subarray(0, Math.min(piece.length, bodyEnd - start));
        if (bodyPart.length < piece.length) trailer = Buffer.concat([trailer, piece.subarray(bodyPart.length)]);
        if (bodyPart.length === 0) continue;
        hash.update(bodyPart);
        let buf = carry.length === 0 ? bodyPart : Buffer.concat([carry, bodyPart]);
        let at = 0;
        if (position === 0) at = this.headerBytes;
        while (!ended) {
          if (at + 1 > buf.length) break;
          const bucket = buf[at]!;
          if (bucket === 0) {
            if (at + END_BYTES > buf.length) break;
            const count = readU64(buf, at + 1, this.path);
            if (count !== records) throw new StateImageError('Malformed', `state image ${this.path} says ${count} records, holds ${records}`);
            ended = true;
            at += END_BYTES;
            break;
          }
          if (bucket >= Bucket.sync) throw new StateImageError('Malformed', `state image ${this.path}: bucket byte ${bucket} at offset ${position + at}`);
          if (at + 5 > buf.length) break;
          const keyLength = buf.readUInt32BE(at + 1);
          if (at + 5 + keyLength + 4 > buf.length) break;
          const valueLength = buf.readUInt32BE(at + 5 + keyLength);
          const end = at + RECORD_OVERHEAD_BYTES + keyLength + valueLength;
          if (end > buf.length) break;
          // Copies: the batch outlives this piece of the stream.
          batch.push({
            bucket: bucket as Bucket,
            key: Buffer.from(buf.subarray(at + 5, at + 5 + keyLength)),
            value: Buffer.from(buf.subarray(at + 9 + keyLength, end)),
          });
          records++;
          at = end;
          if (batch.length >= READ_BATCH_RECORDS) {
            yield batch;
            batch = [];
          }
        }
        if (ended && at < buf.length) {
          throw new StateImageError('Malformed', `state image ${this.path}: ${buf.length - at} bytes after the end block`);
        }
        carry = buf.subarray(at);
        position += at;
        buf = carry;
      }
      if (!ended || position + carry.length !== bodyEnd) {
        throw new StateImageError('Truncated', `state image ${this.path} ends inside its records (at byte ${position + carry.length} of ${this.sizeBytes})`);
      }
      const digest = hash.digest();
      if (trailer.length !== TRAILER_BYTES || !digest.equals(trailer)) {
        throw new StateImageError('ChecksumMismatch',
          `state image ${this.path}: sha256 of the contents is ${digest.toString('hex')}, the trailer says ${trailer.toString('hex')}`);
      }
      if (batch.length > 0) yield batch;
    } finally {
      stream.destroy();
    }
  }
}

/**
 * The records of the image at `path`, in batches; throws StateImageError (after the last batch,
 * for checksum and count) if the file is not a whole, valid image. StateImageReader gives the header.
 */
export async function* readStateImage(path: string): AsyncGenerator<StateImageRecord[]> {
  const reader = await StateImageReader.open(path);
  yield* reader.records();
}

/**
 * Builds a fresh backend at `dir` (removed first) from the image at `path`. Resolves with the
 * image's header once every record is written and synced and the backend is closed. On any error
 * `dir` is removed again and the error rethrown: nothing of a bad image survives.
 *
 * The last batch of records is held back until the checksum has been verified, and the whole
 * scratch directory is discarded on failure, so a bad image never becomes a member's backend.
 */
export async function installStateImage(path: string, dir: string, logger: Logger): Promise<WrittenStateImage> {
  const reader = await StateImageReader.open(path);
  await rm(dir, { recursive: true, force: true });
  const backend = await Backend.open(dir, { logger });
  let records = 0;
  try {
    for await (const batch of reader.records()) {
      for (const r of batch) backend.put(r.bucket, r.key, r.value);
      backend.commit();
      records += batch.length;
      // Backpressure: reading a file is faster than LevelDB writes; keep one batch in flight.
      await backend.drain();
    }
    await backend.flush();
    await backend.close();
  } catch (err) {
    await backend.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { header: reader.header, records, sizeBytes: reader.sizeBytes };
}

function decodeHeader(buf: Buffer, path: string): { header: StateImageHeader; bytes: number } {
  const need = (n: number) => {
    if (n > buf.length) throw new StateImageError('Truncated', `state image ${path}: header cut short`);
  };
  need(22);
  const index = readU64(buf, 6, path);
  const term = readU64(buf, 14, path);
  let at = 22;
  const lists: bigint[][] = [];
  for (let l = 0; l < 2; l++) {
    need(at + 4);
    const n = buf.readUInt32BE(at);
    at += 4;
    if (n > 4096) throw new StateImageError('Malformed', `state image ${path}: ${n} members in the configuration`);
    need(at + 8 * n);
    const ids: bigint[] = [];
    for (let i = 0; i < n; i++) ids.push(buf.readBigUInt64BE(at + 8 * i));
    at += 8 * n;
    lists.push(ids);
  }
  return { header: { index, term, voters: lists[0]!, learners: lists[1]! }, bytes: at };
}

function writeU64(buf: Buffer, value: number, at: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, () => `u64 ${value} is not a safe integer`);
  buf.writeBigUInt64BE(BigInt(value), at);
}

function readU64(buf: Buffer, at: number, path: string): number {
  const v = buf.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new StateImageError('Malformed', `state image ${path}: integer ${v} at offset ${at} is too large`);
  return Number(v);
}
