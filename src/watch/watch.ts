import type { KeyValue } from '../proto/etcd-types.js';

/**
 * The watch layer's interfaces (etcd's mvcc/watch.go and watchable_store.go split by concept):
 * what the hub needs from the MVCC store (WatchHistory), where a stream writes its responses
 * (WatchSink), and what a response header is built from (HeaderSource). The server layer adapts
 * the store and the API layer's streaming call to these; this folder imports neither.
 *
 * Ranges use etcd's watch forms, already normalized by the stream (watch-stream.ts): `end`
 * undefined = the single key; an empty `end` = every key >= key; otherwise [key, end).
 */

/** A watch id chosen by the server (etcd's AutoWatchID): a create with watch_id 0 gets the next free id. */
export const AUTO_WATCH_ID = 0;
/** The watch id of a progress response that speaks for every watcher of the stream (etcd's InvalidWatchID). */
export const PROGRESS_WATCH_ID = -1;

/** etcd's error texts for refused creates (mvcc/watcher.go), sent as cancel_reason. */
export const ERR_EMPTY_WATCHER_RANGE = 'mvcc: watcher range is empty';
export const ERR_DUPLICATE_WATCH_ID = 'mvcc: duplicate watch ID provided on the WatchStream';
/** keyraft's own bound (etcd has none): a stream holds at most Limits.watchersPerStreamMax watchers. */
export const ERR_TOO_MANY_WATCHERS = 'keyraft: too many watchers on this watch stream';

/**
 * One history read for a catching-up watcher: every change to keys in the watcher's range with
 * fromRevision <= mod_revision <= toRevision, in revision order (a txn's changes of one key
 * range in key order), each with the key's previous value when `withPrevious` is set.
 */
export interface HistoryEvent {
  kv: KeyValue;
  /** The key's value at kv.mod_revision - 1 (only when asked; undefined if it did not exist or was compacted). */
  prev?: KeyValue;
}

/**
 * What the hub reads from the MVCC store. History reads may be asynchronous (an issue to come
 * moves old revisions out of the heap onto disk): the hub never holds the event loop across one
 * and re-checks compaction when it completes.
 */
export interface WatchHistory {
  readonly currentRevision: number;
  /** -1 before any compaction, as etcd. */
  readonly compactedRevision: number;
  /**
   * Changes in [fromRevision, toRevision] of the range; toRevision <= currentRevision. May
   * reject with KeyraftError 'Compacted' if compaction passed fromRevision meanwhile.
   */
  read(key: Buffer, end: Buffer | undefined, fromRevision: number, toRevision: number, withPrevious: boolean): Promise<HistoryEvent[]>;
}

/**
 * Where a stream's encoded WatchResponses go (the gRPC or gateway stream). `send` always takes
 * the message; false means the sink is over its high-water mark: the stream stops sending events
 * (its watchers fall back to history) until `onDrain` fires.
 */
export interface WatchSink {
  send(message: Uint8Array): boolean;
  /**
   * Several responses at once, each framed as gRPC frames a message (a 0 flag byte, the length
   * as 4 bytes big-endian, the message): a gRPC sink writes them as they are. Optional: without
   * it the stream hands each message to `send`. Same return as send.
   */
  sendFramed?(framed: Buffer, messages: number): boolean;
  /**
   * As sendFramed, but `writer` writes the framed responses (`bytes` in all, none over
   * `largestMessageBytes` with its prefix) where the sink says, `out.reserve(n)` at a time: a
   * gRPC sink hands it its connection's output, so the bytes are written once, not built in a
   * buffer of the stream's and copied again. Optional. Same return as send.
   */
  sendPieces?(bytes: number, messages: number, largestMessageBytes: number, writer: FramedResponseWriter): boolean;
  onDrain(listener: () => void): void;
  /** Ends the call with an error (a stream that broke a bound), mapped once at the edge. */
  end(error?: unknown): void;
}

/** Where FramedResponseWriter writes: n bytes at `reserve(n)` in `buffer` (read `buffer` after each reserve). */
export interface FramedResponseOutput {
  readonly buffer: Buffer;
  reserve(bytes: number): number;
}

/** Writes a revision's framed responses into a FramedResponseOutput (WatchSink.sendPieces). */
export interface FramedResponseWriter {
  writePieces(out: FramedResponseOutput): void;
}

/** The header fields that do not come from the event (etcd's newResponseHeader). */
export interface HeaderSource {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  /** The current Raft term, read when a response is built. */
  raftTerm(): number;
}
