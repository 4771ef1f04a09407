import type { KeyValue } from '../proto/etcd-types.js';

/**
 * The MVCC store's interfaces (etcd's mvcc/kv.go). kv-store.ts implements them.
 *
 * Everything here is synchronous: the store lives on the main thread and holds in memory what
 * reads need to find every revision, so a read or a write transaction never waits for the disk.
 * Values of old revisions are the exception: they live in the backend only (kv-store.ts), so a
 * range at an old revision may return KeyValues whose value is not read yet (RangeResult.unread,
 * key-index.ts isUnread); KvStore.readValues fills them in asynchronously. Durability is the
 * backend's business (commit/flush).
 *
 * KeyValues handed out are shared with the store's index (reads copy nothing). They are frozen:
 * a caller that needs a changed copy (keys_only, an encoder) builds a new object.
 *
 * Ranges use etcd's forms: `end` undefined or empty = the single key `key`; `end` = "\0" = every
 * key >= `key`; otherwise [key, end). (key "\0" with end "\0" is therefore every key.)
 */

export interface RangeOptions {
  /** At most this many kvs are returned; 0 = no limit. `count` is always the full count. */
  limit?: number;
  /** Read at this revision; 0 = current. */
  revision?: number;
  /** Return only the count, no kvs. */
  countOnly?: boolean;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** Number of keys in the range at the revision, before the limit. */
  count: number;
  /** The store's revision the read was served at (etcd's header revision: current, not `revision`). */
  revision: number;
  /**
   * How many of `kvs` are unread: every field exact but the value, which is in the backend only
   * (an old revision's). 0 for every read at the current revision. The caller must fill them in
   * (KvStore.readValues) before they leave the server.
   */
  unread: number;
}

export interface ReadView {
  /** The oldest readable revision: the compacted revision (-1 before any compaction, as etcd). */
  readonly compactedRevision: number;
  /** The revision a read sees. */
  readonly revision: number;
  /** Throws KeyraftError 'FutureRevision' / 'Compacted' for a revision out of the readable window. */
  range(key: Buffer, end: Buffer | undefined, options?: RangeOptions): RangeResult;
}

/**
 * One mutating request. Writes take revision `startRevision + 1` (sub revisions are the order of
 * `changes`); reads inside the transaction see its earlier writes. end() makes the revision
 * current if anything changed.
 */
export interface TxnWrite extends ReadView {
  /** Revision at begin. */
  readonly startRevision: number;
  /** Puts key; returns the revision of the write (startRevision + 1). */
  put(key: Buffer, value: Buffer, lease: bigint): number;
  /** Deletes keys in the range; returns how many were deleted. */
  deleteRange(key: Buffer, end: Buffer | undefined): number;
  /** The changes so far, in order: puts are live kvs, deletes are tombstones (create_revision 0). */
  readonly changes: readonly KeyValue[];
  /** Ends the transaction; returns the store's revision after it. */
  end(): number;
}

/**
 * Called after each transaction that changed something, with its changes in order and, at the
 * same index, each changed key's value just before the transaction (undefined if it did not
 * exist): the watch hub's prev_kv, known at write time for free (a key appears at most once per
 * revision: the API refuses duplicate and overlapping keys in a txn).
 */
export type ChangeListener = (changes: readonly KeyValue[], revision: number, previous: readonly (KeyValue | undefined)[]) => void;

/**
 * Where a bounded history scan stopped: the last key examined (resume after it), or null when
 * the range is done. See KvStore.collectChanges.
 */
export type ScanResume = string | null;

export interface KV {
  readonly currentRevision: number;
  readonly compactedRevision: number;
  /** Applied index of the state the backend holds, as last committed (0 for a new store). */
  readonly appliedIndex: number;
  read(): ReadView;
  write(): TxnWrite;
  /**
   * Compacts history below `revision` (KeyraftError 'Compacted' at or below the compacted
   * revision, 'FutureRevision' above current). Reads below it fail at once; memory and backend
   * records are reclaimed in the background after the next commit.
   */
  compact(revision: number): void;
  /** Writes everything since the last commit, with meta {appliedIndex, revision, compacted}, as one batch. */
  commit(appliedIndex: number): void;
  /** Resolves once all committed writes (and any running compaction) are durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
