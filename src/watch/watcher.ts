/**
 * What the hub reaches through a watcher's stream (watch-stream.ts's WatchStream is the one
 * implementation; declared here so that a watcher does not import its stream's file).
 */
export interface WatcherStream {
  /** Over its high-water mark: events wait in history until it drains. */
  readonly blocked: boolean;
  /** Watchers of this stream behind the store (the hub counts them). */
  unsyncedCount: number;
  sendEvents(w: Watcher, revision: number, events: readonly Uint8Array[]): void;
  /** The live path: every watcher in `matched` has its events of `revision` in `liveEvents` (watch-hub.ts notify). */
  sendRevision(revision: number, headerField: Buffer): void;
  /** Scratch of the hub's notify: this stream's watchers matched at the revision being notified, in match order. */
  readonly matched: Watcher[];
  compacted(w: Watcher, compactRevision: number): void;
  maybeSendDeferredProgress(): void;
}

/**
 * One watcher (etcd's mvcc watcher): a key or range on one stream, and where it stands.
 *
 * State, as etcd's watchableStore groups:
 *   - synced: it has every event up to the store's current revision; new revisions reach it
 *     from the apply loop (watch-hub.ts notify).
 *   - unsynced: it is behind (start_revision in the past, or its stream was over its high-water
 *     mark when an event came: etcd's victims and unsynced in one); the hub catches it up from
 *     history, in bounded batches, once its stream can take more.
 * Nothing is buffered per watcher: a watcher that cannot send is only a revision number
 * (`minRev`), so a client that never reads costs the server the watcher, not the backlog.
 *
 * Invariant: every event with mod_revision < minRev in the watcher's range was handed to its
 * stream (or filtered out), each exactly once, in revision order; none with mod_revision >= minRev was.
 */
export class Watcher {
  /** The key as a latin1 string (index order = etcd's byte order). */
  readonly keyString: string;
  /** null: a single key; '' never (normalized to null = unbounded); otherwise the exclusive end. */
  readonly endString: string | null;
  readonly isRange: boolean;
  /** The next revision this watcher has not yet been given. */
  minRev: number;
  state: 'synced' | 'unsynced' | 'canceled' = 'unsynced';
  /** A history read for it is running (at most one at a time). */
  reading = false;
  /** No event sent since the last progress tick (etcd's sws.progress[id]): the next tick notifies. */
  progressDue = true;
  /** Scratch of the hub's notify (reused, so matching allocates nothing per event): the revision it last matched at, */
  matchedRevision = 0;
  /** the indexes of that revision's changes in its range, in op order, */
  readonly matchedChanges: number[] = [];
  /** and their encoded events after the filters. */
  readonly liveEvents: Uint8Array[] = [];

  constructor(
    readonly id: number,
    readonly stream: WatcherStream,
    readonly key: Buffer,
    /** undefined: single key; empty: every key >= key; otherwise [key, end). */
    readonly end: Buffer | undefined,
    startRevision: number,
    readonly noPut: boolean,
    readonly noDelete: boolean,
    readonly prevKv: boolean,
    readonly progressNotify: boolean,
    readonly fragment: boolean,
  ) {
    this.keyString = key.toString('latin1');
    this.isRange = end !== undefined;
    this.endString = end === undefined || end.length === 0 ? null : end.toString('latin1');
    this.minRev = startRevision;
  }

  /** Whether the watcher's range holds `key` (latin1). */
  holds(key: string): boolean {
    if (!this.isRange) return key === this.keyString;
    return key >= this.keyString && (this.endString === null || key < this.endString);
  }
}
