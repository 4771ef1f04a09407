import { assert } from '../platform/assert.js';
import { Limits } from '../platform/limits.js';
import type { KeyValue } from '../proto/etcd-types.js';
import { Bucket, type Backend } from '../storage/backend.js';
import { isUnread } from './key-index.js';
import { readPutRecord } from './kv-record.js';
import { revisionKey } from './revision.js';

/**
 * The values of history: revisions that are no longer their key's latest. Memory grows with live
 * data, not with history (DESIGN.md, Storage): such a value lives in the backend only, and this
 * module reads it back, asynchronously and in bounded batches, for the reads that ask for it
 * (a Range at an old revision, a watcher catching up, a historical event's prev_kv).
 *
 * Where an old value is, from the moment its key gets a newer revision (retire()):
 *
 *   1. `unwritten`: its record is staged or committed but the backend batch holding it is not
 *      written yet, so LevelDB cannot answer for it. The value stays here, in memory, until that
 *      batch is written (written()), then it is dropped. This closes the window between apply and
 *      the backend write: a readable revision is never lost.
 *   2. the backend only: read with getMany (LevelDB's thread pool; the event loop never waits on
 *      the disk), Limits.historyReadBatchRecords records per call.
 *   3. `cache`: the values read back recently, least recently used first out, bounded by
 *      `cacheBytesMax` (--history-cache-bytes): watchers catching up and --rev reads tend to ask
 *      for the same recent history again.
 *
 * Which batch holds which revision: KvStore.commit() tells committed(sequence, revision) after
 * each backend commit; the backend numbers commits and tells written(sequence) when a batch is
 * on LevelDB; every revision up to that commit's revision is then readable.
 *
 * Compaction races: a read that resolved index entries holds a pin at its read revision from
 * that moment (synchronously, in the same turn) until its values are in. The compactor does not
 * run a pass at a revision above any pinned revision (a pass at p deletes only records no read at
 * or after p can see), so a read that got past the store's synchronous "compacted?" check always
 * finds its records; a read that comes after compact() fails there, cleanly, with 'Compacted'.
 *
 * Example: put k=a @5, put k=b @6 in one applied batch: retire(k@5) while the batch is only
 * staged puts a@5 in `unwritten`; commit() -> committed(seq 7, rev 6); the write finishes ->
 * written(7) -> every revision <= 6 is on disk, a@5 leaves memory. A Range at revision 5 now
 * gets k@5 from the index without a value, and read() fetches record (5, k) from LevelDB.
 */

/** Bytes a cached KeyValue costs besides its value and key (object, map entry, cache key). */
const CACHE_ENTRY_OVERHEAD_BYTES = 160;

export interface HistoryPin {
  /** Ends the pin (idempotent). */
  release(): void;
}

export class HistoryValues {
  private readonly backend: Backend;
  private readonly cacheBytesMax: number;
  /** Retired values whose records are not yet readable from the backend, by mod revision. */
  private readonly unwritten = new Map<number, KeyValue[]>();
  /** Mod revisions in `unwritten`, in the order they were retired (drop order). */
  private dropQueue: number[] = [];
  private dropHead = 0;
  /** Commits not yet written: sequence, revision pairs, in order. */
  private marks: number[] = [];
  private marksHead = 0;
  /** Invariant: every revision <= writtenRevision has its record readable from the backend. */
  private writtenRevision = 0;
  /** Recently read old values, least recently used first: "rev:key" -> KeyValue. */
  private readonly cache = new Map<string, KeyValue>();
  private cacheBytes = 0;
  /** Read revisions of reads in flight, by pin id. */
  private readonly pins = new Map<number, number>();
  private nextPinId = 1;
  private releaseWaiters: Array<() => void> = [];
  /** Counters for tests and metrics. */
  backendReads = 0;
  cacheHits = 0;

  constructor(backend: Backend, cacheBytesMax: number) {
    assert(Number.isSafeInteger(cacheBytesMax) && cacheBytesMax >= 0, () => `history cache of ${cacheBytesMax} bytes`);
    this.backend = backend;
    this.cacheBytesMax = cacheBytesMax;
  }

  /** Start-up: everything up to `revision` came from the backend, so it is readable there. */
  markWritten(revision: number): void {
    this.writtenRevision = Math.max(this.writtenRevision, revision);
  }

  /** Bytes the cache holds now (values, keys and overhead). */
  get cachedBytes(): number {
    return this.cacheBytes;
  }

  /** Number of retired values still held in memory until their batch is written. */
  get unwrittenCount(): number {
    return this.dropQueue.length - this.dropHead;
  }

  /** `kv` stopped being its key's latest: keep its value only until its record is readable. */
  retire(kv: KeyValue): void {
    const rev = kv.mod_revision;
    if (rev <= this.writtenRevision) return;
    const at = this.unwritten.get(rev);
    if (at === undefined) this.unwritten.set(rev, [kv]);
    else at.push(kv);
    this.dropQueue.push(rev);
  }

  /** The backend commit numbered `sequence` holds every record up to `revision`. */
  committed(sequence: number, revision: number): void {
    if (revision <= this.writtenRevision) return;
    this.marks.push(sequence, revision);
  }

