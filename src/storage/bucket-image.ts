import { closeSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import type { PackedChunk } from './backend-scan-protocol.js';

/**
 * The bucket image: one backend bucket's records below a key, in the packed chunks of the
 * start-up scan (backend-scan-protocol.ts), in one checksummed file inside the LevelDB directory
 * (LevelDB ignores names it did not make). A restart reads it with a few large file reads and
 * visits its chunks in place, then reads from LevelDB only the records at or after its end key:
 * at 1M keys x 256 B the scan of LevelDB cost ~2.6 s of CPU (two workers: ~2 us per record of
 * iteration and a Buffer pair per record), the file ~0.1 s.
 *
 * Why not the state image (state-image.ts): that one is every bucket at one applied index,
 * record by record, verified by a SHA-256 over the whole file before anything is trusted; it
 * feeds a scratch backend. Start-up needs the mvcc bucket only, as chunks it can keep views of
 * (the recovered values are views of the tails), each verified on its own as it arrives.
 *
 * Format, version 1 (integers little-endian, as the packed chunks):
 *
 *   header  "KRBIMAGE" | version u32 = 1 | bucket u8 | lt length u16 | tag length u16
 *           | lt (the first key NOT in the image, with its bucket byte) | tag (the writer's, opaque)
 *           | CRC-32 u32 of the header bytes before it
 *   chunk   records bytes u32 | tails bytes u32 | record count u32 | CRC-32 u32 of records then tails
 *           | records | tails                     ... repeated, in key order
 *   end     0xffffffff u32 | chunk count u32 | record count u32 | CRC-32 u32 of the 12 bytes before it
 *
 * CRC-32 is zlib's (node:zlib crc32, native): a guard against torn and damaged files, not an
 * authentication. An image may be extended (the writer's append): its chunks are kept byte for
 * byte, new ones follow, and a new header and end record replace the old ones in the copy. The file is written to a temporary name, fdatasync'ed, renamed and the
 * directory synced; a reader trusts each chunk only once its CRC matched, and the whole only
 * once the end record matched (so a file cut short is refused, not taken as a smaller image).
 *
 * Worked example: bucket 0x01, lt 01 00 00 00 00 00 00 00 08 (revision 8), tag of 16 bytes:
 * header 8+4+1+2+2+9+16+4 = 46 bytes; a chunk of 2 records (11 B keys, 24 B heads, 3 B values):
 * 16 + 2 x (12+11+24) + 6 = 116 bytes; end 16 bytes.
 */

export const BUCKET_IMAGE_FILE = 'KEYRAFT-BUCKET-IMAGE';
export const BUCKET_IMAGE_MAGIC = Buffer.from('KRBIMAGE', 'ascii');
export const BUCKET_IMAGE_VERSION = 1;
export const BUCKET_IMAGE_CHUNK_HEADER_BYTES = 16;
const END_MARKER = 0xffff_ffff;

export class BucketImageError extends Error {
  constructor(path: string, what: string) {
    super(`bucket image ${path}: ${what}`);
    this.name = 'BucketImageError';
  }
}

export interface BucketImageHeader {
  bucket: number;
  /** The first key (with its bucket byte) the image does not hold: the scan of LevelDB resumes there. */
  lt: Buffer;
  /** What the writer recorded to tell whether the image still fits the backend (kv-store.ts). */
  tag: Buffer;
}

export function encodeBucketImageHeader(header: BucketImageHeader): Buffer {
  const fixed = BUCKET_IMAGE_MAGIC.length + 4 + 1 + 2 + 2;
  const out = Buffer.alloc(fixed + header.lt.length + header.tag.length + 4);
  BUCKET_IMAGE_MAGIC.copy(out, 0);
  let at = BUCKET_IMAGE_MAGIC.length;
  at = out.writeUInt32LE(BUCKET_IMAGE_VERSION, at);
  at = out.writeUInt8(header.bucket, at);
  at = out.writeUInt16LE(header.lt.length, at);
  at = out.writeUInt16LE(header.tag.length, at);
  at += header.lt.copy(out, at);
  at += header.tag.copy(out, at);
  out.writeUInt32LE(crc32(out.subarray(0, at)), at);
  return out;
}

export function encodeChunkHeader(chunk: PackedChunk): Buffer {
  const out = Buffer.alloc(BUCKET_IMAGE_CHUNK_HEADER_BYTES);
  out.writeUInt32LE(chunk.recordsBytes, 0);
  out.writeUInt32LE(chunk.tails.length, 4);
  out.writeUInt32LE(chunk.count, 8);
  out.writeUInt32LE(crc32(chunk.tails, crc32(chunk.records.subarray(0, chunk.recordsBytes))), 12);
  return out;
}

/** The end record's counts, or null when `bytes` is not a valid end record. */
export function decodeEnd(bytes: Buffer): { chunks: number; records: number } | null {
  if (bytes.length !== BUCKET_IMAGE_CHUNK_HEADER_BYTES || bytes.readUInt32LE(0) !== END_MARKER) return null;
  if (crc32(bytes.subarray(0, 12)) !== bytes.readUInt32LE(12)) return null;
  return { chunks: bytes.readUInt32LE(4), records: bytes.readUInt32LE(8) };
}

const FIXED_HEADER_BYTES = BUCKET_IMAGE_MAGIC.length + 4 + 1 + 2 + 2;

/** Checks the fixed part of a header: the lengths of what follows it. */
function decodeFixedHeader(path: string, fixed: Buffer): { bucket: number; ltBytes: number; tagBytes: number } {
  if (!fixed.subarray(0, BUCKET_IMAGE_MAGIC.length).equals(BUCKET_IMAGE_MAGIC)) throw new BucketImageError(path, 'not a bucket image (magic)');
  const version = fixed.readUInt32LE(BUCKET_IMAGE_MAGIC.length);
  if (version !== BUCKET_IMAGE_VERSION) throw new BucketImageError(path, `version ${version}, this build reads ${BUCKET_IMAGE_VERSION}`);
  return {
    bucket: fixed.readUInt8(BUCKET_IMAGE_MAGIC.length + 4),
    ltBytes: fixed.readUInt16LE(BUCKET_IMAGE_MAGIC.length + 5),
    tagBytes: fixed.readUInt16LE(BUCKET_IMAGE_MAGIC.length + 7),
  };
}

/** The rest of a header after its fixed part: lt, tag, CRC over the whole header. */
function decodeHeaderRest(path: string, fixed: Buffer, lengths: { bucket: number; ltBytes: number; tagBytes: number }, rest: Buffer): BucketImageHeader {
  const { ltBytes, tagBytes } = lengths;
  const crc = crc32(rest.subarray(0, ltBytes + tagBytes), crc32(fixed));
  if (crc !== rest.readUInt32LE(ltBytes + tagBytes)) throw new BucketImageError(path, 'header checksum mismatch');
  return { bucket: lengths.bucket, lt: Buffer.from(rest.subarray(0, ltBytes)), tag: Buffer.from(rest.subarray(ltBytes, ltBytes + tagBytes)) };
}

/** The header of the image at `path`, read synchronously (the writer's thread), and its length in bytes. */
export function readBucketImageHeaderSync(path: string): BucketImageHeader & { headerBytes: number } {
  const fd = openSync(path, 'r');
  try {
    const fixed = Buffer.alloc(FIXED_HEADER_BYTES);
    if (readSync(fd, fixed, 0, fixed.length, 0) !== fixed.length) throw new BucketImageError(path, 'cut short in its header');
    const lengths = decodeFixedHeader(path, fixed);
    const rest = Buffer.alloc(lengths.ltBytes + lengths.tagBytes + 4);
    if (readSync(fd, rest, 0, rest.length, fixed.length) !== rest.length) throw new BucketImageError(path, 'cut short in its header');
    return { ...decodeHeaderRest(path, fixed, lengths, rest), headerBytes: fixed.length + rest.length };
  } finally {
    closeSync(fd);
  }
}

export function encodeEnd(chunks: number, records: number): Buffer {
  const out = Buffer.alloc(BUCKET_IMAGE_CHUNK_HEADER_BYTES);
  out.writeUInt32LE(END_MARKER, 0);
  out.writeUInt32LE(chunks, 4);
  out.writeUInt32LE(records >>> 0, 8);
  out.writeUInt32LE(crc32(out.subarray(0, 12)), 12);
  return out;
}

/**
 * An image opened for reading: its header is checked at open(); chunks() yields every chunk in
 * order, each verified, the next one read from the file while the caller visits the current one,
 * and throws BucketImageError at the first damage (the caller discards what it built from the
 * earlier chunks). Always close() it.
 */
export class BucketImageReader {
  private constructor(readonly path: string, private readonly file: FileHandle, readonly header: BucketImageHeader, private at: number) {}

  /** The image at `path`, or null when there is none; BucketImageError when its header is damaged. */
  static async open(path: string): Promise<BucketImageReader | null> {
    let file: FileHandle;
    try {
      file = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      const fixed = await readExactly(file, path, 0, FIXED_HEADER_BYTES);
      const lengths = decodeFixedHeader(path, fixed);
      const rest = await readExactly(file, path, FIXED_HEADER_BYTES, lengths.ltBytes + lengths.tagBytes + 4);
      return new BucketImageReader(path, file, decodeHeaderRest(path, fixed, lengths, rest), FIXED_HEADER_BYTES + rest.length);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  async *chunks(): AsyncGenerator<PackedChunk> {
    let chunks = 0;
    let records = 0;
    let next = this.readChunk();
    for (;;) {
      const chunk = await next;
      if (chunk === null) break;
      // Read ahead: the file read runs in the thread pool while the caller visits this chunk.
      next = this.readChunk();
      next.catch(() => undefined);
      chunks++;
      records += chunk.count;
      yield chunk;
    }
    const end = this.endRecord!;
    if (end.chunks !== chunks || end.records !== (records >>> 0)) {
      throw new BucketImageError(this.path, `end record says ${end.chunks} chunks of ${end.records} records, read ${chunks} of ${records}`);
    }
    const { size } = await this.file.stat();
    if (size !== this.at) throw new BucketImageError(this.path, `${size - this.at} bytes after the end record`);
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  private endRecord: { chunks: number; records: number } | null = null;

  private async readChunk(): Promise<PackedChunk | null> {
    const head = await readExactly(this.file, this.path, this.at, BUCKET_IMAGE_CHUNK_HEADER_BYTES);
    this.at += BUCKET_IMAGE_CHUNK_HEADER_BYTES;
    if (head.readUInt32LE(0) === END_MARKER) {
      this.endRecord = decodeEnd(head);
      if (this.endRecord === null) throw new BucketImageError(this.path, 'end record checksum mismatch');
      return null;
    }
    const recordsBytes = head.readUInt32LE(0);
    const tailsBytes = head.readUInt32LE(4);
    const count = head.readUInt32LE(8);
    // Memory of their own (allocUnsafeSlow): recovered values are views of `tails`, which must
    // hold nothing else.
    const records = Buffer.allocUnsafeSlow(recordsBytes);
    const tails = Buffer.allocUnsafeSlow(tailsBytes);
    await readInto(this.file, this.path, this.at, records);
    this.at += recordsBytes;
    await readInto(this.file, this.path, this.at, tails);
    this.at += tailsBytes;
    if (crc32(tails, crc32(records)) !== head.readUInt32LE(12)) throw new BucketImageError(this.path, `chunk at byte ${this.at - recordsBytes - tailsBytes} checksum mismatch`);
    return { records, recordsBytes, tails, count };
  }
}

async function readExactly(file: FileHandle, path: string, position: number, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  await readInto(file, path, position, out);
  return out;
}

async function readInto(file: FileHandle, path: string, position: number, out: Buffer): Promise<void> {
  let done = 0;
  while (done < out.length) {
    const { bytesRead } = await file.read(out, done, out.length - done, position + done);
    if (bytesRead === 0) throw new BucketImageError(path, `cut short at byte ${position + done}`);
    done += bytesRead;
  }
}
