import { assert } from '../platform/assert.js';
import { KeyraftError } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import type { Logger } from '../platform/logger.js';
import type { KeyValue } from '../proto/etcd-types.js';
import { Bucket, type Backend, type PackedScanOptions } from '../storage/backend.js';
import { visitPacked, type PackedRecordVisitor } from '../storage/backend-scan-protocol.js';
import { BucketImageError } from '../storage/bucket-image.js';
import { BPlusTree, BPlusTreeCursor } from './b-plus-tree.js';
import { Compactor } from './compaction.js';
import { hashBackend, hashKV, type HashKVResult } from './hash.js';
import { HistoryImage, type HistoryImageOptions } from './history-image.js';
import { HistoryValues, type HistoryPin } from './history-values.js';
import type { ChangeListener, KV, RangeOptions, RangeResult, ReadView, ScanResume, TxnWrite } from './kv.js';
import { encodePutRecord, encodeTombstoneRecord, readPutRecordAt, RECORD_HEADER_BYTES } from './kv-record.js';
import { entryLastModRevision, isUnread, KeyIndex, type IndexEntry } from './key-index.js';
import { RecordArena } from './record-arena.js';
import { LatestSlots } from './latest-slots.js';
import { prefixedRevisionKey, readUint64, REVISION_BYTES, writeUint64 } from './revision.js';

/**
 * The MVCC key-value store (etcd's mvcc/kvstore.go): a B+tree of key indexes in memory, and the
 * backend as its durable copy and the home of history.
 *
 * In memory: every key's index (key-index.ts): each revision a read may still ask for, as a few
 * numbers (mod revision; per generation its create revision and first version; leases where
 * any), and the latest live KeyValue of each key WITH its value. Compaction reclaims the
 * unreadable revisions (compaction.ts). Keys are indexed as latin1 strings, whose order is the
 * byte order etcd ranges use.
 *
 * On disk only: the values of revisions that are no longer their key's latest (history-values.ts
 * keeps one in memory just until the backend batch holding its record is written, then reads it
 * back on demand through a bounded cache). So memory grows with live data, not with history.
 *
 * Reads: at the current revision (every read that names no revision, every compare, every read
 * in a write txn) they are synchronous and copy-free: the latest KeyValues as they are. A read at
 * an older revision resolves the index synchronously; a KeyValue whose value is not in memory
 * comes back unread (RangeResult.unread counts them, isUnread marks them), and the caller gets
 * the values with readValues() (async, pinned against compaction) before answering: the
 * applier and the watch history do so (rangeResolved is both in one call).
 *
 * Writes: each put or delete stages its revision record in the backend (backend.ts layout);
 * commit(appliedIndex) stages the meta record and commits ONE backend batch, so the applied
 * index on disk always matches the data on disk. Start-up (open) reads the meta, replays every
 * revision record in order into the index, and schedules the compaction the meta names (a crash
 * may have interrupted one). The member then replays the WAL after `appliedIndex`.
 *
 * Meta record (bucket meta, key "mvcc"): applied index | current revision | compacted revision + 1,
 * 8 bytes big-endian each (compacted is -1 until the first compaction, as etcd's compactMainRev).
 *
 * Invariant: compactedRevision <= currentRevision; currentRevision >= 1.
 * Invariant: at most one write transaction is open, and no commit happens while it is.
 */

const META_KEY = Buffer.from('mvcc', 'ascii');
const META_BYTES = 24;
const EMPTY = Buffer.alloc(0);

/**
 * The applied index recorded in a backend's mvcc meta, read through `get` (e.g. a snapshot
 * reader's, for a state image); 0 when the backend holds no meta yet.
 */
export async function readAppliedIndex(get: (bucket: Bucket, key: Buffer) => Promise<Buffer | undefined>): Promise<number> {
  const meta = await get(Bucket.meta, META_KEY);
  if (meta === undefined) return 0;
  assert(meta.length === META_BYTES, () => `mvcc meta of ${meta.length} bytes, expected ${META_BYTES}`);
  return readUint64(meta, 0);
}

/** The mvcc meta record (bucket meta) as a whole, for tools that build or read a backend offline (snapshot restore and export). */
export const MVCC_META_KEY = META_KEY;

export interface MvccMeta {
  appliedIndex: number;
  revision: number;
  /** -1 before the first compaction. */
  compacted: number;
}

export function encodeMvccMeta(meta: MvccMeta): Buffer {
  const out = Buffer.allocUnsafe(META_BYTES);
  writeUint64(out, meta.appliedIndex, 0);
  writeUint64(out, meta.revision, 8);
  writeUint64(out, meta.compacted + 1, 16);
  return out;
}