  /** Every backend commit numbered up to `sequence` is written: drop the values it covers. */
  written(sequence: number): void {
    const marks = this.marks;
    let h = this.marksHead;
    while (h < marks.length && marks[h]! <= sequence) {
      this.writtenRevision = Math.max(this.writtenRevision, marks[h + 1]!);
      h += 2;
    }
    if (h === marks.length) {
      this.marks = [];
      this.marksHead = 0;
    } else {
      this.marksHead = h;
    }
    const queue = this.dropQueue;
    let d = this.dropHead;
    while (d < queue.length && queue[d]! <= this.writtenRevision) this.unwritten.delete(queue[d++]!);
    if (d === queue.length) {
      this.dropQueue = [];
      this.dropHead = 0;
    } else {
      this.dropHead = d;
      if (d > 4096 && d * 2 > queue.length) {
        this.dropQueue = queue.slice(d);
        this.dropHead = 0;
      }
    }
  }

  /** The value-carrying KeyValue for `kv` (an unread one) if memory has it, else undefined. */
  lookup(kv: KeyValue): KeyValue | undefined {
    const pending = this.unwritten.get(kv.mod_revision);
    if (pending !== undefined) {
      for (const p of pending) if (p.key.equals(kv.key)) return p;
    }
    if (this.cache.size === 0) return undefined;
    const cacheKey = cacheKeyOf(kv);
    const hit = this.cache.get(cacheKey);
    if (hit === undefined) return undefined;
    // Most recently used: to the end of the map's order.
    this.cache.delete(cacheKey);
    this.cache.set(cacheKey, hit);
    this.cacheHits++;
    return hit;
  }

  /**
   * Pins `revision` against compaction passes above it until release(). Taken in the same turn as
   * the index entries it protects were resolved.
   */
  pin(revision: number): HistoryPin {
    const id = this.nextPinId++;
    this.pins.set(id, revision);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.pins.delete(id);
        const waiters = this.releaseWaiters;
        this.releaseWaiters = [];
        for (const w of waiters) w();
      },
    };
  }

  /** True when some read in flight is pinned below `revision` (a pass at it must wait). */
  pinnedBelow(revision: number): boolean {
    for (const rev of this.pins.values()) if (rev < revision) return true;
    return false;
  }

  /** Calls `wake` once, at the next release of any pin. */
  onRelease(wake: () => void): void {
    this.releaseWaiters.push(wake);
  }

  /**
   * Replaces every unread KeyValue in `kvs` (isUnread) by one with its value, from memory or the
   * backend, in batches of Limits.historyReadBatchRecords. The caller holds a pin covering them.
   */
  async read(kvs: KeyValue[]): Promise<void> {
    let missing: number[] | null = null;
    for (let i = 0; i < kvs.length; i++) {
      const kv = kvs[i]!;
      if (!isUnread(kv)) continue;
      const hit = this.lookup(kv);
      if (hit !== undefined) kvs[i] = hit;
      else (missing ??= []).push(i);
    }
    if (missing === null) return;
    const batchMax = Limits.historyReadBatchRecords;
    for (let at = 0; at < missing.length; at += batchMax) {
      const slots = missing.slice(at, at + batchMax);
      const keys = slots.map((i) => revisionKey(kvs[i]!.mod_revision, kvs[i]!.key));
      const records = await this.backend.getMany(Bucket.key, keys);
      this.backendReads += slots.length;
      for (let j = 0; j < slots.length; j++) {
        const i = slots[j]!;
        const stub = kvs[i]!;
        // Read again: a value retired after the index look-up may be in memory (and, while its
        // batch was unwritten, not in LevelDB).
        const now = this.lookup(stub);
        if (now !== undefined) {
          kvs[i] = now;
          continue;
        }
        const record = records[j];
        // The pin keeps compaction away and `unwritten` covers the unwritten batches: a missing
        // record is a bug or a damaged backend, never a race.
        assert(record !== undefined, () => `history record of revision ${stub.mod_revision} is missing from the backend`);
        const fields = readPutRecord(record);
        if (fields.createRevision !== stub.create_revision || fields.version !== stub.version || fields.lease !== stub.lease) {
          assert(false, `history record of revision ${stub.mod_revision} disagrees with the index: create ${fields.createRevision}/${stub.create_revision}, version ${fields.version}/${stub.version}`);
        }
        const kv: KeyValue = Object.freeze({ ...stub, value: fields.value });
        this.remember(kv);
        kvs[i] = kv;
      }
    }
  }

  private remember(kv: KeyValue): void {
    const bytes = kv.value.length + kv.key.length + CACHE_ENTRY_OVERHEAD_BYTES;
    if (bytes > this.cacheBytesMax) return;
    const cacheKey = cacheKeyOf(kv);
    if (this.cache.has(cacheKey)) return;
    this.cache.set(cacheKey, kv);
    this.cacheBytes += bytes;
    // Evict least recently used first (the map's insertion order).
    for (const [k, old] of this.cache) {
      if (this.cacheBytes <= this.cacheBytesMax) break;
      this.cache.delete(k);
      this.cacheBytes -= old.value.length + old.key.length + CACHE_ENTRY_OVERHEAD_BYTES;
    }
  }
}

function cacheKeyOf(kv: KeyValue): string {
  return `${kv.mod_revision}:${kv.key.toString('latin1')}`;
}
