import { decode, messageType } from '../../src/proto/codec.js';
import { silentLogger } from '../../src/platform/logger.js';
import type { Applier } from '../../src/server/applier.js';
import { StoreWatchHistory } from '../../src/server/watch-history.js';
import type { WatchSink } from '../../src/watch/watch.js';
import { WatchHub } from '../../src/watch/watch-hub.js';

/** Helpers for the watch hub tests: a hub over a real applier, and sinks a test drains by hand. */

export const b = (s: string): Buffer => Buffer.from(s, 'latin1');

const watchResponseType = messageType('etcdserverpb.WatchResponse');

/** A decoded WatchResponse, fields as the codec gives them (absent = proto3 default). */
export interface Resp {
  header?: { revision?: number; cluster_id?: bigint; member_id?: bigint; raft_term?: number };
  watch_id?: number;
  created?: boolean;
  canceled?: boolean;
  compact_revision?: number;
  cancel_reason?: string;
  fragment?: boolean;
  events?: Array<{ type?: number; kv?: Kv; prev_kv?: Kv }>;
}
export interface Kv { key?: Buffer; value?: Buffer; create_revision?: number; mod_revision?: number; version?: number }

export function decodeResponse(bytes: Uint8Array): Resp {
  return decode<Resp>(watchResponseType, bytes);
}

/**
 * A sink with a high-water mark in bytes, like an HTTP/2 stream's: send() keeps the message and
 * answers false once the bytes not yet read reach the mark; read() takes everything (the client
 * reading) and fires the drain listener.
 */
export class TestSink implements WatchSink {
  private queued: Uint8Array[] = [];
  queuedBytes = 0;
  maxQueuedBytes = 0;
  readonly received: Resp[] = [];
  ended: unknown = undefined;
  private drain: (() => void) | null = null;

  constructor(private readonly highWaterBytes = Number.POSITIVE_INFINITY) {}

  send(message: Uint8Array): boolean {
    this.queued.push(message);
    this.queuedBytes += message.length;
    this.maxQueuedBytes = Math.max(this.maxQueuedBytes, this.queuedBytes);
    return this.queuedBytes < this.highWaterBytes;
  }

  onDrain(listener: () => void): void {
    this.drain = listener;
  }

  end(error?: unknown): void {
    this.ended = error ?? 'ok';
  }

  read(): void {
    const was = this.queuedBytes;
    for (const m of this.queued) this.received.push(decodeResponse(m));
    this.queued = [];
    this.queuedBytes = 0;
    if (was > 0) this.drain?.();
  }
}

/**
 * A TestSink that also takes framed batches, as a gRPC call does (the hub's live path then writes
 * a revision's responses to several watchers as one buffer): it checks the framing and keeps the
 * messages as send() would.
 */
export class FramedTestSink extends TestSink {
  framedWrites = 0;

  sendFramed(framed: Buffer, messages: number): boolean {
    this.framedWrites++;
    const { open, n } = sendEachFrame(this, framed);
    if (n !== messages) throw new Error(`sendFramed said ${messages} messages, the buffer holds ${n}`);
    return open;
  }
}

/** Checks the gRPC framing of `framed` and hands each message to sink.send(); how many, and the last answer. */
function sendEachFrame(sink: TestSink, framed: Buffer): { open: boolean; n: number } {
  let at = 0;
  let n = 0;
  let open = true;
  while (at < framed.length) {
    if (framed[at] !== 0) throw new Error(`frame flag ${framed[at]} at ${at}`);
    const size = framed.readUInt32BE(at + 1);
    if (at + 5 + size > framed.length) throw new Error(`frame of ${size} bytes at ${at} runs past ${framed.length}`);
    open = sink.send(framed.subarray(at + 5, at + 5 + size));
    at += 5 + size;
    n++;
  }
  return { open, n };
}

/**
 * A TestSink that takes a revision's responses as a gRPC call's sendPieces does: the writer
 * reserves each framed response in turn, and this output hands out room in a fresh buffer every
 * `piecesPerBuffer` reserves (as the connection starts a new chunk), so a writer that kept an old
 * `buffer` across a reserve, or wrote past what it reserved, garbles a message and the checks
 * here or the decode fail. Every `refuseEvery`-th call has nothing written directly (the stream
 * could not send now): the writer then fills one buffer of the announced size instead.
 */
export class PiecesTestSink extends TestSink {
  piecesWrites = 0;
  private calls = 0;

  constructor(highWaterBytes = Number.POSITIVE_INFINITY, private readonly piecesPerBuffer = 3, private readonly refuseEvery = 4) {
    super(highWaterBytes);
  }

  sendPieces(bytes: number, messages: number, largestMessageBytes: number, writer: { writePieces(out: { readonly buffer: Buffer; reserve(n: number): number }): void }): boolean {
    this.calls++;
    const refused = this.calls % this.refuseEvery === 0;
    const pieces: Array<{ buffer: Buffer; at: number; n: number }> = [];
    const sink = this;
    const out = {
      buffer: Buffer.alloc(0),
      reserve(n: number): number {
        if (n <= 0 || n > largestMessageBytes) throw new Error(`a piece of ${n} bytes, the largest announced is ${largestMessageBytes}`);
        if (refused) {
          if (pieces.length === 0) pieces.push({ buffer: (this.buffer = Buffer.alloc(bytes, 0xee)), at: 0, n: 0 });
          const whole = pieces[0]!;
          whole.n += n;
          if (whole.n > bytes) throw new Error(`pieces past the ${bytes} bytes announced`);
          return whole.n - n;
        }
        if (pieces.length % sink.piecesPerBuffer === 0) this.buffer = Buffer.alloc(bytes + 64, 0xee);
        const at = pieces.length % sink.piecesPerBuffer === 0 ? 7 : pieces[pieces.length - 1]!.at + pieces[pieces.length - 1]!.n;
        pieces.push({ buffer: this.buffer, at, n });
        return at;
      },
    };
    writer.writePieces(out);
    this.piecesWrites++;
    const framed = Buffer.concat(pieces.map((p) => p.buffer.subarray(p.at, p.at + p.n)));
    if (framed.length !== bytes) throw new Error(`sendPieces announced ${bytes} bytes, ${framed.length} written`);
    // `framed` is a fresh copy (Buffer.concat), so the messages kept are not the writer's buffers.
    const { open, n } = sendEachFrame(this, framed);
    if (n !== messages) throw new Error(`sendPieces said ${messages} messages, ${n} written`);
    return open;
  }
}

export function newHub(applier: Applier, progressNotifyIntervalMs = 0): WatchHub {
  const hub = new WatchHub({
    history: new StoreWatchHistory(() => applier.store),
    header: { clusterId: 7n, memberId: 9n, raftTerm: () => 2 },
    logger: silentLogger,
    progressNotifyIntervalMs,
  });
  applier.store.onChanges((changes, revision, previous) => hub.notify(changes, revision, previous));
  return hub;
}

export const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Reads every sink and lets the hub run until no watcher is behind (a bounded number of turns, no clock). */
export async function settle(hub: WatchHub, sinks: readonly TestSink[], turnsMax = 100_000): Promise<void> {
  for (let i = 0; i < turnsMax; i++) {
    for (const s of sinks) s.read();
    await turn();
    if (hub.slowWatchers === 0 && sinks.every((s) => s.queuedBytes === 0)) {
      for (const s of sinks) s.read();
      return;
    }
  }
  throw new Error(`the hub did not settle: ${hub.slowWatchers} watchers still behind`);
}