export function decodeMvccMeta(meta: Buffer): MvccMeta {
  assert(meta.length === META_BYTES, () => `mvcc meta of ${meta.length} bytes, expected ${META_BYTES}`);
  return { appliedIndex: readUint64(meta, 0), revision: readUint64(meta, 8), compacted: readUint64(meta, 16) - 1 };
}

export interface KvStoreOptions {
  logger: Logger;
  /** --history-cache-bytes: bytes of old values read back that are kept for the next read. */
  historyCacheBytes?: number;
  /** How start-up reads the backend (Backend.scanPacked); tests force a worker or inline, and small chunks. */
  recoveryScan?: PackedScanOptions;
  /** When the history image is written; Limits' values by default. */
  historyImage?: Partial<HistoryImageOptions>;
}

/** What start-up read (kv-store.ts recover), for the log and tests. */
export interface RecoveryStats {
  records: number;
  /** Of `records`, those read from the history image (history-image.ts) rather than LevelDB. */
  imageRecords: number;
  /** Bytes of put values read, and how many of them later records of the same key replaced. */
  valueBytes: number;
  replacedBytes: number;
  /** Bytes of latest values copied out of mostly replaced scan chunks (relocateRecoveredValues). */
  relocatedBytes: number;
}

export class KvStore implements KV {
  private readonly backend: Backend;
  private readonly logger: Logger;
  private readonly index = new BPlusTree<IndexEntry>();
  private readonly compactor: Compactor;
  private revision = 1;
  private compacted = -1;
  private applied = 0;
  /** A compaction applied since the last commit; its pass starts after that commit. */
  private compactionToSchedule = -1;
  private readonly txn: StoreTxnWrite;
  private readonly readView: StoreReadView;
  private txnOpen = false;
  private listener: ChangeListener | undefined;
  private readonly cursor = new BPlusTreeCursor<IndexEntry>();
  /** Memory for the records and keys the index keeps (record-arena.ts). */
  private readonly arena = new RecordArena();
  /**
   * The latest KeyValues of keys in slot form (latest-slots.ts): keys start-up read back with one
   * revision, and keys a put created, until something reads them.
   */
  private readonly latestSlots = new LatestSlots(this.arena);
  /**
   * The op order of each revision whose changes are not in key order (a txn writing "b" then
   * "a"), as each key's position (latin1 key -> sub revision), for history reads: the index
   * keeps no sub revisions, and a watcher catching up must get a txn's events in op order, as
   * etcd's backend (keyed by main and sub revision) gives them. Revisions in key order (every
   * single put, every DeleteRange) need no entry. Dropped with compaction; not persisted: after a
   * restart, older revisions read back in key order.
   */
  private readonly opOrders = new Map<number, Map<string, number>>();
  /** Values of old revisions: held until written, then read back from the backend (history-values.ts). */
  readonly history: HistoryValues;
  /** What start-up read from the backend. */
  recovered: RecoveryStats = { records: 0, imageRecords: 0, valueBytes: 0, replacedBytes: 0, relocatedBytes: 0 };
  /** When the history image is written (history-image.ts). */
  private readonly image: HistoryImage;

  private constructor(backend: Backend, logger: Logger, historyCacheBytes: number, imageOptions: Partial<HistoryImageOptions> = {}) {
    this.backend = backend;
    this.logger = logger;
    this.history = new HistoryValues(backend, historyCacheBytes);
    // One store per backend: the store is the one told which batches are readable.
    backend.writtenObserver = (sequence) => this.history.written(sequence);
    this.compactor = new Compactor(this.index, backend, this.history, logger);
    this.image = new HistoryImage(backend, () => ({ revision: this.revision, compacted: this.compacted }), () => this.compactor.idle(), logger, imageOptions);
    this.txn = new StoreTxnWrite(this);
    this.readView = new StoreReadView(this);
  }

  /** Rebuilds the store from the backend. */
  static async open(backend: Backend, options: KvStoreOptions): Promise<KvStore> {
    const logger = options.logger.child({ component: 'mvcc' });
    const historyCacheBytes = options.historyCacheBytes ?? Limits.historyCacheBytes;
    const store = new KvStore(backend, logger, historyCacheBytes, options.historyImage);
    try {
      await store.recover(options.recoveryScan ?? {}, true);
      return store;
    } catch (err) {
      if (!(err instanceof BucketImageError)) throw err;
      // What the image gave is dropped with `store`: LevelDB holds every record the image did.
      logger.warn({ err: err.message }, 'the mvcc history image is damaged; rebuilding from LevelDB alone');
      const rebuilt = new KvStore(backend, logger, historyCacheBytes, options.historyImage);
      await rebuilt.recover(options.recoveryScan ?? {}, false);
      return rebuilt;
    }
  }

