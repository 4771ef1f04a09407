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
    let at = 0;
    let n = 0;
    let open = true;
    while (at < framed.length) {
      if (framed[at] !== 0) throw new Error(`frame flag ${framed[at]} at ${at}`);
      const size = framed.readUInt32BE(at + 1);
      if (at + 5 + size > framed.length) throw new Error(`frame of ${size} bytes at ${at} runs past ${framed.length}`);
      open = this.send(framed.subarray(at + 5, at + 5 + size));
      at += 5 + size;
      n++;
    }
    if (n !== messages) throw new Error(`sendFramed said ${messages} messages, the buffer holds ${n}`);
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
