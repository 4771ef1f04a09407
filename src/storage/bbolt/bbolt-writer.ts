import { open, type FileHandle } from 'node:fs/promises';
import { assert } from '../../platform/assert.js';
import {
  BRANCH_ELEMENT_BYTES, BUCKET_HEADER_BYTES, BUCKET_LEAF_FLAG, DEFAULT_PAGE_SIZE, encodeMeta, LEAF_ELEMENT_BYTES,
  PAGE_COUNT_MAX, PAGE_HEADER_BYTES, PageFlag, writeU64,
} from './bbolt-format.js';

/**
 * Writes a fresh bbolt database (format: bbolt-format.ts) from sorted key-value pairs, bottom-up,
 * in one pass and bounded memory: leaf pages go to the file as they fill; only the first key and
 * page id of each page is kept to build the branch levels when a bucket ends (for 1M etcd records
 * of 17-byte keys about 70k entries). The root bucket, the freelist and the two meta pages are
 * written last; the metas at pages 0 and 1, which is why this writes a file (positional writes)
 * and not a stream.
 *
 * Layout of the result: pages 0 and 1 meta, then each bucket's leaves followed by its branch
 * pages in the order the buckets were written, then the root bucket's pages, then an empty
 * freelist page. Every page below the high-water mark is reachable from the root or is the
 * freelist, so bbolt's consistency check (`tx.Check`, run by `etcdctl snapshot status`) passes.
 * Pages are filled up to the page size (bbolt's own fill is half a page); a pair bigger than a
 * page gets a page of its own with overflow pages.
 *
 * Usage: create(); for each bucket in any order: beginBucket(name), put(k, v) in ascending byte
 * order of k, endBucket(); finish(). put() is synchronous until a page fills: callers may call
 * it in a loop and await only when it returns a promise (`pending`).
 */

/** Pages buffered before one positional write. */
const WRITE_BUFFER_PAGES = 256;

interface ChildRef { firstKey: Buffer; pgid: number }

/** Where reserve() put a pair's room: write the key at keyAt and the value at valueAt of buf. */
export interface Reservation {
  buf: Buffer;
  keyAt: number;
  valueAt: number;
}

export interface BboltWriteResult {
  sizeBytes: number;
  pages: number;
}

export class BboltWriter {
  private nextPgid = 2; // 0 and 1 are the metas
  private readonly buffer: Buffer;
  private bufferedPages = 0;
  /** Page id of the first buffered page. */
  private bufferStartPgid = 2;
  /**
   * The leaf being filled: its pairs' bytes back to back in `leafData` (copied in as they come,
   * so no pair object or caller buffer is kept), and per pair its key size, value size and flags.
   */
  private leafData = Buffer.allocUnsafe(2 * DEFAULT_PAGE_SIZE);
  private leafDataUsed = 0;
  private leafKeySizes: number[] = [];
  private leafValueSizes: number[] = [];
  private leafFlags: number[] = [];
  private leafBytes = PAGE_HEADER_BYTES;
  private readonly reservation: Reservation = { buf: this.leafData, keyAt: 0, valueAt: 0 };
  /** The last key put in the open bucket (a copy), for the order check. */
  private lastKeyBuf = Buffer.allocUnsafe(256);
  private lastKeyLength = -1;
  private children: ChildRef[] = [];
  private bucketName: Buffer | null = null;
  private readonly buckets: Array<{ name: Buffer; root: number }> = [];
  /** Invariant: at most one write is in flight (writes go out in page order). */
  private writing: Promise<void> = Promise.resolve();
  private failed: Error | null = null;
  /** A write was queued since the last check (the caller should await `writing`: backpressure). */
  private queuedSinceCheck = false;

  private constructor(private readonly file: FileHandle, readonly pageSize: number) {
    this.buffer = Buffer.alloc(pageSize * WRITE_BUFFER_PAGES);
  }

  static async create(path: string, pageSize = DEFAULT_PAGE_SIZE): Promise<BboltWriter> {
    return new BboltWriter(await open(path, 'w'), pageSize);
  }

