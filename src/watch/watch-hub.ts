import { assert } from '../platform/assert.js';
import { isKeyraftError } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import type { Logger } from '../platform/logger.js';
import type { KeyValue, ResponseHeader } from '../proto/etcd-types.js';
import type { HeaderSource, HistoryEvent, WatchHistory, WatchSink } from './watch.js';
import type { WatchMetrics } from './watch-metrics.js';
import { EncodedEventCache } from './encoded-event-cache.js';
import { encodeEvent, encodeHeaderField } from './watch-response-encoder.js';
import { WatcherGroup } from './watcher-group.js';
import { WatchStream, type WatchStreamHost } from './watch-stream.js';
import type { Watcher, WatcherStream } from './watcher.js';

/**
 * The watch hub (etcd's watchableStore): every watcher of every stream of this member, and the
 * two paths events take to them.
 *
 *   - Live (notify): the apply loop hands each transaction's changes here, synchronously, right
 *     after the store made them current (kv-store.ts onChanges; on every member, followers
 *     included, since every member applies). Synced watchers are matched per event (WatcherGroup:
 *     a map for keys, a range index for ranges), gathered per stream; each event is encoded once
 *     per revision (without and with prev_kv, on first need), the response header once per
 *     revision; a watcher gets one response per revision holding all its events of that revision,
 *     in op order, and the responses of one stream's watchers go out as one framed buffer (one
 *     allocation, one write per stream and revision: watch-stream.ts sendRevision). The responses
 *     leave in the same turn as the revision is applied: nothing waits for a later batch.
 *     Measured (README, watch fan-out): this cut the member's CPU per delivered event by about
 *     a third against encoding each response alone (the header's 64-bit ids were re-encoded per
 *     response, each response copied twice more on its way to the socket).
 *   - Catch-up (sync): watchers behind the current revision (start_revision in the past, or
 *     their stream was over its high-water mark when an event came) read from history, one
 *     bounded batch at a time (Limits.watchCatchUp*), asynchronously, a bounded number of
 *     reads started per event-loop turn, and only while their stream can take more. A watcher
 *     whose next revision compaction passed is canceled with compact_revision (etcd's
 *     chooseAll); the client re-lists.
 *
 * Why there is no gap: a watcher leaves `unsynced` for `synced` only in the same synchronous
 * step that finds its minRev past the store's current revision, and notify runs synchronously
 * with the store making a revision current; so every revision is either read from history by an
 * unsynced watcher or notified to a synced one, never neither and never both.
 *
 * Memory: nothing is queued per watcher. A stream over its high-water mark gets no more events;
 * its watchers are only a revision number until it drains.
 */
export interface WatchHubOptions {
  history: WatchHistory;
  header: HeaderSource;
  logger: Logger;
  metrics?: WatchMetrics;
  /** etcd's --experimental-watch-progress-notify-interval (0: off). */
  progressNotifyIntervalMs: number;
}

export class WatchHub implements WatchStreamHost {
  private history: WatchHistory;
  private readonly headerSource: HeaderSource;
  private readonly logger: Logger;
  private readonly metrics: WatchMetrics | undefined;
  private readonly synced = new WatcherGroup();
  private readonly unsynced = new Set<Watcher>();
  private readonly streams = new Set<WatchStream>();
  private watcherCount = 0;
  private syncScheduled = false;
  private readonly progressTimer: NodeJS.Timeout | null;
  private closed = false;
  /** The newest revision notify saw: synced watchers have everything up to it. */
  private lastNotified = 0;
  // notify's scratch, reused from one revision to the next.
  private matchRevision = 0;
  private matchChange = 0;
  private readonly touchedStreams: WatcherStream[] = [];
  private notifying = false;
  private readonly plainEvents: (Uint8Array | undefined)[] = [];
  private readonly prevEvents: (Uint8Array | undefined)[] = [];
  /** Catch-up's encoded events, shared by watchers reading the same history (bounded). */
  private readonly catchUpEvents = new EncodedEventCache(Limits.watchEncodedEventCacheEntriesMax, Limits.watchEncodedEventCacheBytesMax);
  private cachedHeader: { revision: number; term: number; clusterId: bigint; memberId: bigint; field: Buffer } | undefined;

