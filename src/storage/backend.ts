import { join } from 'node:path';
import { ClassicLevel, type Iterator as LevelIterator } from 'classic-level';
import { assert } from '../platform/assert.js';
import { Limits } from '../platform/limits.js';
import type { Logger } from '../platform/logger.js';
import { BackendScanPart } from './backend-scan-part.js';
import { RecordPacker, visitPacked, type PackedRecordVisitor } from './backend-scan-protocol.js';
import { BUCKET_IMAGE_FILE, BucketImageReader } from './bucket-image.js';
import { writeBucketImage } from './bucket-image-writer.js';

/**
 * The backend: the durable copy of the applied state, in one classic-level (LevelDB) database at
 * data-dir/member/db. The WAL is the durability point for new writes; the backend lets a restart
 * skip replaying the WAL up to the applied index written with the data (DESIGN.md, Storage).
 *
 * On-disk key layout. Every LevelDB key starts with one bucket byte, so each layer owns a disjoint
 * key space (etcd's bbolt buckets) and a scan of one bucket is one contiguous LevelDB range:
 *
 *   0x01 key      mvcc history: main revision (8 bytes, big-endian) + user key bytes
 *                 -> mvcc record (src/mvcc/kv-record.ts). Big-endian revisions make LevelDB's
 *                 byte order the revision order, so a scan replays history in order.
 *   0x02 meta     name (ASCII) -> value; mvcc writes "mvcc" -> applied index | revision |
 *                 compacted revision + 1, each 8 bytes big-endian (src/mvcc/kv-store.ts).
 *   0x03 lease    reserved for the lessor
 *   0x04 auth     reserved for auth (users, roles, enabled flag)
 *   0x05 members  reserved for membership
 *   0x06 alarm    active alarms: member id (8 bytes BE) + alarm type (1 byte) -> empty
 *                 (src/server/alarms.ts)
 *   0x7f sync     one fixed key rewritten with {sync: true} by flush() as a durability barrier
 *
 * Write path. Callers stage puts and deletes (`put`, `del`); `commit()` hands everything staged
 * so far to LevelDB as ONE atomic batch, so a batch carrying data and the applied index that
 * covers it lands whole or not at all. Batches are written strictly in commit order: only one is
 * in flight at a time, and commits that arrive meanwhile are merged into the next batch (LevelDB
 * applies a batch's operations in order, so a later put of the same key wins). Writes are not
 * synced; `flush()` resolves once everything committed before it is on disk (fsync'd).
 *
 * Example: commit() of [put k@5, put meta applied=7] starts batch B1; while B1 runs, commit() of
 * [put k@6, put meta applied=8] and commit() of [del k@2] queue up and go out together as B2 =
 * [put k@6, put meta applied=8, del k@2]. A crash loses at most whole batches from the end.
 */

export const Bucket = {
  key: 0x01,
  meta: 0x02,
  lease: 0x03,
  auth: 0x04,
  members: 0x05,
  alarm: 0x06,
  sync: 0x7f,
} as const;
export type Bucket = (typeof Bucket)[keyof typeof Bucket];

/**
 * LevelDB's memtable size. Every applied write lands here; LevelDB's 4 MiB default flushed and
 * compacted so often that loading 300k records of 256 B cost a third more CPU (measured: 2.8 s
 * vs 2.1 s user). Costs more than twice this in memory: the active and the flushing memtable,
 * and their blocks are malloc'd by whichever thread-pool thread writes, so freed memtables leave
 * free chunks spread over several glibc arenas. 32 MiB held about 30 MiB more RSS than 8 MiB
 * after 500,000 puts of 256 B to one key (median of 3 alternating runs, load 10-14: 216 -> 185
 * MiB), at the same server CPU per put within the noise (30.8 vs 30.2 us).
 */
const WRITE_BUFFER_BYTES = 8 * 1024 * 1024;

/** Entries, and bytes, fetched per native call while scanning a bucket. */
const SCAN_BATCH_ENTRIES = 1000;
const SCAN_BATCH_BYTES = 1024 * 1024;

type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

export interface BackendOptions {
  logger: Logger;
}

const scanWorkerPath = join(__dirname, '..', '..', 'workers', 'backend-scan.js');