  beginBucket(name: Buffer): void {
    assert(this.bucketName === null, 'bbolt writer: beginBucket inside a bucket');
    assert(!this.buckets.some((b) => b.name.equals(name)), () => `bbolt writer: bucket ${name.toString()} written twice`);
    this.bucketName = name;
    this.lastKeyLength = -1;
  }

  /**
   * Adds a pair to the open bucket (keys strictly ascending). Returns a promise only when a full
   * buffer of pages went to the file: await it before the next put (backpressure).
   */
  put(key: Buffer, value: Buffer): Promise<void> | undefined {
    const r = this.reserve(key.length, value.length);
    key.copy(r.buf, r.keyAt);
    value.copy(r.buf, r.valueAt);
    return this.commitReserved();
  }

  /**
   * Room for a pair of these sizes in the open bucket, for callers that encode straight into the
   * page (no buffer per pair): fill key and value, then call commitReserved() before anything
   * else. The returned object is reused.
   */
  reserve(keyLength: number, valueLength: number, flags = 0): Reservation {
    assert(this.bucketName !== null, 'bbolt writer: put outside a bucket');
    return this.reserveEntry(keyLength, valueLength, flags);
  }

  /** Checks the reserved pair's key order; returns the write in flight if the caller should wait. */
  commitReserved(): Promise<void> | undefined {
    const i = this.leafKeySizes.length - 1;
    const keyLength = this.leafKeySizes[i]!;
    const keyAt = this.reservation.keyAt;
    if (this.lastKeyLength >= 0 && this.leafData.compare(this.lastKeyBuf, 0, this.lastKeyLength, keyAt, keyAt + keyLength) <= 0) {
      assert(false, () => `bbolt writer: key ${this.leafData.toString('hex', keyAt, keyAt + keyLength)} not after ${this.lastKeyBuf.toString('hex', 0, this.lastKeyLength)}`);
    }
    if (this.lastKeyBuf.length < keyLength) this.lastKeyBuf = Buffer.allocUnsafe(keyLength * 2);
    this.leafData.copy(this.lastKeyBuf, 0, keyAt, keyAt + keyLength);
    this.lastKeyLength = keyLength;
    return this.backpressure();
  }

  async endBucket(): Promise<void> {
    assert(this.bucketName !== null, 'bbolt writer: endBucket outside a bucket');
    const root = await this.closeTree();
    this.buckets.push({ name: this.bucketName, root });
    this.bucketName = null;
  }

  /** Writes the root bucket, the freelist and the metas, syncs and closes the file. */
  async finish(): Promise<BboltWriteResult> {
    assert(this.bucketName === null, 'bbolt writer: finish inside a bucket');
    try {
      const sorted = [...this.buckets].sort((a, b) => Buffer.compare(a.name, b.name));
      for (const b of sorted) {
        const r = this.reserveEntry(b.name.length, BUCKET_HEADER_BYTES, BUCKET_LEAF_FLAG);
        b.name.copy(r.buf, r.keyAt);
        r.buf.fill(0, r.valueAt, r.valueAt + BUCKET_HEADER_BYTES); // sequence stays 0
        writeU64(r.buf, b.root, r.valueAt);
        const pending = this.backpressure();
        if (pending) await pending;
      }
      const root = await this.closeTree();
      const freelistPgid = this.nextPgid;
      const freelist = this.allocPages(1, freelistPgid);
      freelist.fill(0, 0, this.pageSize);
      writeHeader(freelist, freelistPgid, PageFlag.freelist, 0, 0);
      this.nextPgid++;
      await this.flushBuffer();
      const highWaterPgid = this.nextPgid;
      const metas = Buffer.alloc(2 * this.pageSize);
      for (const id of [0, 1]) {
        const page = metas.subarray(id * this.pageSize, (id + 1) * this.pageSize);
        writeHeader(page, id, PageFlag.meta, 0, 0);
        encodeMeta(page, PAGE_HEADER_BYTES, {
          pageSize: this.pageSize, flags: 0, rootPgid: root, rootSequence: 0n, freelistPgid, highWaterPgid, txid: id + 1,
        });
      }
      await this.writeAt(metas, 0);
      await this.file.sync();
      return { sizeBytes: highWaterPgid * this.pageSize, pages: highWaterPgid };
    } finally {
      await this.file.close();
    }
  }

