import { assert } from '../platform/assert.js';
import type { Logger } from '../platform/logger.js';
import { Bucket, type Backend } from '../storage/backend.js';
import type { BPlusTree } from './b-plus-tree.js';
import type { HistoryValues } from './history-values.js';
import type { IndexEntry } from './key-index.js';
import { revisionKey } from './revision.js';

/**
 * Background compaction: reclaims the history a compaction made unreadable, from memory and from
 * the backend, a chunk of keys per event-loop turn so the main thread never stalls on it.
 *
 * Why it may lag: the store refuses reads below the compacted revision the moment compact() is
 * applied, and a compaction at revision r only removes revisions that no read at or after r can
 * see (key-index.ts). Writes that land meanwhile are newer than r and are never touched, so
 * running a pass later, over a newer state, removes exactly what it would have removed at once.
 *
 * Ordering: a pass starts only after the commit that carries the new compacted revision in its
 * meta (kv-store.ts calls schedule() from commit()), and the backend writes batches in order, so
 * the deletes never reach disk before the meta that makes the deleted revisions unreadable. A
 * crash mid-pass leaves some stale records; recovery schedules the pass again.
 *
 * Reads in flight: a read at an old revision that resolved its index entries before compact()
 * fetches their values from the backend afterwards; it pins its revision (history-values.ts), and
 * a pass at a revision above a pinned one waits for the pin's release before deleting anything,
 * so such a read never finds its record gone. Reads pin for one batch of backend reads, so the
 * wait is short.
 */

/** Keys examined per event-loop turn. */
const COMPACTION_CHUNK_KEYS = 10_000;

export class Compactor {
  private readonly index: BPlusTree<IndexEntry>;
  private readonly backend: Backend;
  private readonly logger: Logger;
  /** Highest revision asked for; passes run until `passRevision` catches up with it. */
  private targetRevision = -1;
  /** Revision of the pass in progress, -1 when idle. */
  private passRevision = -1;
  /** Resume point: keys <= this were done in the current pass (null: start of the index). */
  private resumeAfter: string | null = null;
  private idleWaiters: Array<() => void> = [];
  private readonly removed: number[] = [];
  private readonly history: HistoryValues;
  /** Revisions removed so far (puts and tombstones), for tests and metrics. */
  removedRevisions = 0;
  /** Keys dropped from the index so far. */
  removedKeys = 0;
  /** Told when a pass finishes: its revision and how long it ran, start to end (metrics, logs). */
  passObserver: ((revision: number, ms: number) => void) | null = null;
  private passStarted = 0;

  constructor(index: BPlusTree<IndexEntry>, backend: Backend, history: HistoryValues, logger: Logger) {
    this.index = index;
    this.backend = backend;
    this.history = history;
    this.logger = logger;
  }

  get running(): boolean {
    return this.passRevision >= 0;
  }

  /** Asks for a pass at `revision` (passes at lower revisions become redundant). */
  schedule(revision: number): void {
    if (revision <= this.targetRevision) return;
    this.targetRevision = revision;
    if (!this.running) this.startPass();
  }

  /** Resolves when no pass is running or pending. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Runs pending passes to completion synchronously (start-up and tests). */
  runToCompletion(): void {
    while (this.running) {
      assert(!this.history.pinnedBelow(this.passRevision), 'compaction run to completion while a read is pinned below it');
      this.step(Number.POSITIVE_INFINITY);
    }
  }

  private startPass(): void {
    this.passRevision = this.targetRevision;
    this.resumeAfter = null;
    this.passStarted = performance.now();
    setImmediate(this.onTurn);
  }

  private readonly onTurn = (): void => {
    if (!this.running) return;
    if (this.history.pinnedBelow(this.passRevision)) {
      // A read in flight still needs records this pass would delete: go on after its release.
      this.history.onRelease(() => setImmediate(this.onTurn));
      return;
    }
    try {
      this.step(COMPACTION_CHUNK_KEYS);
    } catch (err) {
      // A failed backend write surfaces here and on the next commit or flush.
      this.logger.error({ err, revision: this.passRevision }, 'compaction pass failed');
      this.passRevision = -1;
      this.wakeIdle();
      return;
    }
    if (this.running) setImmediate(this.onTurn);
  };

  /** Compacts up to `chunkKeys` keys of the current pass. */
  private step(chunkKeys: number): void {
    const rev = this.passRevision;
    assert(rev >= 0, 'compaction step without a pass');
    const cursor = this.resumeAfter === null ? this.index.first() : this.index.seek(this.resumeAfter + '\u0000');
    const emptied: string[] = [];
    const removed = this.removed;
    const keys: Buffer[] = [];
    let examined = 0;
    let lastKey: string | null = null;
    for (; cursor.valid && examined < chunkKeys; cursor.next()) {
      const ki = cursor.value;
      lastKey = cursor.key;
      examined++;
      // A key in slot form (key-index.ts) has one revision, the latest: nothing to compact.
      if (typeof ki === 'number') continue;
      ki.compact(rev, removed);
      for (const removedRev of removed) keys.push(revisionKey(removedRev, ki.key));
      removed.length = 0;
      if (ki.isEmpty()) emptied.push(cursor.key);
    }
    const finished = !cursor.valid;
    for (const key of emptied) this.index.delete(key);
    if (keys.length > 0) {
      this.backend.commitDeletes(Bucket.key, keys);
      this.removedRevisions += keys.length;
    }
    this.removedKeys += emptied.length;
    if (lastKey !== null) this.resumeAfter = lastKey;
    if (!finished) return;
    this.logger.debug({ revision: rev, removedRevisions: this.removedRevisions }, 'compaction pass done');
    this.passObserver?.(rev, performance.now() - this.passStarted);
    this.passStarted = performance.now();
    if (this.targetRevision > rev) {
      this.passRevision = this.targetRevision;
      this.resumeAfter = null;
      return;
    }
    this.passRevision = -1;
    this.wakeIdle();
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