export interface PackedScanOptions {
  /** 'auto' (default): a worker thread for a large bucket, inline for a small one; tests force either. */
  thread?: 'auto' | 'worker' | 'inline';
  /** Chunk size; Limits.backendScanChunkBytes by default (tests use small ones to get many chunks). */
  chunkBytes?: number;
  /** Bytes of each value handed over in the records buffer, the rest in tails (backend-scan-protocol.ts); 0 by default. */
  headBytes?: number;
  /** Worker threads reading parts of the bucket at once; Limits.backendScanWorkers by default. */
  workers?: number;
  /** First key (without the bucket byte) to visit, inclusive: the rest of a bucket after its image. */
  gte?: Buffer;
}

export interface ScanOptions {
  /** First key (without the bucket byte) to visit, inclusive. */
  gte?: Buffer;
  /** Key (without the bucket byte) to stop before. */
  lt?: Buffer;
}

export class Backend {
  private readonly db: ClassicLevel<Buffer, Buffer>;
  private readonly logger: Logger;
  /** Operations staged since the last commit(). */
  private staged: BatchOp[] = [];
  /** Committed operations waiting for the batch in flight to finish. */
  private queued: BatchOp[] = [];
  /** Invariant: at most one LevelDB batch is in flight; that is what keeps batches in commit order. */
  private writing = false;
  /** flush() callers waiting for the next synced batch. */
  private syncWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  /** Callers waiting for the queue to drain (close). */
  private idleWaiters: Array<() => void> = [];
  /** The first write failure; every later commit or flush fails with it (the disk is not trusted). */
  private failure: Error | undefined;
  private closed = false;
  /** The bucket image being written (stop() abandons it; done settles either way); null when none is. */
  private imageWriter: { stop: () => void; done: Promise<unknown> } | null = null;
  /** Operations committed so far (for metrics and tests). */
  committedOps = 0;
  /** Told how long each batch took LevelDB to write (etcd_disk_backend_commit_duration_seconds). */
  commitObserver: ((seconds: number) => void) | null = null;
  /**
   * Commits so far (commit() with something staged, and commitDeletes()), numbered from 1: a
   * commit's number is this value right after it. Invariant: writtenSequence <= commitSequence.
   */
  commitSequence = 0;
  /** Every commit numbered up to this is written to LevelDB (readable by get/getMany). */
  writtenSequence = 0;
  /** Told each time writtenSequence moves (the mvcc store drops values readable from disk). */
  writtenObserver: ((sequence: number) => void) | null = null;
  /** Parts (worker threads) the last worker scan read at once (scanPacked; for the log and tests). */
  lastScanParts = 0;

  private constructor(db: ClassicLevel<Buffer, Buffer>, logger: Logger, private readonly location: string) {
    this.db = db;
    this.logger = logger;
  }

  static async open(path: string, options: BackendOptions): Promise<Backend> {
    const db = new ClassicLevel<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    // multithreading: the start-up scan worker (scanPacked) opens the same LevelDB handle.
    await db.open({ createIfMissing: true, writeBufferSize: WRITE_BUFFER_BYTES, multithreading: true });
    return new Backend(db, options.logger.child({ component: 'backend' }), path);
  }

  /** Stages a put; it reaches LevelDB with the next commit(). `key` excludes the bucket byte. */
  put(bucket: Bucket, key: Buffer, value: Buffer): void {
    this.staged.push({ type: 'put', key: bucketKey(bucket, key), value });
  }

  /**
   * Stages a put of a key that already starts with its bucket byte: saves a copy on hot paths.
   */
  putPrefixed(prefixedKey: Buffer, value: Buffer): void {
    this.staged.push({ type: 'put', key: prefixedKey, value });
  }

  /** Stages a delete; it reaches LevelDB with the next commit(). */
  del(bucket: Bucket, key: Buffer): void {
    this.staged.push({ type: 'del', key: bucketKey(bucket, key) });
  }

  /** Number of staged, not yet committed operations. */
  get stagedOps(): number {
    return this.staged.length;
  }

  /** Operations committed but not yet written (backpressure signal for the apply loop). */
  get queuedOps(): number {
    return this.queued.length;
  }

