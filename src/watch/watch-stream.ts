import { KeyraftError } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import { varintSize } from '../proto/varint.js';
import { WatchFilterType, type ResponseHeader, type WatchCreateRequest, type WatchRequest } from '../proto/etcd-types.js';
import {
  AUTO_WATCH_ID, ERR_DUPLICATE_WATCH_ID, ERR_EMPTY_WATCHER_RANGE, ERR_TOO_MANY_WATCHERS, PROGRESS_WATCH_ID,
  type FramedResponseOutput, type FramedResponseWriter, type WatchSink,
} from './watch.js';
import {
  encodeWatchResponse, eventsResponseSize, FRAME_PREFIX_BYTES, watchResponseSize, writeFramedEventsResponse, type ResponseFields,
} from './watch-response-encoder.js';
import { Watcher, type WatcherStream } from './watcher.js';

/** What a stream asks of the hub that owns it (watch-hub.ts's WatchHub). */
export interface WatchStreamHost {
  readonly currentRevision: number;
  header(revision: number): ResponseHeader;
  add(w: Watcher): void;
  remove(w: Watcher): void;
  streamClosed(stream: WatchStream): void;
  /** The stream can take more again: its unsynced watchers may catch up. */
  streamDrained(stream: WatchStream): void;
  /** Counts events written (the events metric). */
  eventsSent(events: number): void;
}

/**
 * One client Watch stream (etcd's serverWatchStream over its mvcc watchStream): the watchers it
 * created, by id, and the one sink its responses go to, in order.
 *
 * Requests, with etcd 3.4's answers (etcdserver/api/v3rpc/watch.go):
 *   - create: an empty key is "\0" (the smallest key); range_end "\0" = every key >= key; a
 *     range_end <= key is refused with created+canceled, watch_id -1 and "mvcc: watcher range is
 *     empty"; watch_id 0 takes the next free id, a taken one is refused the same way with "mvcc:
 *     duplicate watch ID provided on the WatchStream". start_revision 0 = from the next revision.
 *     The created response's header revision is the store's revision at the create.
 *   - cancel of a watcher of this stream: canceled response (header: current revision); of an
 *     unknown id: no answer at all, as etcd.
 *   - progress: one response, watch_id -1, header revision = current, sent only once every
 *     watcher of the stream is synced (etcd's fix for #15220: a revision in a progress response
 *     must never be below an event still to come on the stream), and sent even when the
 *     watchers became synced without sending any event (#17507).
 *   - a request with no member set is ignored.
 *
 * Flow control: responses go to the sink in order. Once the sink says it is over its high-water
 * mark, the stream is `blocked`: the hub sends it no more events (its watchers fall back to
 * history, watch-hub.ts) until the sink drains. Control responses still go out (they answer the
 * client's own requests), up to Limits.watchStreamControlBytesBlockedMax; a client that keeps
 * writing requests without reading past that is cut off with RESOURCE_EXHAUSTED.
 */
export class WatchStream implements FramedResponseWriter {
  readonly watchers = new Map<number, Watcher>();
  /** Over the sink's high-water mark: no events until it drains. */
  blocked = false;
  /** Watchers of this stream in the hub's unsynced set (maintained by the hub). */
  unsyncedCount = 0;
  /** Events handed to the sink over its high-water mark, not yet drained (etcd_debugging_mvcc_pending_events_total). */
  pendingEvents = 0;
  /** The hub's notify scratch: watchers of this stream matched at the revision being notified. */
  readonly matched: Watcher[] = [];
  /** sendRevision's scratch: each sending watcher's response size. */
  private readonly responseSizes: number[] = [];
  /** writeFramed's arguments for writePieces: the header field and matched[from, to). */
  private piecesHeaderField: Buffer = EMPTY;
  private piecesFrom = 0;
  private piecesTo = 0;
  /** A progress request waits for every watcher to be synced. */
  private deferredProgress = false;
  private nextId = 0;
  private controlBytesBlocked = 0;
  private closed = false;