  constructor(options: WatchHubOptions) {
    this.history = options.history;
    this.headerSource = options.header;
    this.logger = options.logger.child({ component: 'watch' });
    this.metrics = options.metrics;
    this.metrics?.bind({
      watchers: () => this.watcherCount,
      streams: () => this.streams.size,
      slowWatchers: () => this.unsynced.size,
      pendingEvents: () => {
        let n = 0;
        for (const s of this.streams) n += s.pendingEvents;
        return n;
      },
    });
    this.progressTimer = options.progressNotifyIntervalMs > 0 ? setInterval(() => this.progressTick(), options.progressNotifyIntervalMs) : null;
    this.progressTimer?.unref();
  }

  get currentRevision(): number {
    return this.history.currentRevision;
  }

  get watchers(): number {
    return this.watcherCount;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  get slowWatchers(): number {
    return this.unsynced.size;
  }

  /** A response header at `revision` (the term read now). */
  header(revision: number): ResponseHeader {
    const h = this.headerSource;
    return { cluster_id: h.clusterId, member_id: h.memberId, revision, raft_term: h.raftTerm() };
  }

  /** A new client stream writing to `sink`; fragments split at `fragmentBytes` (--max-request-bytes). */
  newStream(sink: WatchSink, fragmentBytes: number): WatchStream {
    assert(!this.closed, 'watch stream on a closed hub');
    const stream = new WatchStream(this, sink, fragmentBytes);
    this.streams.add(stream);
    return stream;
  }

  /**
   * The store was replaced under the hub (a state image installed): every watcher is behind the
   * new store's history as far as the hub knows, so all go through catch-up (etcd's Restore).
   */
  restore(history: WatchHistory): void {
    this.history = history;
    // Synced watchers had every revision up to the last one notified.
    for (const stream of this.streams) for (const w of stream.watchers.values()) {
      if (w.state === 'synced') this.toUnsynced(w, this.lastNotified + 1);
    }
    this.scheduleSync();
  }

  /** Stops the progress timer and ends every stream, with `error` when given (member shutdown or failure). */
  close(error?: unknown): void {
    this.closed = true;
    if (this.progressTimer !== null) clearInterval(this.progressTimer);
    for (const stream of [...this.streams]) stream.end(error);
  }

  // ---- called by streams -------------------------------------------------------------------------

  /** @internal A new watcher: synced if it starts after the current revision, else it catches up. */
  add(w: Watcher): void {
    this.watcherCount++;
    if (w.minRev > this.history.currentRevision) {
      w.state = 'synced';
      this.synced.add(w);
      return;
    }
    w.state = 'unsynced';
    this.unsynced.add(w);
    w.stream.unsyncedCount++;
    this.scheduleSync();
  }

  /** @internal A watcher canceled by its client or its stream's end. */
  remove(w: Watcher): void {
    if (w.state === 'canceled') return;
    if (w.state === 'synced') this.synced.delete(w);
    else this.leaveUnsynced(w);
    w.state = 'canceled';
    this.watcherCount--;
  }

  /** @internal */
  streamClosed(stream: WatchStream): void {
    this.streams.delete(stream);
  }

  /** @internal A stream's sink drained: its watchers may catch up again. */
  streamDrained(stream: WatchStream): void {
    if (stream.unsyncedCount > 0) this.scheduleSync();
    stream.maybeSendDeferredProgress();
  }

  /** @internal Counts events handed to a sink (etcd_debugging_mvcc_events_total). */
  eventsSent(events: number): void {
    if (events > 0) this.metrics?.events.inc(events);
  }

  // ---- live path ---------------------------------------------------------------------------------

  /**
   * One transaction's changes at `revision`, in op order, with each key's previous value (the
   * store's change listener). Synchronous, on the apply path: matching and encoding only.
   */
  notify(changes: readonly KeyValue[], revision: number, previous: readonly (KeyValue | undefined)[]): void {
    this.lastNotified = revision;
    if (this.synced.size === 0) return;
    // The scratch below is shared: a sink that applied a revision from inside a send would corrupt it.
    assert(!this.notifying, () => `watch notify of revision ${revision} re-entered`);
    this.notifying = true;
    const touched = this.touchedStreams;
    try {
      // Match: each change against the index (a map lookup plus the ranges holding its key),
      // gathering per stream the watchers it reaches; nothing is allocated per match.
      this.matchRevision = revision;
      for (let i = 0; i < changes.length; i++) {
        this.matchChange = i;
        this.synced.forEachWatching(changes[i]!.key.toString('latin1'), this.visitMatch);
      }
      if (touched.length === 0) return;
      // Encode: each event once per revision (without and with prev_kv, on first need).
      const plain = this.plainEvents;
      const withPrev = this.prevEvents;
      plain.length = 0;
      withPrev.length = 0;
      let headerField: Buffer | undefined;
      for (let s = 0; s < touched.length; s++) {
        const stream = touched[s]!;
        const matched = stream.matched;
        let sending = 0;
        for (let m = 0; m < matched.length; m++) {
          const w = matched[m]!;
          // Empty: the finally below emptied it after the last revision this watcher matched.
          const events = w.liveEvents;
          if (w.state !== 'synced') continue; // canceled meanwhile (a sink's callback)
          if (stream.blocked) {
            // Over its high-water mark: no buffering; the watcher reads this revision from history later.
            this.toUnsynced(w, revision);
            continue;
          }
          const indexes = w.matchedChanges;
          for (let k = 0; k < indexes.length; k++) {
            const i = indexes[k]!;
            const kv = changes[i]!;
            if (kv.create_revision === 0 ? w.noDelete : w.noPut) continue;
            if (w.prevKv && previous[i] !== undefined) events.push(withPrev[i] ??= encodeEvent(kv, previous[i]));
            else events.push(plain[i] ??= encodeEvent(kv, undefined));
          }
          w.minRev = revision + 1;
          if (events.length > 0) sending++; // all filtered out: etcd sends nothing
        }
        if (sending === 0) continue;
        headerField ??= this.headerField(revision);
        stream.sendRevision(revision, headerField);
      }
    } finally {
      // Scratch emptied: no watcher keeps this revision's event bytes alive until its next match.
      // pop, not `length = 0`: the lists hold one or a few entries, and a length store was a
      // runtime call that shrank each list's backing store, twice per watcher per revision (6% of
      // the member's CPU at W=100 P=4000); pop clears the slots all the same.
      for (let s = 0; s < touched.length; s++) {
        const matched = touched[s]!.matched;
        for (let m = 0; m < matched.length; m++) {
          const w = matched[m]!;
          w.matchedRevision = 0; // a later notify of the same revision (none today) starts it afresh
          const events = w.liveEvents;
          while (events.length > 0) events.pop();
          const changes = w.matchedChanges;
          while (changes.length > 0) changes.pop();
        }
        matched.length = 0;
      }
      touched.length = 0;
      this.plainEvents.length = 0;
      this.prevEvents.length = 0;
      this.notifying = false;
    }
  }

  /** notify's matcher, bound once: adds change `matchChange` to a watcher's list for `matchRevision`. */
  private readonly visitMatch = (w: Watcher): void => {
    const revision = this.matchRevision;
    if (w.minRev > revision) return; // a future start revision: not yet
    if (w.matchedRevision !== revision) {
      // matchedChanges is empty here: notify's finally emptied it after the watcher's last match.
      w.matchedRevision = revision;
      const matched = w.stream.matched;
      if (matched.length === 0) this.touchedStreams.push(w.stream);
      matched.push(w);
    }
    w.matchedChanges.push(this.matchChange);
  };

  /** The response header field at `revision`, encoded once for every response of that revision. */
  private headerField(revision: number): Buffer {
    const h = this.headerSource;
    const term = h.raftTerm();
    const cached = this.cachedHeader;
    if (cached !== undefined && cached.revision === revision && cached.term === term && cached.clusterId === h.clusterId && cached.memberId === h.memberId) {
      return cached.field;
    }
    const field = encodeHeaderField({ cluster_id: h.clusterId, member_id: h.memberId, revision, raft_term: term });
    this.cachedHeader = { revision, term, clusterId: h.clusterId, memberId: h.memberId, field };
    return field;
  }

  // ---- catch-up path -----------------------------------------------------------------------------

  private toUnsynced(w: Watcher, nextRevision: number): void {
    if (w.state === 'synced') this.synced.delete(w);
    w.minRev = Math.max(w.minRev, nextRevision);
    if (w.state !== 'unsynced') {
      w.state = 'unsynced';
      this.unsynced.add(w);
      w.stream.unsyncedCount++;
    }
  }

  private leaveUnsynced(w: Watcher): void {
    if (this.unsynced.delete(w)) w.stream.unsyncedCount--;
  }

  private toSynced(w: Watcher): void {
    this.leaveUnsynced(w);
    w.state = 'synced';
    this.synced.add(w);
    w.stream.maybeSendDeferredProgress();
  }

  private scheduleSync(): void {
    if (this.syncScheduled || this.closed) return;
    this.syncScheduled = true;
    setImmediate(() => {
      this.syncScheduled = false;
      this.syncWatchers();
    });
  }

  /** Starts catch-up reads for up to Limits.watchSyncWatchersPerTurn watchers that can send. */
  private syncWatchers(): void {
    let started = 0;
    let more = false;
    for (const w of this.unsynced) {
      if (w.reading || w.stream.blocked) continue;
      if (started === Limits.watchSyncWatchersPerTurn) {
        more = true;
        break;
      }
      started++;
      this.syncOne(w);
    }
    if (more) this.scheduleSync();
  }

  private syncOne(w: Watcher): void {
    const current = this.history.currentRevision;
    if (w.minRev > current) {
      this.toSynced(w);
      return;
    }
    if (w.minRev < this.history.compactedRevision) {
      this.cancelCompacted(w);
      return;
    }
    const from = w.minRev;
    const to = Math.min(current, from + Limits.watchCatchUpRevisionsMax - 1);
    w.reading = true;
    this.history.read(w.key, w.end, from, to, w.prevKv).then(
      (events) => {
        w.reading = false;
        this.caughtUp(w, from, to, events);
      },
      (err: unknown) => {
        w.reading = false;
        if (w.state === 'canceled') return;
        if (isKeyraftError(err) && err.code === 'Compacted') {
          this.cancelCompacted(w);
          return;
        }
        // Not an expected failure: a bug or a broken backend. Log with context; the watcher
        // stays unsynced and is retried on the next round.
        this.logger.error({ err, watchId: w.id, from, to }, 'watch history read failed');
        this.scheduleSync();
      },
    );
  }

  private caughtUp(w: Watcher, from: number, to: number, events: HistoryEvent[]): void {
    if (w.state !== 'unsynced' || w.minRev !== from) return; // canceled meanwhile
    // A compaction while the read ran may have removed revisions it wanted.
    if (from < this.history.compactedRevision) {
      this.cancelCompacted(w);
      return;
    }
    if (w.stream.blocked) {
      // Its stream filled up meanwhile (other watchers' responses): drop the read, redo it after the drain.
      return;
    }
    // Bound the response: cut at a revision boundary past watchCatchUpEventsMax (one revision whole).
    let upTo = to;
    if (events.length > Limits.watchCatchUpEventsMax) {
      const cutRev = events[Limits.watchCatchUpEventsMax - 1]!.kv.mod_revision;
      let n = Limits.watchCatchUpEventsMax;
      while (n < events.length && events[n]!.kv.mod_revision === cutRev) n++;
      events = events.slice(0, n);
      upTo = cutRev;
    }
    const encoded: Uint8Array[] = [];
    let bytes = 0;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      // Past the byte bound, stop at the next revision boundary (the rest comes in the next batch).
      if (bytes >= Limits.watchCatchUpBytesMax && i > 0 && e.kv.mod_revision !== events[i - 1]!.kv.mod_revision) {
        upTo = events[i - 1]!.kv.mod_revision;
        break;
      }
      const deleted = e.kv.create_revision === 0;
      if (deleted ? w.noDelete : w.noPut) continue;
      const bytesOf = this.catchUpEvents.encode(e.kv, w.prevKv ? e.prev : undefined);
      bytes += bytesOf.length;
      encoded.push(bytesOf);
    }
    w.minRev = upTo + 1;
    // The header revision is the store's current revision when the response is sent, as etcd's
    // syncWatchers sets it (Revision: curRev), even when this batch stops short of it: etcd 3.4
    // answers a watch from revision 2 over 1,500 revisions of history with two responses, events
    // 2..1001 and 1002..1501, both with header revision 1501 (test/watch/catch-up-header.test.ts).
    if (encoded.length > 0) w.stream.sendEvents(w, this.history.currentRevision, encoded);
    if (w.state !== 'unsynced') return; // the stream closed while sending
    if (w.minRev > this.history.currentRevision) this.toSynced(w);
    else this.scheduleSync();
  }

  private cancelCompacted(w: Watcher): void {
    if (w.state === 'canceled') return;
    const compactRevision = this.history.compactedRevision;
    this.remove(w);
    w.stream.compacted(w, compactRevision);
    w.stream.maybeSendDeferredProgress();
  }

  // ---- progress notify ---------------------------------------------------------------------------

  private progressTick(): void {
    const current = this.history.currentRevision;
    for (const stream of this.streams) {
      for (const w of stream.watchers.values()) if (w.progressNotify) stream.progressTick(w, current);
    }
  }
}