  get currentRevision(): number {
    return this.revision;
  }

  get compactedRevision(): number {
    return this.compacted;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  /** Number of keys in the index (live or with history still held). */
  get keyCount(): number {
    return this.index.size;
  }

  get compaction(): Compactor {
    return this.compactor;
  }

  /** etcd's HashKV at `revision` (0 = current); hash.ts says what it covers. */
  hashKV(revision: number): Promise<HashKVResult> {
    // Getters: hashKV re-reads the revisions after its awaits.
    const store = this;
    return hashKV({
      index: this.index,
      latestSlots: this.latestSlots,
      backend: this.backend,
      get currentRevision() { return store.revision; },
      get compactedRevision() { return store.compacted; },
    }, revision);
  }

  /** etcd's Hash: the whole backend's content (hash.ts). */
  hashBackend(): Promise<number> {
    return hashBackend(this.backend);
  }

  /** Registers the one listener told about each transaction's changes (the watch hub). */
  onChanges(listener: ChangeListener | undefined): void {
    this.listener = listener;
  }

  read(): ReadView {
    return this.readView;
  }

  write(): TxnWrite {
    assert(!this.txnOpen, 'a write transaction is already open');
    this.txnOpen = true;
    this.txn.begin(this.revision);
    return this.txn;
  }

  compact(revision: number): void {
    assert(!this.txnOpen, 'compact inside a write transaction');
    if (revision <= this.compacted) throw new KeyraftError('Compacted');
    if (revision > this.revision) throw new KeyraftError('FutureRevision');
    this.compacted = revision;
    this.compactionToSchedule = revision;
    for (const rev of this.opOrders.keys()) if (rev < revision) this.opOrders.delete(rev);
  }

  /** The op order of `revision`'s changes when it is not key order (see opOrders), else undefined. */
  opOrderOf(revision: number): ReadonlyMap<string, number> | undefined {
    return this.opOrders.get(revision);
  }

  commit(appliedIndex: number): void {
    assert(!this.txnOpen, 'commit inside a write transaction');
    assert(Number.isSafeInteger(appliedIndex) && appliedIndex >= this.applied, () => `applied index ${appliedIndex} goes back from ${this.applied}`);
    if (appliedIndex === this.applied && this.backend.stagedOps === 0 && this.compactionToSchedule < 0) return;
    this.applied = appliedIndex;
    const meta = Buffer.allocUnsafe(META_BYTES);
    writeUint64(meta, appliedIndex, 0);
    writeUint64(meta, this.revision, 8);
    writeUint64(meta, this.compacted + 1, 16);
    this.backend.put(Bucket.meta, META_KEY, meta);
    const ops = this.backend.stagedOps;
    this.backend.commit();
    this.image.committed(ops);
    // Old values of revisions up to here may leave memory once this commit is written.
    this.history.committed(this.backend.commitSequence, this.revision);
    if (this.compactionToSchedule >= 0) {
      this.compactor.schedule(this.compactionToSchedule);
      this.compactionToSchedule = -1;
    }
  }

  async flush(): Promise<void> {
    await this.compactor.idle();
    await this.backend.flush();
  }

  /** Resolves once no history image is being written (tests, benchmarks). */
  historyImageSettled(): Promise<void> {
    return this.image.settled();
  }

  async close(): Promise<void> {
    this.image.close();
    await this.compactor.idle();
  }

  // ---- reads -----------------------------------------------------------------------------------

  /** @internal Range at `atRev` (0 = `current`) where `current` is the reader's current revision. */
  rangeAt(key: Buffer, end: Buffer | undefined, options: RangeOptions | undefined, current: number): RangeResult {
    let rev = options?.revision ?? 0;
    if (rev > current) throw new KeyraftError('FutureRevision');
    if (rev <= 0) rev = current;
    if (rev < this.compacted) throw new KeyraftError('Compacted');
    const limit = options?.limit ?? 0;
    const countOnly = options?.countOnly ?? false;
    const kvs: KeyValue[] = [];
    // The newest revision the index holds: an open transaction's writes are at current + 1.
    // Reading at or above it is reading each key's latest entry, the O(1) path.
    const newest = this.txnOpen && this.txn.changes.length > 0 ? this.revision + 1 : this.revision;
    if (end === undefined || end.length === 0) {
      const keyString = key.toString('latin1');
      const entry = this.index.get(keyString);
      // A key in slot form (its one revision after rev) was not there at rev: no KeyIndex made.
      const ki = entry === undefined || (typeof entry === 'number' && this.latestSlots.modRevision(entry) > rev) ? undefined : this.keyIndexOf(keyString, entry);
      let kv = ki === undefined ? undefined : rev >= newest ? ki.latest() : ki.get(rev);
      if (kv === undefined) return { kvs, count: 0, revision: current, unread: 0 };
      if (countOnly) return { kvs, count: 1, revision: current, unread: 0 };
      if (isUnread(kv)) kv = this.history.lookup(kv) ?? kv;
      kvs.push(kv);
      return { kvs, count: 1, revision: current, unread: isUnread(kv) ? 1 : 0 };
    }
    const endKey = end.length === 1 && end[0] === 0 ? null : end.toString('latin1');
    const cursor = this.index.seek(key.toString('latin1'), this.cursor);
    const atLatest = rev >= newest;
    let count = 0;
    let unread = 0;
    for (; cursor.valid; cursor.next()) {
      if (endKey !== null && cursor.key >= endKey) break;
      const entry = cursor.value;
      if (atLatest) {
        // Keys in slot form (key-index.ts) are counted as they are: a count or a limited range
        // over a large store makes KeyIndexes only for the keys it returns.
        if (typeof entry !== 'number' && !entry.isLive()) continue;
        count++;
        if (!countOnly && (limit <= 0 || kvs.length < limit)) kvs.push(this.keyIndexAt(cursor).latest()!);
        continue;
      }
      if (typeof entry === 'number' && this.latestSlots.modRevision(entry) > rev) continue; // created after rev
      let kv = this.keyIndexAt(cursor).get(rev);
      if (kv === undefined) continue;
      count++;
      if (!countOnly && (limit <= 0 || kvs.length < limit)) {
        if (isUnread(kv)) {
          kv = this.history.lookup(kv) ?? kv;
          if (isUnread(kv)) unread++;
        }
        kvs.push(kv);
      }
    }
    return { kvs, count, revision: current, unread };
  }

  /**
   * Fills in the values of the unread KeyValues in `kvs` (from a range or collectChanges at
   * `atRevision` or later, resolved in this same turn), from memory or the backend. Pinned
   * against compaction meanwhile, so it never fails for a read that got its index entries.
   */
  async readValues(kvs: KeyValue[], atRevision: number): Promise<void> {
    const pin = this.history.pin(atRevision);
    try {
      await this.history.read(kvs);
    } finally {
      pin.release();
    }
  }

  /** Pins `revision` against compaction passes above it (history-values.ts), for a read spread over turns. */
  pinHistory(revision: number): HistoryPin {
    return this.history.pin(revision);
  }

  /** A range with every value filled in (reads at an old revision wait for the backend). */
  async rangeResolved(key: Buffer, end: Buffer | undefined, options?: RangeOptions): Promise<RangeResult> {
    const result = this.read().range(key, end, options);
    if (result.unread > 0) {
      const rev = options?.revision ?? 0;
      await this.readValues(result.kvs, rev > 0 ? rev : this.revision);
      result.unread = 0;
    }
    return result;
  }

  /**
   * Every change to keys in [key, end) (etcd's range forms) with mod_revision >= fromRevision:
   * puts, and deletes as tombstones (create_revision 0), in revision order; changes of one
   * revision come in key order (the apply-time listener sees them in op order). For a watch
   * catching up from history. KeyraftError 'Compacted' below the compacted revision,
   * 'FutureRevision' above current + 1. O(keys in the range + their history). As in etcd, a
   * delete AT the compacted revision may already be gone (compaction drops such tombstones).
   */
  changesSince(key: Buffer, end: Buffer | undefined, fromRevision: number): Promise<KeyValue[]> {
    if (fromRevision > this.revision + 1) throw new KeyraftError('FutureRevision');
    if (fromRevision < this.compacted) throw new KeyraftError('Compacted');
    const out: KeyValue[] = [];
    if (end === undefined || end.length === 0) {
      const keyString = key.toString('latin1');
      const entry = this.index.get(keyString);
      if (entry !== undefined && entryLastModRevision(entry, this.latestSlots) >= fromRevision) this.keyIndexOf(keyString, entry).collectSince(fromRevision, out);
    } else {
      const endKey = end.length === 1 && end[0] === 0 ? null : end.toString('latin1');
      for (const cursor = this.index.seek(key.toString('latin1'), this.cursor); cursor.valid; cursor.next()) {
        if (endKey !== null && cursor.key >= endKey) break;
        // The common case, nothing new on the key, is answered without making a KeyIndex.
        if (entryLastModRevision(cursor.value, this.latestSlots) >= fromRevision) this.keyIndexAt(cursor).collectSince(fromRevision, out);
      }
    }
    // Stable: equal revisions keep key order.
    out.sort((a, b) => a.mod_revision - b.mod_revision);
    return this.readValues(out, fromRevision).then(() => out);
  }

  /**
   * Part of a bounded history read for a watcher catching up: examines at most `maxKeys` keys of
   * [key, end) (etcd's range forms), starting after `resumeAfter` (null: at `key`), and pushes
   * every revision with fromRevision <= mod_revision <= toRevision (puts, and deletes as
   * tombstones) onto `out`, unsorted. Returns where to resume, or null when the range is done.
   * The caller spreads a large range over event-loop turns; it must re-check the compacted
   * revision afterwards (a compaction between turns may have removed revisions it wanted).
   */
  collectChanges(key: Buffer, end: Buffer | undefined, fromRevision: number, toRevision: number, resumeAfter: ScanResume, maxKeys: number, out: KeyValue[]): ScanResume {
    if (end === undefined || end.length === 0) {
      const keyString = key.toString('latin1');
      const entry = this.index.get(keyString);
      if (entry !== undefined && entryLastModRevision(entry, this.latestSlots) >= fromRevision) this.keyIndexOf(keyString, entry).collectBetween(fromRevision, toRevision, out);
      return null;
    }
    const endKey = end.length === 1 && end[0] === 0 ? null : end.toString('latin1');
    const cursor = this.index.seek(resumeAfter === null ? key.toString('latin1') : resumeAfter + '\u0000', this.cursor);
    let examined = 0;
    for (; cursor.valid; cursor.next()) {
      if (endKey !== null && cursor.key >= endKey) return null;
      if (examined === maxKeys) return resumeAfter;
      if (entryLastModRevision(cursor.value, this.latestSlots) >= fromRevision) this.keyIndexAt(cursor).collectBetween(fromRevision, toRevision, out);
      resumeAfter = cursor.key;
      examined++;
    }
    return null;
  }

  /** @internal Keys live at the latest revision in the range, for deleteRange. */
  liveInRange(key: Buffer, end: Buffer | undefined): KeyIndex[] {
    const out: KeyIndex[] = [];
    if (end === undefined || end.length === 0) {
      const keyString = key.toString('latin1');
      const entry = this.index.get(keyString);
      if (entry === undefined) return out;
      const ki = this.keyIndexOf(keyString, entry);
      if (ki.isLive()) out.push(ki);
      return out;
    }
    const endKey = end.length === 1 && end[0] === 0 ? null : end.toString('latin1');
    for (const cursor = this.index.seek(key.toString('latin1'), this.cursor); cursor.valid; cursor.next()) {
      if (endKey !== null && cursor.key >= endKey) break;
      const ki = this.keyIndexAt(cursor);
      if (ki.isLive()) out.push(ki);
    }
    return out;
  }

  // ---- writes ----------------------------------------------------------------------------------

  /** @internal */
  putAt(rev: number, key: Buffer, value: Buffer, lease: bigint, previousOut: (KeyValue | undefined)[]): KeyValue {
    const keyString = key.toString('latin1');
    const entry = this.index.get(keyString);
    const ki = entry === undefined ? undefined : this.keyIndexOf(keyString, entry);
    const prev = ki?.latest();
    previousOut.push(prev);
    if (prev !== undefined && prev.mod_revision >= rev) {
      assert(false, `key written twice in revision ${rev}: the API layer must refuse duplicate keys in a txn`);
    }
    const createRevision = prev === undefined ? rev : prev.create_revision;
    const version = prev === undefined ? 1 : prev.version + 1;
    const record = encodePutRecord(createRevision, version, lease, value, this.arena);
    // The in-memory value is a view of the record: one copy of the bytes, in the store's arena.
    // Frozen: reads hand this object out as it is, so a caller mutating it would corrupt history.
    const kv: KeyValue = Object.freeze({
      // A new key's KeyValue is only the caller's (watchers, the apply): its key a copy of the
      // request's (request buffers are not ours to keep) in Node's pool, not the arena.
      key: ki === undefined ? Buffer.from(key) : ki.key,
      create_revision: createRevision,
      mod_revision: rev,
      version,
      value: record.subarray(RECORD_HEADER_BYTES),
      lease,
    });
    if (ki === undefined) {
      // A new key goes straight into a slot (key-index.ts, slot form) and waits there for its
      // first read: most keys written are not read soon, and a key held as objects costs ~250
      // bytes more of old space.
      this.index.set(keyString, this.latestSlots.addValue(rev, rev, 1, lease, kv.value));
    } else if (ki.put(kv) !== undefined) {
      this.history.retire(prev!);
    }
    this.backend.putPrefixed(prefixedRevisionKey(Bucket.key, rev, kv.key), record);
    return kv;
  }

  /** The KeyIndex of `keyString`, whose index entry is `entry`: made from its slot (and put in its place) for a key in slot form. */
  private keyIndexOf(keyString: string, entry: IndexEntry): KeyIndex {
    if (typeof entry !== 'number') return entry;
    const ki = KeyIndex.fromSlot(keyString, this.latestSlots, entry);
    this.index.set(keyString, ki);
    return ki;
  }

  /** keyIndexOf for the entry under a cursor (replaced in place: the tree's shape stays). */
  private keyIndexAt(cursor: BPlusTreeCursor<IndexEntry>): KeyIndex {
    const entry = cursor.value;
    if (typeof entry !== 'number') return entry;
    const ki = KeyIndex.fromSlot(cursor.key, this.latestSlots, entry);
    cursor.value = ki;
    return ki;
  }

  /** @internal */
  tombstoneAt(rev: number, ki: KeyIndex, previousOut: (KeyValue | undefined)[]): KeyValue {
    previousOut.push(ki.latest());
    const kv: KeyValue = Object.freeze({ key: ki.key, create_revision: 0, mod_revision: rev, version: 0, value: EMPTY, lease: 0n });
    this.history.retire(ki.tombstone(kv));
    this.backend.putPrefixed(prefixedRevisionKey(Bucket.key, rev, ki.key), encodeTombstoneRecord());
    return kv;
  }

  /** @internal */
  endWrite(changes: readonly KeyValue[], previous: readonly (KeyValue | undefined)[], startRevision: number): number {
    assert(this.txnOpen, 'end of a write transaction that is not open');
    this.txnOpen = false;
    if (changes.length === 0) return this.revision;
    this.revision = startRevision + 1;
    if (changes.length > 1) this.recordOpOrder(changes, this.revision);
    this.listener?.(changes, this.revision, previous);
    return this.revision;
  }

  private recordOpOrder(changes: readonly KeyValue[], revision: number): void {
    let sorted = true;
    for (let i = 1; i < changes.length && sorted; i++) sorted = Buffer.compare(changes[i - 1]!.key, changes[i]!.key) < 0;
    if (sorted) return;
    const order = new Map<string, number>();
    for (let i = 0; i < changes.length; i++) order.set(changes[i]!.key.toString('latin1'), i);
    this.opOrders.set(revision, order);
  }

  // ---- recovery --------------------------------------------------------------------------------

  private async recover(scanOptions: PackedScanOptions, useImage: boolean): Promise<void> {
    const meta = await this.backend.get(Bucket.meta, META_KEY);
    if (meta !== undefined) {
      assert(meta.length === META_BYTES, () => `mvcc meta of ${meta.length} bytes, expected ${META_BYTES}`);
      this.applied = readUint64(meta, 0);
      this.revision = readUint64(meta, 8);
      this.compacted = readUint64(meta, 16) - 1;
    }
    let lastRevision = 0;
    const metaRevision = this.revision;
    const index = this.index;
    // Keys whose first record is a put start in slot form (key-index.ts): their index entry is a
    // slot here instead of a KeyIndex; a later record of the key makes its KeyIndex.
    const table = this.latestSlots;
    let tailsSeen: Buffer | null = null;
    let tailsChunk = 0;
    let tailsUse: ChunkUse = { valueBytes: 0, replacedBytes: 0 };
    // Per scan chunk: the value bytes read from it, and how many of them a later record of the
    // same key replaced (relocateRecoveredValues decides from these which chunks to empty).
    const chunks = new Map<ArrayBufferLike, ChunkUse>();
    let valueBytes = 0;
    let replacedBytes = 0;
    const replaced = (kv: KeyValue | undefined): void => {
      if (kv === undefined || kv.value.length === 0) return;
      replacedBytes += kv.value.length;
      chunks.get(kv.value.buffer)!.replacedBytes += kv.value.length;
    };
    const visit: PackedRecordVisitor = (chunk, keyStart, keyEnd, headEnd, tails, tailStart, tailEnd) => {
      // Once per record at start-up, reading the packed chunk in place (backend-scan-protocol.ts):
      // checks without message closures, no Buffer per record but the value's view.
      if (keyEnd - keyStart <= REVISION_BYTES) assert(false, `backend revision key of ${keyEnd - keyStart} bytes is too short`);
      const rev = readUint64(chunk, keyStart);
      if (rev < lastRevision || rev > metaRevision) {
        assert(false, `backend revision ${rev} after ${lastRevision}, meta revision ${metaRevision}: out of order or beyond the meta`);
      }
      lastRevision = rev;
      const userKeyStart = keyStart + REVISION_BYTES;
      const keyString = chunk.toString('latin1', userKeyStart, keyEnd);
      const entry = index.get(keyString);
      // A later record of a key in slot form: the key needs its KeyIndex from now on.
      const ki = entry === undefined ? undefined : this.keyIndexOf(keyString, entry);
      if (headEnd === keyEnd) {
        // A tombstone (an empty record; a shorter head than a put's is a truncated record).
        if (tailEnd !== tailStart) assert(false, `mvcc record at revision ${rev} is truncated`);
        if (ki === undefined) return; // its generation was compacted away; nothing to end
        replaced(ki.latest());
        ki.restore(Object.freeze({ key: ki.key, create_revision: 0, mod_revision: rev, version: 0, value: EMPTY, lease: 0n }));
        return;
      }
      // The value stays where the scan put it, in the chunk's tails (a view, not a copy): most
      // values are the latest of their key and stay; relocateRecoveredValues() copies out the
      // survivors of mostly replaced chunks.
      if (tails !== tailsSeen) {
        tailsSeen = tails;
        tailsChunk = table.addChunk(tails);
        chunks.set(tails.buffer, tailsUse = { valueBytes: 0, replacedBytes: 0 });
      }
      valueBytes += tailEnd - tailStart;
      tailsUse.valueBytes += tailEnd - tailStart;
      if (ki === undefined) {
        if (headEnd - keyEnd !== RECORD_HEADER_BYTES) assert(false, `mvcc record of ${headEnd - keyEnd + tailEnd - tailStart} bytes at revision ${rev} is truncated`);
        const lease = chunk.readUInt32BE(keyEnd + 16) === 0 && chunk.readUInt32BE(keyEnd + 20) === 0 ? 0n : chunk.readBigInt64BE(keyEnd + 16);
        const slot = table.add(rev, readUint64(chunk, keyEnd), readUint64(chunk, keyEnd + 8), lease, tailsChunk, tailStart, tailEnd - tailStart);
        index.set(keyString, slot);
        return;
      }
      replaced(ki.latest());
      ki.restore(readPutRecordAt(ki.key, rev, chunk, keyEnd, headEnd, tails.subarray(tailStart, tailEnd)));
    };
    // The history image first, when it fits (history-image.ts), then LevelDB above its revision.
    const fromImage = useImage ? await this.visitImage(visit, metaRevision) : null;
    const imageRecords = fromImage?.records ?? 0;
    const records = imageRecords + await this.backend.scanPacked(Bucket.key, visit, {
      ...scanOptions, headBytes: RECORD_HEADER_BYTES, gte: fromImage === null ? undefined : HistoryImage.endKey(fromImage.revision).subarray(1),
    });
    this.image.recovered(imageRecords, fromImage?.revision ?? 0, this.compacted, records - imageRecords);
    const relocatedBytes = replacedBytes > 0 ? this.relocateRecoveredValues(chunks, table) : 0;
    table.seal();
    // Everything recovered was read from the backend: readable there.
    this.history.markWritten(this.revision);
    if (this.compacted >= 0) this.compactor.schedule(this.compacted);
    this.recovered = { records, imageRecords, valueBytes, replacedBytes, relocatedBytes };
    this.logger.info({
      keys: this.index.size, revision: this.revision, compacted: this.compacted, appliedIndex: this.applied, ...this.recovered,
      scanWorkers: this.backend.lastScanParts,
    }, 'mvcc store recovered');
  }

  /**
   * Visits the history image's records when it fits this backend; its revision and record count,
   * or null when there is no image or it does not fit. Any failure while visiting (a damaged
   * chunk, a record the visitor refuses) is a BucketImageError: the caller rebuilds without it.
   */
  private async visitImage(visit: PackedRecordVisitor, metaRevision: number): Promise<{ revision: number; records: number } | null> {
    const image = await this.backend.openImage().catch((err: Error) => {
      throw err instanceof BucketImageError ? err : new BucketImageError(this.backend.imagePath, err.message);
    });
    if (image === null) return null;
    try {
      const misfit = HistoryImage.misfit(image.header, metaRevision, this.compacted);
      if (misfit !== null) {
        this.logger.info({ path: image.path, why: misfit }, 'the mvcc history image does not fit the backend; not used');
        return null;
      }
      let records = 0;
      try {
        for await (const chunk of image.chunks()) records += visitPacked(chunk, visit);
      } catch (err) {
        throw err instanceof BucketImageError ? err : new BucketImageError(image.path, (err as Error).message);
      }
      return { revision: HistoryImage.revisionOf(image.header), records };
    } finally {
      await image.close();
    }
  }

  /**
   * Copies the latest values that sit in mostly replaced scan chunks into the store's arena, so
   * those chunks (and the replaced values in them) can be freed: a chunk stays in memory while any
   * value viewing it does. A chunk whose values are mostly still latest stays as it is (copying
   * them would cost start-up time and save little). Returns the bytes copied.
   */
  private relocateRecoveredValues(chunks: ReadonlyMap<ArrayBufferLike, ChunkUse>, table: LatestSlots): number {
    const sparse = new Set<ArrayBufferLike>();
    for (const [buffer, use] of chunks) if (use.replacedBytes > use.valueBytes * Limits.recoveryReplacedShareMax) sparse.add(buffer);
    if (sparse.size === 0) return 0; // a few replaced values: not worth a walk over every key
    // Keys in slot form are moved in the table; the walk below skips them.
    let copied = table.relocate((buffer) => sparse.has(buffer));
    for (const cursor = this.index.first(this.cursor); cursor.valid; cursor.next()) {
      const ki = cursor.value;
      if (typeof ki === 'number') continue;
      const latest = ki.latest();
      if (latest === undefined || latest.value.length === 0) continue;
      if (!sparse.has(latest.value.buffer)) continue;
      copied += latest.value.length;
      ki.replaceLatest(Object.freeze({
        key: latest.key, create_revision: latest.create_revision, mod_revision: latest.mod_revision,
        version: latest.version, value: this.arena.copy(latest.value), lease: latest.lease,
      }));
    }
    return copied;
  }
}

/** What start-up read from one scan chunk (kv-store.ts recover). */
interface ChunkUse {
  valueBytes: number;
  replacedBytes: number;
}

class StoreReadView implements ReadView {
  private readonly store: KvStore;