  constructor(
    private readonly hub: WatchStreamHost,
    private readonly sink: WatchSink,
    /** Responses above this size are split for watchers that asked for fragments (etcd: --max-request-bytes). */
    private readonly fragmentBytes: number,
  ) {
    sink.onDrain(() => this.drained());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** One decoded WatchRequest from the client. */
  handle(request: WatchRequest): void {
    if (this.closed) return;
    if (request.create_request) this.create(request.create_request);
    else if (request.cancel_request) this.cancel(request.cancel_request.watch_id ?? 0);
    else if (request.progress_request) this.requestProgress();
  }

  /** The server ends the stream (shutdown): the call ends with `error` (OK trailers without one). */
  end(error?: unknown): void {
    if (this.closed) return;
    this.close();
    this.sink.end(error);
  }

  /** The client went away (or the call ended): every watcher goes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers.values()) this.hub.remove(w);
    this.watchers.clear();
    this.hub.streamClosed(this);
  }

  private create(c: WatchCreateRequest): void {
    let key = c.key ?? EMPTY;
    if (key.length === 0) key = ZERO_KEY;
    let end: Buffer | undefined = c.range_end;
    if (end !== undefined && end.length === 0) end = undefined;
    else if (end !== undefined && end.length === 1 && end[0] === 0) end = EMPTY;
    const wsrev = this.hub.currentRevision;
    let startRevision = c.start_revision ?? 0;
    if (startRevision === 0) startRevision = wsrev + 1;
    let error: string | undefined;
    let id = c.watch_id ?? AUTO_WATCH_ID;
    if (end !== undefined && end.length > 0 && Buffer.compare(key, end) >= 0) {
      error = ERR_EMPTY_WATCHER_RANGE;
    } else if (id === AUTO_WATCH_ID) {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    } else if (this.watchers.has(id)) {
      error = ERR_DUPLICATE_WATCH_ID;
    }
    if (error === undefined && this.watchers.size >= Limits.watchersPerStreamMax) error = ERR_TOO_MANY_WATCHERS;
    if (error !== undefined) {
      this.sendControl({ header: this.hub.header(wsrev), watchId: -1, created: true, canceled: true, cancelReason: error });
      return;
    }
    const filters = c.filters ?? [];
    const w = new Watcher(
      id, this, key, end, startRevision,
      filters.includes(WatchFilterType.NOPUT), filters.includes(WatchFilterType.NODELETE),
      c.prev_kv === true, c.progress_notify === true, c.fragment === true,
    );
    this.watchers.set(id, w);
    // The created response goes first: the hub may send this watcher's events from here on.
    this.sendControl({ header: this.hub.header(wsrev), watchId: id, created: true });
    if (this.closed) return;
    this.hub.add(w);
  }

  private cancel(id: number): void {
    const w = this.watchers.get(id);
    if (w === undefined) return; // etcd answers nothing for an id it does not know
    this.watchers.delete(id);
    this.hub.remove(w);
    this.sendControl({ header: this.hub.header(this.hub.currentRevision), watchId: id, canceled: true });
    this.maybeSendDeferredProgress();
  }

  private requestProgress(): void {
    if (this.deferredProgress) return; // one answer covers every request until it goes out
    this.deferredProgress = true;
    this.maybeSendDeferredProgress();
  }

  /** Sends a deferred progress response once every watcher is synced. */
  maybeSendDeferredProgress(): void {
    if (!this.deferredProgress || this.closed || this.unsyncedCount > 0) return;
    this.deferredProgress = false;
    this.sendControl({ header: this.hub.header(this.hub.currentRevision), watchId: PROGRESS_WATCH_ID });
  }

  /** The hub's progress tick for one watcher (etcd's RequestProgress): only when synced, and not before its start revision. */
  progressTick(w: Watcher, currentRevision: number): void {
    if (w.progressDue && w.state === 'synced' && !this.blocked && w.minRev <= currentRevision + 1) {
      this.sendControl({ header: this.hub.header(currentRevision), watchId: w.id });
    }
    w.progressDue = true;
  }

  /** Removes a watcher compaction passed and tells the client (etcd: canceled with compact_revision). */
  compacted(w: Watcher, compactRevision: number): void {
    this.watchers.delete(w.id);
    // etcd's response carries no revision of its own: its header revision is 0.
    this.sendControl({ header: this.hub.header(0), watchId: w.id, canceled: true, compactRevision });
  }

  /**
   * Sends `events` (encoded) for watcher `w` with header revision `revision`, split into
   * fragments when the watcher asked for them and the response is larger than the limit.
   * Returns the number of events sent.
   */
  sendEvents(w: Watcher, revision: number, events: readonly Uint8Array[]): void {
    const fields: ResponseFields = { header: this.hub.header(revision), watchId: w.id };
    w.progressDue = false;
    if (!w.fragment || events.length < 2 || watchResponseSize(fields, events) < this.fragmentBytes) {
      this.write(encodeWatchResponse(fields, events), events.length);
      return;
    }
    // etcd's sendFragments: fill each fragment until adding an event reaches the limit (one
    // event at least); every fragment but the last says fragment: true.
    const fragmentFields: ResponseFields = { ...fields, fragment: true };
    const base = watchResponseSize(fragmentFields, NO_EVENTS);
    let at = 0;
    while (at < events.length) {
      let size = base + eventFieldSize(events[at]!);
      let end = at + 1;
      while (end < events.length) {
        size += eventFieldSize(events[end]!);
        if (size >= this.fragmentBytes) break;
        end++;
      }
      const part = events.slice(at, end);
      const last = end === events.length;
      this.write(encodeWatchResponse(last ? fields : fragmentFields, part), part.length);
      at = end;
    }
  }

  /**
   * The live path's responses at `revision`: one per watcher in `matched` with events in its
   * `liveEvents`, all sharing the header field, written to the sink as ONE buffer of framed
   * responses (one allocation, one write for the stream, whatever the number of watchers). A
   * watcher that asked for fragments and whose response is too large goes on its own, in order.
   */
  sendRevision(revision: number, headerField: Buffer): void {
    const matched = this.matched;
    const sizes = this.responseSizes;
    sizes.length = 0;
    let from = 0;
    let bytes = 0;
    for (let m = 0; m < matched.length; m++) {
      const w = matched[m]!;
      const events = w.liveEvents;
      if (w.state === 'canceled' || events.length === 0) {
        sizes.push(-1);
        continue;
      }
      const size = eventsResponseSize(headerField, w.id, events);
      if (w.fragment && events.length > 1 && size >= this.fragmentBytes) {
        // Everything before it goes first, then its fragments.
        this.writeFramed(headerField, from, m, bytes);
        sizes.length = 0; // indexes from the next watcher on
        from = m + 1;
        bytes = 0;
        this.sendEvents(w, revision, events);
        continue;
      }
      sizes.push(size);
      bytes += FRAME_PREFIX_BYTES + size;
    }
    this.writeFramed(headerField, from, matched.length, bytes);
  }

  /** Writes matched[from, to)'s responses (sizes in responseSizes from index 0 = from), `bytes` in all with their prefixes. */
  private writeFramed(headerField: Buffer, from: number, to: number, bytes: number): void {
    if (bytes === 0 || this.closed) return;
    const sizes = this.responseSizes;
    let messages = 0;
    let events = 0;
    let largest = 0;
    for (let m = from; m < to; m++) {
      const size = sizes[m - from]!;
      if (size < 0) continue;
      const w = this.matched[m]!;
      w.progressDue = false;
      messages++;
      events += w.liveEvents.length;
      if (size > largest) largest = size;
    }
    this.hub.eventsSent(events);
    if (this.blocked) this.pendingEvents += events;
    this.piecesHeaderField = headerField;
    this.piecesFrom = from;
    this.piecesTo = to;
    const sink = this.sink;
    try {
      if (sink.sendPieces !== undefined) {
        if (!sink.sendPieces(bytes, messages, FRAME_PREFIX_BYTES + largest, this)) this.blocked = true;
        return;
      }
      const out = new OneBuffer(Buffer.allocUnsafe(bytes));
      this.writePieces(out);
      if (sink.sendFramed !== undefined) {
        if (!sink.sendFramed(out.buffer, messages)) this.blocked = true;
        return;
      }
      // A sink that takes one message at a time (the gateway, the lock service): views, not copies.
      const framed = out.buffer;
      for (let pos = 0; pos < framed.length && !this.closed;) {
        const size = framed.readUInt32BE(pos + 1);
        const start = pos + FRAME_PREFIX_BYTES;
        pos = start + size;
        if (!sink.send(framed.subarray(start, pos))) this.blocked = true;
      }
    } finally {
      this.piecesHeaderField = EMPTY;
    }
  }

  /** @internal The sink's call back from sendPieces: writes the framed responses writeFramed announced. */
  writePieces(out: FramedResponseOutput): void {
    const sizes = this.responseSizes;
    const from = this.piecesFrom;
    for (let m = from; m < this.piecesTo; m++) {
      const size = sizes[m - from]!;
      if (size < 0) continue;
      const w = this.matched[m]!;
      const at = out.reserve(FRAME_PREFIX_BYTES + size);
      writeFramedEventsResponse(out.buffer, at, size, this.piecesHeaderField, w.id, w.liveEvents);
    }
  }

  private sendControl(fields: ResponseFields): void {
    const message = encodeWatchResponse(fields);
    if (this.blocked) {
      this.controlBytesBlocked += message.length;
      if (this.controlBytesBlocked > Limits.watchStreamControlBytesBlockedMax) {
        this.end(new KeyraftError('TooManyRequests', 'keyraft: watch stream client stopped reading'));
        return;
      }
    }
    this.write(message, 0);
  }

  private write(message: Uint8Array, events: number): void {
    if (this.closed) return;
    this.hub.eventsSent(events);
    if (this.blocked) this.pendingEvents += events;
    if (!this.sink.send(message)) this.blocked = true;
  }

  private drained(): void {
    if (this.closed || !this.blocked) return;
    this.blocked = false;
    this.controlBytesBlocked = 0;
    this.pendingEvents = 0;
    this.hub.streamDrained(this);
  }
}

const EMPTY = Buffer.alloc(0);

/** A FramedResponseOutput over one buffer (sinks without sendPieces). */
class OneBuffer implements FramedResponseOutput {
  private at = 0;

  constructor(readonly buffer: Buffer) {}

  reserve(bytes: number): number {
    const at = this.at;
    this.at += bytes;
    return at;
  }
}
const NO_EVENTS: readonly Uint8Array[] = [];

/** Bytes one encoded event adds to a response: tag, length, body. */
function eventFieldSize(event: Uint8Array): number {
  return 1 + varintSize(event.length) + event.length;
}
/** etcd: "\x00 is the smallest key", what an empty watch key means. */
const ZERO_KEY = Buffer.from([0]);
