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
 * Format, version 2 (integers little-endian, as the packed chunks):
 *
 *   slot A  bytes 0-255, and slot B, bytes 256-511: two copies of the image's description, of
 *           which the valid one with the higher sequence counts:
 *           "KRBIMAGE" | version u32 = 2 | sequence u32 | bucket u8 | lt length u16 | tag length u16
 *           | chunk count u32 | record count u64 | data end u64 (the file offset after the last chunk)
 *           | lt (the first key NOT in the image, with its bucket byte) | tag (the writer's, opaque)
 *           | CRC-32 u32 of the slot bytes before it | zeros up to 256 bytes
 *   chunk   records bytes u32 | tails bytes u32 | record count u32 | CRC-32 u32 of records then tails
 *           | records | tails                     ... repeated from byte 512, in key order, up to data end
 *
 * CRC-32 is zlib's (node:zlib crc32, native): a guard against torn and damaged files, not an
 * authentication. A new image is written whole under a temporary name (slot A filled, slot B
 * zeros), fdatasync'ed, renamed and the directory synced. An image is extended in place: the new
 * chunks are written after its data end, fdatasync'ed, and only then the other slot, with the
 * next sequence, the new end key, counts and data end, fdatasync'ed again. A crash anywhere in
 * between leaves the previous slot the valid newer one, describing exactly the previous image
 * (the bytes after its data end are ignored); a torn slot fails its CRC. Extending costs what
 * was written since; version 1 had one header and an end record, so each extension copied the
 * whole file (a 500,000-record image was copied five times during 500,000 puts).
 *
 * A reader trusts each chunk only once its CRC matched, and the whole only once the chunks fill
 * exactly [512, data end) with the slot's counts (so a file cut short is refused, not taken as
 * a smaller image).
 *
 * Worked example: bucket 0x01, lt 01 00 00 00 00 00 00 00 08 (revision 8), tag of 16 bytes:
 * the slot's used bytes 8+4+4+1+2+2+4+8+8+9+16+4 = 70; a chunk of 2 records (11 B keys, 24 B
 * heads, 3 B values) at byte 512: 16 + 2 x (12+11+24) + 6 = 116 bytes, so data end 628.
 */

export const BUCKET_IMAGE_FILE = 'KEYRAFT-BUCKET-IMAGE';
export const BUCKET_IMAGE_MAGIC = Buffer.from('KRBIMAGE', 'ascii');
export const BUCKET_IMAGE_VERSION = 2;
export const BUCKET_IMAGE_CHUNK_HEADER_BYTES = 16;
export const BUCKET_IMAGE_SLOT_BYTES = 256;
/** Where the chunks start, after the two slots. */
export const BUCKET_IMAGE_DATA_START = 2 * BUCKET_IMAGE_SLOT_BYTES;
/** Bytes of a slot before its lt: magic, version, sequence, bucket, lt and tag lengths, chunks, records, data end. */
const SLOT_FIXED_BYTES = BUCKET_IMAGE_MAGIC.length + 4 + 4 + 1 + 2 + 2 + 4 + 8 + 8;

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

/** One slot: the image as it stood when the slot was written. */
export interface BucketImageSlot extends BucketImageHeader {
  /** Higher is newer; a new image starts at 1. */
  sequence: number;
  chunks: number;
  records: number;
  /** The file offset after the last chunk. */
  dataEnd: number;
}

/** A slot as its 256 bytes; throws when its lt and tag do not fit. */
export function encodeBucketImageSlot(slot: BucketImageSlot): Buffer {
  const out = Buffer.alloc(BUCKET_IMAGE_SLOT_BYTES);
  if (SLOT_FIXED_BYTES + slot.lt.length + slot.tag.length + 4 > out.length) throw new Error('bucket image: end key and tag too long for a slot');
  BUCKET_IMAGE_MAGIC.copy(out, 0);
  let at = BUCKET_IMAGE_MAGIC.length;
  at = out.writeUInt32LE(BUCKET_IMAGE_VERSION, at);
  at = out.writeUInt32LE(slot.sequence, at);
  at = out.writeUInt8(slot.bucket, at);
  at = out.writeUInt16LE(slot.lt.length, at);
  at = out.writeUInt16LE(slot.tag.length, at);
  at = out.writeUInt32LE(slot.chunks, at);
  at = out.writeBigUInt64LE(BigInt(slot.records), at);
  at = out.writeBigUInt64LE(BigInt(slot.dataEnd), at);
  at += slot.lt.copy(out, at);
  at += slot.tag.copy(out, at);
  out.writeUInt32LE(crc32(out.subarray(0, at)), at);
  return out;
}