  /**
   * Hands everything staged to LevelDB as one atomic batch (merged with others still waiting).
   * Does not wait for the write; throws the earlier write failure if there was one.
   */
  commit(): void {
    this.throwIfFailed();
    assert(!this.closed, 'backend commit after close');
    if (this.staged.length === 0) return;
    if (this.queued.length === 0) {
      this.queued = this.staged;
    } else {
      for (const op of this.staged) this.queued.push(op);
    }
    this.staged = [];
    this.commitSequence++;
    if (!this.writing) this.writeNext();
  }

  /** Resolves once every batch committed before this call is on disk (one fsync). */
  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.syncWaiters.push({ resolve, reject });
      if (!this.writing) this.writeNext();
    });
  }

  /**
   * Commits deletes of `keys` as a batch of their own, after every batch committed so far, leaving staged
   * operations staged (background work such as compaction must not commit the apply loop's
   * half-built batch without its meta).
   */
  commitDeletes(bucket: Bucket, keys: Buffer[]): void {
    this.throwIfFailed();
    assert(!this.closed, 'backend commit after close');
    for (const key of keys) this.queued.push({ type: 'del', key: bucketKey(bucket, key) });
    this.commitSequence++;
    if (!this.writing) this.writeNext();
  }

  /** Reads one key (without the bucket byte) from LevelDB; staged or queued writes are not seen. */
  async get(bucket: Bucket, key: Buffer): Promise<Buffer | undefined> {
    return this.db.get(bucketKey(bucket, key));
  }

  /**
   * Reads several keys (without the bucket byte) in one native call, in the thread pool: the
   * event loop never waits on the disk. undefined for a missing key. Sees only written batches.
   */
  async getMany(bucket: Bucket, keys: readonly Buffer[]): Promise<Array<Buffer | undefined>> {
    assert(!this.closed, 'backend read after close');
    const prefixed = new Array<Buffer>(keys.length);
    for (let i = 0; i < keys.length; i++) prefixed[i] = bucketKey(bucket, keys[i]!);
    return this.db.getMany(prefixed);
  }

  /**
   * Visits every entry of a bucket in key order, `SCAN_BATCH_ENTRIES` per native call. Keys are
   * handed over without the bucket byte. Reads what LevelDB holds, not staged writes.
   */
  async scan(bucket: Bucket, visit: (key: Buffer, value: Buffer) => void, options: ScanOptions = {}): Promise<number> {
    const gte = options.gte ? bucketKey(bucket, options.gte) : Buffer.from([bucket]);
    const lt = options.lt ? bucketKey(bucket, options.lt) : Buffer.from([bucket + 1]);
    // highWaterMarkBytes: classic-level stops a nextv() at 16 KiB by default, about 50 mvcc
    // records, so a full scan paid a thread-pool round trip per 50 entries (measured: 1M records
    // in 5.5 s). fillCache off: a start-up scan would only evict the blocks reads need.
    const iterator = this.db.iterator({ gte, lt, highWaterMarkBytes: SCAN_BATCH_BYTES, fillCache: false });
    let visited = 0;
    try {
      // Prefetch: the next batch is read in the thread pool while this one is visited.
      let next = iterator.nextv(SCAN_BATCH_ENTRIES);
      for (;;) {
        const entries = await next;
        if (entries.length === 0) break;
        next = iterator.nextv(SCAN_BATCH_ENTRIES);
        for (const [key, value] of entries) {
          visit(key.subarray(1), value);
          visited++;
        }
      }
    } finally {
      await iterator.close();
    }
    return visited;
  }

  /**
   * Visits every entry of a bucket in key order, as scan() does, but handed over as ranges of
   * packed chunks (backend-scan-protocol.ts) that the visitor reads in place: no object per
   * record. A large bucket is read and packed by a worker thread while this thread visits; the
   * visitor may keep views of a chunk (it is never reused). For start-up, while nothing writes.
   */
  async scanPacked(bucket: Bucket, visit: PackedRecordVisitor, options: PackedScanOptions = {}): Promise<number> {
    assert(!this.closed, 'backend scan after close');
    const gte = options.gte ? bucketKey(bucket, options.gte) : Buffer.from([bucket]);
    const lt = Buffer.from([bucket + 1]);
    let thread = options.thread ?? 'auto';
    const chunkBytes = options.chunkBytes ?? Limits.backendScanChunkBytes;
    const headBytes = options.headBytes ?? 0;
    if (thread === 'auto') thread = (await this.db.approximateSize(gte, lt)) >= Limits.backendScanWorkerBytesMin ? 'worker' : 'inline';
    if (thread === 'inline') {
      let visited = 0;
      const packer = new RecordPacker(chunkBytes, headBytes);
      const visitFull = (): void => {
        for (const chunk of packer.full.splice(0)) visited += visitPacked(chunk, visit);
      };
      const bucketByte = Buffer.from([bucket]);
      await this.scan(bucket, (key, value) => {
        // scan() hands keys without the bucket byte; the packer drops the first byte it is given.
        packer.add(Buffer.concat([bucketByte, key]), value);
        if (packer.full.length > 0) visitFull();
      }, { gte: options.gte });
      packer.close();
      visitFull();
      return visited;
    }
    return this.scanInWorker(gte, lt, visit, chunkBytes, headBytes, options.workers ?? Limits.backendScanWorkers);
  }

  /**
   * Reads [gte, lt) in `workers` (Limits.backendScanWorkers) worker threads at once, each over a consecutive
   * part of about equal size on disk (splitRange), and visits the parts in order: the first part's
   * chunks as they come, the later parts' queued meanwhile (up to backendScanLookaheadChunksMax
   * each). One worker was the bound of a restart at 1M keys once the main thread's rebuild got
   * cheaper: classic-level's iteration costs about 2 us of CPU per record, all in that thread.
   */
  private async scanInWorker(gte: Buffer, lt: Buffer, visit: PackedRecordVisitor, chunkBytes: number, headBytes: number, workers: number): Promise<number> {
    const bounds = await this.splitRange(gte, lt, workers);
    this.lastScanParts = bounds.length - 1;
    const parts: BackendScanPart[] = [];
    for (let i = 0; i + 1 < bounds.length; i++) {
      parts.push(new BackendScanPart(scanWorkerPath, {
        location: this.location, gte: bounds[i]!, lt: bounds[i + 1]!, chunkBytes, headBytes,
        chunksInFlightMax: i === 0 ? Limits.backendScanChunksInFlightMax : Limits.backendScanLookaheadChunksMax,
      }));
    }
    let visited = 0;
    try {
      for (const part of parts) {
        for (let chunk = await part.next(); chunk !== null; chunk = await part.next()) visited += visitPacked(chunk, visit);
      }
    } catch (err) {
      // A worker failed, or the visitor threw (an assertion on a record): every worker stops
      // reading, and the scan fails once all are gone (their LevelDB handles closed).
      for (const part of parts) part.stop();
      await Promise.all(parts.map((part) => part.exited));
      throw err;
    }
    await Promise.all(parts.map((part) => part.exited));
    return visited;
  }

  /**
   * Boundaries [gte, k1, ..., lt) that cut [gte, lt) into at most `parts` ranges of about equal
   * size on disk (LevelDB's approximateSize). Cut points are the bucket byte and 8 bytes taken as
   * a big-endian number, found by bisection between the first and last key's: for the mvcc
   * bucket these are revisions. Fewer parts (at the least one) when the range is too small to cut
   * or LevelDB cannot tell (data still in the memtable counts as size 0).
   */
  private async splitRange(gte: Buffer, lt: Buffer, parts: number): Promise<Buffer[]> {
    if (parts <= 1) return [gte, lt];
    const total = await this.db.approximateSize(gte, lt);
    const first = await this.db.keys({ gte, lt, limit: 1 }).all();
    const last = await this.db.keys({ gte, lt, limit: 1, reverse: true }).all();
    if (total <= 0 || first.length === 0 || last.length === 0) return [gte, lt];
    const bucket = gte[0]!;
    const numberOf = (key: Buffer): number => {
      const padded = Buffer.alloc(9);
      key.copy(padded, 0, 0, 9);
      return padded.readUInt32BE(1) * 0x1_0000_0000 + padded.readUInt32BE(5);
    };
    const keyOf = (n: number): Buffer => {
      const key = Buffer.alloc(9);
      key[0] = bucket;
      key.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 1);
      key.writeUInt32BE(n % 0x1_0000_0000, 5);
      return key;
    };
    const bounds = [gte];
    let lo = numberOf(first[0]!);
    const hi = numberOf(last[0]!);
    for (let part = 1; part < parts; part++) {
      const target = (total * part) / parts;
      // The smallest n whose prefix holds at least `target` bytes before it.
      let a = lo;
      let b = hi;
      while (a < b) {
        const mid = a + Math.floor((b - a) / 2);
        if (await this.db.approximateSize(gte, keyOf(mid)) < target) a = mid + 1;
        else b = mid;
      }
      if (a <= lo || a >= hi) continue; // nothing to cut here
      bounds.push(keyOf(a));
      lo = a;
    }
    bounds.push(lt);
    return bounds;
  }

  /** Resolves once every committed batch has been handed to LevelDB and written (not synced). */
  async drain(): Promise<void> {
    this.throwIfFailed();
    if (this.writing) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.throwIfFailed();
  }

  /**
   * A consistent view of every bucket but sync, as of now: one LevelDB iterator, whose implicit
   * snapshot is taken at creation, so writes committed afterwards are not seen (state-image.ts).
   * The caller must close() it.
   */
  snapshotReader(): BackendSnapshotReader {
    assert(!this.closed, 'backend snapshot after close');
    const iterator = this.db.iterator({
      gte: Buffer.from([Bucket.key]), lt: Buffer.from([Bucket.sync]), highWaterMarkBytes: SCAN_BATCH_BYTES, fillCache: false,
    });
    return new BackendSnapshotReader(iterator);
  }

  /**
   * Defragment: LevelDB's full-range compaction (compactRange), which flushes the memtable and
   * rewrites every table file, dropping deleted and overwritten records. It runs in LevelDB's
   * thread (classic-level hands it to the libuv pool), so reads and writes go on meanwhile;
   * LevelDB may slow writes down while level 0 is full, never stops them for the whole run.
   */
  async defragment(): Promise<void> {
    assert(!this.closed, 'backend defragment after close');
    await this.db.compactRange(Buffer.from([0x00]), Buffer.from([0xff]));
  }

  /**
   * LevelDB's estimate of the table-file bytes holding the backend's records (every bucket):
   * db_size_in_use. It leaves out the write-ahead log and the memtable not yet flushed, and
   * counts overwritten and deleted records until a compaction drops them.
   */
  approximateSize(): Promise<number> {
    assert(!this.closed, 'backend size after close');
    return this.db.approximateSize(Buffer.from([0x00]), Buffer.from([0xff]));
  }

  /** The bucket image file (bucket-image.ts), inside the LevelDB directory: it goes wherever the backend goes. */
  get imagePath(): string {
    return join(this.location, BUCKET_IMAGE_FILE);
  }

  /** The bucket image, or null when there is none; BucketImageError when its header is damaged. */
  openImage(): Promise<BucketImageReader | null> {
    return BucketImageReader.open(this.imagePath);
  }

  /**
   * Writes a new bucket image of `bucket` below `lt` (with its bucket byte) (bucket-image-writer.ts),
   * replacing the previous one once complete. Every batch committed before the call is in it
   * (drained first); writes meanwhile go on. With `appendFrom`, the end key of the image in place:
   * the new one is that image plus the records from there to `lt` (the caller knows the records
   * below it are unchanged). One at a time; close() stops one in progress.
   */
  async writeImage(bucket: Bucket, lt: Buffer, tag: Buffer, headBytes: number, appendFrom?: Buffer): Promise<{ records: number; bytes: number }> {
    assert(this.imageWriter === null, 'two bucket images written at once');
    await this.drain();
    assert(!this.closed, 'bucket image after close');
    let stopped = false;
    const written = writeBucketImage(this.db, {
      bucket, gte: appendFrom ?? Buffer.from([bucket]), lt, tag, path: this.imagePath, append: appendFrom !== undefined,
      chunkBytes: Limits.bucketImageChunkBytes, headBytes, stopped: () => stopped,
    });
    this.imageWriter = { stop: () => { stopped = true; }, done: written.catch(() => undefined) };
    try {
      return await written.catch((err: unknown) => {
        throw new Error(`writing the bucket image failed: ${err instanceof Error ? err.message : String(err)}`);
      });
    } finally {
      this.imageWriter = null;
    }
  }

  /** Writes what is committed, waits for it, and closes LevelDB. Staged operations are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    // An image being written is abandoned (what it wrote is never named; the next write replaces
    // it); its iterator is closed before LevelDB is.
    if (this.imageWriter !== null) {
      this.imageWriter.stop();
      await this.imageWriter.done;
    }
    if (this.writing) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.closed = true;
    if (this.staged.length > 0) {
      this.logger.warn({ stagedOps: this.staged.length }, 'closing backend with uncommitted operations; they are dropped');
    }
    await this.db.close();
  }

  private writeNext(): void {
    assert(!this.writing, 'two backend batches in flight');
    const ops = this.queued;
    const waiters = this.syncWaiters;
    if (ops.length === 0 && waiters.length === 0) {
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of idle) resolve();
      return;
    }
    this.queued = [];
    this.syncWaiters = [];
    // Every commit numbered up to here is in `ops` (commits queue before they are numbered out).
    const sequence = this.commitSequence;
    const sync = waiters.length > 0;
    // LevelDB skips empty batches, so a flush with nothing queued writes the barrier key: its
    // fsync of the log also covers every batch written before it.
    if (sync) ops.push({ type: 'put', key: SYNC_KEY, value: SYNC_VALUE });
    this.writing = true;
    const started = performance.now();
    let written: Promise<void>;
    try {
      // A chained batch copies each operation straight into LevelDB's native WriteBatch; the
      // array form clones and re-validates every operation in JavaScript first (about twice the
      // main thread time per operation, measured).
      const batch = this.db.batch();
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
      written = batch.write({ sync });
    } catch (err) {
      // A closed or broken database throws at once; it fails the same way as a failed write.
      written = Promise.reject(err);
    }
    written.then(
      () => {
        this.writing = false;
        this.committedOps += ops.length;
        this.commitObserver?.((performance.now() - started) / 1000);
        if (sequence > this.writtenSequence) {
          this.writtenSequence = sequence;
          this.writtenObserver?.(sequence);
        }
        for (const w of waiters) w.resolve();
        this.writeNext();
      },
      (err: Error) => this.fail(err, ops.length, waiters),
    );
  }

  private fail(err: Error, ops: number, waiters: Array<{ reject: (err: Error) => void }>): void {
    this.writing = false;
    this.failure ??= err;
    this.logger.error({ err, ops }, 'backend batch write failed; the backend refuses further writes');
    for (const w of waiters) w.reject(err);
    for (const w of this.syncWaiters) w.reject(err);
    this.syncWaiters = [];
    const idle = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of idle) resolve();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }
}

/**
 * Reads one LevelDB snapshot: get() seeks to a key, nextBatch() walks every record from the first
 * bucket on, in key order. Both move the same iterator, so get() is for before the walk starts.
 */
export class BackendSnapshotReader {
  private closed = false;

  constructor(private readonly iterator: LevelIterator<ClassicLevel<Buffer, Buffer>, Buffer, Buffer>) {}

  /** The value of one key (without the bucket byte) in this snapshot. */
  async get(bucket: Bucket, key: Buffer): Promise<Buffer | undefined> {
    const target = bucketKey(bucket, key);
    this.iterator.seek(target);
    const entry = await this.iterator.next();
    if (entry === undefined || !entry[0].equals(target)) return undefined;
    return entry[1];
  }

  /** Moves back to the first record. */
  rewind(): void {
    this.iterator.seek(Buffer.from([Bucket.key]));
  }

  /** The next records (keys WITH their bucket byte), or an empty array at the end. */
  nextBatch(): Promise<Array<[Buffer, Buffer]>> {
    return this.iterator.nextv(SCAN_BATCH_ENTRIES);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.iterator.close();
  }
}

const SYNC_KEY = Buffer.from([Bucket.sync]);
const SYNC_VALUE = Buffer.alloc(0);

function bucketKey(bucket: Bucket, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(key.length + 1);
  out[0] = bucket;
  key.copy(out, 1);
  return out;
}