  constructor(store: KvStore) {
    this.store = store;
  }

  get compactedRevision(): number {
    return this.store.compactedRevision;
  }

  get revision(): number {
    return this.store.currentRevision;
  }

  range(key: Buffer, end: Buffer | undefined, options?: RangeOptions): RangeResult {
    return this.store.rangeAt(key, end, options, this.store.currentRevision);
  }
}

/** The store's one reusable write transaction (writes are serialized by the apply loop). */
class StoreTxnWrite implements TxnWrite {
  private readonly store: KvStore;
  startRevision = 0;
  changes: KeyValue[] = [];
  /** Each change's key before this transaction, at the same index (for the change listener). */
  previous: (KeyValue | undefined)[] = [];

  constructor(store: KvStore) {
    this.store = store;
  }

  begin(startRevision: number): void {
    this.startRevision = startRevision;
    // A fresh array: the change listener may keep the previous one.
    this.changes = [];
    this.previous = [];
  }

  get compactedRevision(): number {
    return this.store.compactedRevision;
  }

  /** Reads see this transaction's writes: after the first change, the revision is start + 1. */
  get revision(): number {
    return this.changes.length > 0 ? this.startRevision + 1 : this.startRevision;
  }

  range(key: Buffer, end: Buffer | undefined, options?: RangeOptions): RangeResult {
    return this.store.rangeAt(key, end, options, this.revision);
  }

  put(key: Buffer, value: Buffer, lease: bigint): number {
    const rev = this.startRevision + 1;
    this.changes.push(this.store.putAt(rev, key, value, lease, this.previous));
    return rev;
  }

  deleteRange(key: Buffer, end: Buffer | undefined): number {
    const live = this.store.liveInRange(key, end);
    const rev = this.startRevision + 1;
    for (const ki of live) this.changes.push(this.store.tombstoneAt(rev, ki, this.previous));
    return live.length;
  }

  end(): number {
    return this.store.endWrite(this.changes, this.previous, this.startRevision);
  }
}