/** A slot's contents; null for one never written (no magic) or torn (checksum); BucketImageError for another version. */
function decodeSlot(path: string, bytes: Buffer): BucketImageSlot | null {
  if (!bytes.subarray(0, BUCKET_IMAGE_MAGIC.length).equals(BUCKET_IMAGE_MAGIC)) return null;
  let at = BUCKET_IMAGE_MAGIC.length;
  const version = bytes.readUInt32LE(at);
  if (version !== BUCKET_IMAGE_VERSION) throw new BucketImageError(path, `version ${version}, this build reads ${BUCKET_IMAGE_VERSION}`);
  const sequence = bytes.readUInt32LE(at += 4);
  const bucket = bytes.readUInt8(at += 4);
  const ltBytes = bytes.readUInt16LE(at += 1);
  const tagBytes = bytes.readUInt16LE(at += 2);
  const chunks = bytes.readUInt32LE(at += 2);
  const records = Number(bytes.readBigUInt64LE(at += 4));
  const dataEnd = Number(bytes.readBigUInt64LE(at += 8));
  at += 8;
  if (at + ltBytes + tagBytes + 4 > bytes.length) return null;
  const crcAt = at + ltBytes + tagBytes;
  if (crc32(bytes.subarray(0, crcAt)) !== bytes.readUInt32LE(crcAt)) return null;
  return {
    sequence, bucket, chunks, records, dataEnd,
    lt: Buffer.from(bytes.subarray(at, at + ltBytes)), tag: Buffer.from(bytes.subarray(at + ltBytes, crcAt)),
  };
}

/** The image's newer valid slot, and which of the two it is; BucketImageError when neither is valid. */
export async function readBucketImageSlot(file: FileHandle, path: string): Promise<{ slot: BucketImageSlot; index: 0 | 1 }> {
  const both = await readExactly(file, path, 0, BUCKET_IMAGE_DATA_START);
  const a = decodeSlot(path, both.subarray(0, BUCKET_IMAGE_SLOT_BYTES));
  const b = decodeSlot(path, both.subarray(BUCKET_IMAGE_SLOT_BYTES));
  if (a === null && b === null) {
    if (!both.subarray(0, BUCKET_IMAGE_MAGIC.length).equals(BUCKET_IMAGE_MAGIC)) throw new BucketImageError(path, 'not a bucket image (magic)');
    throw new BucketImageError(path, 'header checksum mismatch (no valid slot)');
  }
  if (b === null || (a !== null && a.sequence > b.sequence)) return { slot: a!, index: 0 };
  return { slot: b, index: 1 };
}

export function encodeChunkHeader(chunk: PackedChunk): Buffer {
  const out = Buffer.alloc(BUCKET_IMAGE_CHUNK_HEADER_BYTES);
  out.writeUInt32LE(chunk.recordsBytes, 0);
  out.writeUInt32LE(chunk.tails.length, 4);
  out.writeUInt32LE(chunk.count, 8);
  out.writeUInt32LE(crc32(chunk.tails, crc32(chunk.records.subarray(0, chunk.recordsBytes))), 12);
  return out;
}

/**
 * An image opened for reading: its slots are checked at open(); chunks() yields every chunk in
 * order, each verified, the next one read from the file while the caller visits the current one,
 * and throws BucketImageError at the first damage (the caller discards what it built from the
 * earlier chunks). Always close() it.
 */
export class BucketImageReader {
  private constructor(readonly path: string, private readonly file: FileHandle, private readonly slot: BucketImageSlot) {}

  get header(): BucketImageHeader {
    return { bucket: this.slot.bucket, lt: this.slot.lt, tag: this.slot.tag };
  }

  /** The image at `path`, or null when there is none; BucketImageError when its slots are damaged. */
  static async open(path: string): Promise<BucketImageReader | null> {
    let file: FileHandle;
    try {
      file = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      return new BucketImageReader(path, file, (await readBucketImageSlot(file, path)).slot);
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
    if (chunks !== this.slot.chunks || records !== this.slot.records) {
      throw new BucketImageError(this.path, `its slot says ${this.slot.chunks} chunks of ${this.slot.records} records, read ${chunks} of ${records}`);
    }
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  /** Where the next chunk starts. */
  private at = BUCKET_IMAGE_DATA_START;

  /** The next chunk, verified; null at the slot's data end. */
  private async readChunk(): Promise<PackedChunk | null> {
    const end = this.slot.dataEnd;
    if (this.at === end) return null;
    if (this.at + BUCKET_IMAGE_CHUNK_HEADER_BYTES > end) throw new BucketImageError(this.path, `a chunk header at byte ${this.at} runs past the data end ${end}`);
    const head = await readExactly(this.file, this.path, this.at, BUCKET_IMAGE_CHUNK_HEADER_BYTES);
    const start = this.at + BUCKET_IMAGE_CHUNK_HEADER_BYTES;
    const recordsBytes = head.readUInt32LE(0);
    const tailsBytes = head.readUInt32LE(4);
    const count = head.readUInt32LE(8);
    // Checked before allocating: a damaged length must not ask for gigabytes.
    if (start + recordsBytes + tailsBytes > end) throw new BucketImageError(this.path, `the chunk at byte ${this.at} runs past the data end ${end}`);
    this.at = start + recordsBytes + tailsBytes;
    // Memory of their own (allocUnsafeSlow): recovered values are views of `tails`, which must
    // hold nothing else.
    const records = Buffer.allocUnsafeSlow(recordsBytes);
    const tails = Buffer.allocUnsafeSlow(tailsBytes);
    await readInto(this.file, this.path, start, records);
    await readInto(this.file, this.path, start + recordsBytes, tails);
    if (crc32(tails, crc32(records)) !== head.readUInt32LE(12)) throw new BucketImageError(this.path, `chunk at byte ${start} checksum mismatch`);
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