  /** Closes the file without finishing (an aborted write); the caller removes it. */
  async abort(): Promise<void> {
    await this.writing.catch(() => undefined);
    await this.file.close().catch(() => undefined);
  }

  // ---- pages ---------------------------------------------------------------------------------

  private reserveEntry(keyLength: number, valueLength: number, flags: number): Reservation {
    const size = LEAF_ELEMENT_BYTES + keyLength + valueLength;
    const count = this.leafKeySizes.length;
    if (count > 0 && (this.leafBytes + size > this.pageSize || count === PAGE_COUNT_MAX)) this.writeLeaf();
    const need = this.leafDataUsed + keyLength + valueLength;
    if (need > this.leafData.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, 2 * this.leafData.length));
      this.leafData.copy(bigger, 0, 0, this.leafDataUsed);
      this.leafData = bigger;
    }
    this.leafKeySizes.push(keyLength);
    this.leafValueSizes.push(valueLength);
    this.leafFlags.push(flags);
    const r = this.reservation;
    r.buf = this.leafData;
    r.keyAt = this.leafDataUsed;
    r.valueAt = this.leafDataUsed + keyLength;
    this.leafDataUsed = need;
    this.leafBytes += size;
    return r;
  }

  /** Writes the pending leaf (even an empty one: an empty bucket's root) as a page. */
  private writeLeaf(): void {
    const pgid = this.nextPgid;
    const count = this.leafKeySizes.length;
    const pages = Math.ceil(this.leafBytes / this.pageSize);
    const page = this.allocPages(pages, pgid);
    writeHeader(page, pgid, PageFlag.leaf, count, pages - 1);
    const dataStart = PAGE_HEADER_BYTES + LEAF_ELEMENT_BYTES * count;
    let data = dataStart;
    for (let i = 0; i < count; i++) {
      const el = PAGE_HEADER_BYTES + LEAF_ELEMENT_BYTES * i;
      const k = this.leafKeySizes[i]!;
      const v = this.leafValueSizes[i]!;
      page.writeUInt32LE(this.leafFlags[i]!, el);
      page.writeUInt32LE(data - el, el + 4);
      page.writeUInt32LE(k, el + 8);
      page.writeUInt32LE(v, el + 12);
      data += k + v;
    }
    this.leafData.copy(page, dataStart, 0, this.leafDataUsed);
    page.fill(0, data);
    // The first key outlives the leaf (branch levels): a copy of its own, not a view of a pooled slab.
    const firstKey = Buffer.allocUnsafeSlow(count > 0 ? this.leafKeySizes[0]! : 0);
    this.leafData.copy(firstKey, 0, 0, firstKey.length);
    this.children.push({ firstKey, pgid });
    this.nextPgid += pages;
    this.leafDataUsed = 0;
    this.leafKeySizes.length = 0;
    this.leafValueSizes.length = 0;
    this.leafFlags.length = 0;
    this.leafBytes = PAGE_HEADER_BYTES;
  }

  /** Writes the last leaf and the branch levels above the tree's leaves; returns its root pgid. */
  private async closeTree(): Promise<number> {
    if (this.leafKeySizes.length > 0 || this.children.length === 0) {
      this.writeLeaf();
      const pending = this.backpressure();
      if (pending) await pending;
    }
    let level = this.children;
    this.children = [];
    while (level.length > 1) {
      const next: ChildRef[] = [];
      let start = 0;
      while (start < level.length) {
        let bytes = PAGE_HEADER_BYTES;
        let end = start;
        while (end < level.length && end - start < PAGE_COUNT_MAX) {
          const size = BRANCH_ELEMENT_BYTES + level[end]!.firstKey.length;
          if (end > start && bytes + size > this.pageSize) break;
          bytes += size;
          end++;
        }
        next.push({ firstKey: level[start]!.firstKey, pgid: this.nextPgid });
        const pending = this.writeBranch(level.slice(start, end), bytes);
        if (pending) await pending;
        start = end;
      }
      level = next;
    }
    return level[0]!.pgid;
  }

  private writeBranch(children: ChildRef[], bytes: number): Promise<void> | undefined {
    const pgid = this.nextPgid;
    const pages = Math.ceil(bytes / this.pageSize);
    const page = this.allocPages(pages, pgid);
    writeHeader(page, pgid, PageFlag.branch, children.length, pages - 1);
    let data = PAGE_HEADER_BYTES + BRANCH_ELEMENT_BYTES * children.length;
    for (let i = 0; i < children.length; i++) {
      const c = children[i]!;
      const el = PAGE_HEADER_BYTES + BRANCH_ELEMENT_BYTES * i;
      page.writeUInt32LE(data - el, el);
      page.writeUInt32LE(c.firstKey.length, el + 4);
      writeU64(page, c.pgid, el + 8);
      data += c.firstKey.copy(page, data);
    }
    page.fill(0, data);
    this.nextPgid += pages;
    return this.backpressure();
  }

  /** The write in flight if one was queued since the last call: one buffer in flight at most. */
  private backpressure(): Promise<void> | undefined {
    if (!this.queuedSinceCheck) return undefined;
    this.queuedSinceCheck = false;
    return this.writing;
  }

  /**
   * Room for `pages` pages starting at `pgid` (the next unwritten id) in the write buffer; a
   * page run larger than the buffer gets a buffer of its own, written at once by flushBuffer.
   */
  private allocPages(pages: number, pgid: number): Buffer {
    assert(pgid === this.bufferStartPgid + this.bufferedPages, () => `bbolt writer: page ${pgid} out of order (buffer at ${this.bufferStartPgid}+${this.bufferedPages})`);
    if (this.bufferedPages + pages > WRITE_BUFFER_PAGES) {
      // The caller awaits nothing here: the buffered pages are copied out and written in order.
      this.queueWrite(Buffer.from(this.buffer.subarray(0, this.bufferedPages * this.pageSize)), this.bufferStartPgid);
      this.bufferStartPgid += this.bufferedPages;
      this.bufferedPages = 0;
    }
    if (pages > WRITE_BUFFER_PAGES) {
      const own = Buffer.alloc(pages * this.pageSize);
      this.queueWrite(own, pgid); // filled by the caller before the write starts (same turn)
      this.bufferStartPgid += pages;
      return own;
    }
    const at = this.bufferedPages * this.pageSize;
    this.bufferedPages += pages;
    return this.buffer.subarray(at, at + pages * this.pageSize);
  }

  private flushBuffer(): Promise<void> {
    if (this.bufferedPages > 0) {
      this.queueWrite(Buffer.from(this.buffer.subarray(0, this.bufferedPages * this.pageSize)), this.bufferStartPgid);
      this.bufferStartPgid += this.bufferedPages;
      this.bufferedPages = 0;
    }
    return this.writing;
  }

  private queueWrite(bytes: Buffer, pgid: number): void {
    if (this.failed) throw this.failed;
    this.queuedSinceCheck = true;
    const position = pgid * this.pageSize;
    this.writing = this.writing.then(() => this.writeAt(bytes, position)).catch((err: Error) => {
      this.failed ??= err;
      throw err;
    });
  }

  private async writeAt(bytes: Buffer, position: number): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      const { bytesWritten } = await this.file.write(bytes, at, bytes.length - at, position + at);
      at += bytesWritten;
    }
  }
}

function writeHeader(page: Buffer, pgid: number, flags: number, count: number, overflow: number): void {
  writeU64(page, pgid, 0);
  page.writeUInt16LE(flags, 8);
  page.writeUInt16LE(count, 10);
  page.writeUInt32LE(overflow, 12);
}
