import { join } from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { assert } from '../platform/assert.js';
import { KeyraftError } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import { silentLogger, type Logger } from '../platform/logger.js';
import type { Registry } from 'prom-client';
import { WalMetrics } from './wal-metrics.js';
import type { FromWriter, OpenedReplay, PackedEntries, ToWriter, WalWriterData, WriterStats } from './wal-protocol.js';
import { WalCorruptionError } from './wal-reader.js';
import {
  encodeEntryRecord, encodeHardStateRecord, encodeSnapshotMarkerRecord, entryRecordBytes, hardStateRecordBytes,
  snapshotMarkerRecordBytes, type HardState, type SnapshotMarker, type WalEntry,
} from './wal-record.js';

export type { HardState, SnapshotMarker, WalEntry } from './wal-record.js';
export { WalCorruptionError } from './wal-reader.js';

/**
 * The write-ahead log, as the member sees it: a facade on the main thread over the WAL writer
 * worker (workers/wal-writer.ts), which owns the files. Formats: wal-record.ts (records),
 * wal-segment.ts (files), wal-reader.ts (replay, torn tail vs corruption).
 *
 * Group commit happens at two levels. Here, every append() of one synchronous turn is encoded
 * into one buffer and posted once, in a microtask, with the buffer transferred (no copy). In the
 * worker, every message waiting when a fdatasync returns goes into the next single write and
 * fdatasync. So N appends issued together cost one fdatasync, and appends arriving while one runs
 * share the next. The main thread only copies entry bytes into the outgoing buffer; crcs, writes
 * and syncs happen in the worker.
 *
 * Entry data must not be modified after append() until it resolves: it is copied in a microtask.
 */

export interface WalReplay {
  /** The log after replay, in index order, as last written (later records overwrite). */
  entries: WalEntry[];
  hardState: HardState | undefined;
  /** Index of entries[0], or the index the log continues at when it is empty. */
  firstIndex: number;
  /** A torn tail was found and cut (also logged as a warning). */
  tornTailTruncated: boolean;
  /** The latest snapshot marker written with appendSnapshotMarker, if any. */
  snapshot: SnapshotMarker | undefined;
}

export interface WalOptions {
  logger?: Logger;
  /** Size segments are preallocated to (Limits.walSegmentSizeBytes by default). */
  segmentSizeBytes?: number;
  /** Bound on bytes appended but not yet durable (walPendingBytesMax by default). */
  pendingBytesMax?: number;
  /** Registers etcd_disk_wal_fsync_duration_seconds and etcd_disk_wal_write_bytes_total here. */
  metrics?: Registry;
}

export interface WalStats extends WriterStats {
  /** append() calls accepted. */
  appends: number;
  /** Messages posted to the writer (one per turn with appends, more when a turn is huge). */
  messages: number;
}

/**
 * Bound on appended-but-not-durable bytes. The member bounds proposals itself
 * (Limits.pendingProposalsMax); this only stops runaway growth if the disk stalls.
 * Overflow is a TooManyRequests error.
 */
export const walPendingBytesMax = 512 * 1024 * 1024;

/** Compiled location of the worker: dist/src/storage/wal.js -> dist/workers/wal-writer.js. */
const writerPath = join(__dirname, '..', '..', 'workers', 'wal-writer.js');

interface PendingCall {
  entries: WalEntry[];
  hardState: HardState | undefined;
  marker: SnapshotMarker | undefined;
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Waiter {
  seq: number;
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class Wal {
  readonly stats: WalStats;
  private readonly logger: Logger;
  private readonly pendingBytesMax: number;
  /** A message larger than this is split, so the writer can fill segments (a single call is never split). */
  private readonly messageBytesMax: number;
  private readonly metrics: WalMetrics | undefined;
  /** Calls of the current turn, not yet posted. */
  private turn: PendingCall[] = [];
  private turnScheduled = false;
  /** Posted appends waiting for 'synced', in seq order. */
  private appendWaiters: Waiter[] = [];
  private appendWaitersHead = 0;
  private readonly otherWaiters = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private nextSeq = 1;
  private pendingBytes = 0;
  /** Invariant: the index the next appended entry may at most have is lastIndex + 1. */
  private lastIndex: number;
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;
  private refs = true; // a new Worker and its port start ref'ed

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    replay: OpenedReplay,
    stats: WriterStats,
    options: WalOptions,
  ) {
    this.logger = options.logger ?? silentLogger;
    this.pendingBytesMax = options.pendingBytesMax ?? walPendingBytesMax;
    this.messageBytesMax = Math.max(4096, Math.floor((options.segmentSizeBytes ?? Limits.walSegmentSizeBytes) / 8));
    this.stats = { ...stats, appends: 0, messages: 0 };
    this.metrics = options.metrics ? new WalMetrics(options.metrics) : undefined;
    const count = replay.entries.count;
    this.lastIndex = count > 0 ? replay.entries.numbers[2 * (count - 1)]! : replay.firstIndex - 1;
    this.port.on('message', (message: FromWriter) => this.handleMessage(message));
    this.worker.on('error', (err) => this.failAll(new Error(`wal writer crashed: ${err.message}`)));
    this.worker.on('exit', (code) => {
      // The exit event and the port are separate channels: the writer's last answers ('synced',
      // 'closed') may still wait on the port. Take them first, or a clean close looks like a crash
      // (and its late 'closed' would then answer a waiter already failed).
      for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
        this.handleMessage(m.message as FromWriter);
      }
      // After a clean close every waiter has been answered; anything else is a crash.
      if (!this.closing || this.appendWaitersHead < this.appendWaiters.length || this.otherWaiters.size > 0) {
        this.failAll(new Error(`wal writer exited with code ${code}`));
      }
    });
    this.setRef(false);
  }

  /** Starts the writer, which replays the directory (created if missing). Rejects with WalCorruptionError on corruption. */
  static open(dir: string, options: WalOptions = {}): Promise<{ wal: Wal; replay: WalReplay }> {
    const logger = (options.logger ?? silentLogger).child({ component: 'wal' });
    const segmentSizeBytes = options.segmentSizeBytes ?? Limits.walSegmentSizeBytes;
    assert(Number.isSafeInteger(segmentSizeBytes) && segmentSizeBytes >= 4096, () => `wal segmentSizeBytes ${segmentSizeBytes} must be >= 4096`);
    const { port1, port2 } = new MessageChannel();
    const workerData: WalWriterData = { dir, segmentSizeBytes, port: port2 };
    const worker = new Worker(writerPath, { workerData, transferList: [port2] });
    return new Promise((resolve, reject) => {
      // A writer that fails to open posts 'open-failed' and exits; its 'exit' event can arrive
      // before that message (they travel on different ports), so the port is read first.
      const onExit = (code: number) => {
        const posted = receiveMessageOnPort(port1);
        if (posted !== undefined) onAnswer(posted.message as FromWriter);
        else reject(new Error(`wal writer exited with code ${code} while opening ${dir}`));
      };
      const onError = (err: Error) => reject(new Error(`wal writer failed while opening ${dir}: ${err.message}`));
      worker.once('exit', onExit);
      worker.once('error', onError);
      port1.once('message', (message: FromWriter) => onAnswer(message));
      const onAnswer = (message: FromWriter) => {
        port1.removeAllListeners('message');
        worker.off('exit', onExit);
        worker.off('error', onError);
        if (message.kind === 'open-failed') {
          port1.close();
          void worker.terminate();
          const c = message.corruption;
          reject(c ? new WalCorruptionError(join(dir, c.file), c.offset, c.reason) : new Error(`wal open of ${dir} failed: ${message.message}`));
          return;
        }
        assert(message.kind === 'opened', () => `wal writer answered ${message.kind} to open`);
        const replay = message.replay;
        if (replay.torn) {
          logger.warn({ file: join(dir, replay.torn.file), offset: replay.torn.offset, reason: replay.torn.reason },
            'wal: torn tail truncated (a write cut by a crash; it was never acknowledged)');
        }
        logger.info({ dir, segments: replay.segments, entries: replay.entries.count, firstIndex: replay.firstIndex }, 'wal opened');
        const wal = new Wal(worker, port1, replay, message.stats, { ...options, logger });
        resolve({
          wal,
          replay: {
            entries: unpackEntries(replay.entries),
            hardState: replay.hardState,
            firstIndex: replay.firstIndex,
            tornTailTruncated: replay.torn !== undefined,
            snapshot: replay.snapshot,
          },
        });
      };
    });
  }

  /**
   * Resolves once the entries (contiguous, the first at most lastIndex + 1: a lower one
   * overwrites the log from there) and the hard state are durable. Calls resolve in call order.
   */
  append(entries: WalEntry[], hardState?: HardState): Promise<void> {
    return this.enqueue(entries, hardState, undefined);
  }

  /**
   * Hands this turn's appends to the writer now instead of at the end of the turn: for a caller
   * that has no more to append in this turn and wants the disk busy while it does other work.
   */
  flush(): void {
    if (this.turnScheduled) this.flushTurn();
  }

  /** Records that a snapshot covers the log up to marker.index: replay drops entries it covers. */
  appendSnapshotMarker(marker: SnapshotMarker): Promise<void> {
    // A snapshot received from the leader may be ahead of the whole log: entries continue after it.
    const result = this.enqueue([], undefined, marker);
    if (marker.index > this.lastIndex) this.lastIndex = marker.index;
    return result;
  }

  /** Deletes segments (oldest first, never the current one) whose entries are all <= index. */
  releaseTo(index: number): Promise<void> {
    assert(Number.isSafeInteger(index) && index >= 0, () => `wal releaseTo(${index}): not a safe index`);
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new KeyraftError('Stopped'));
    this.flushTurn(); // a release never overtakes appends made before it
    const seq = this.nextSeq++;
    return new Promise((resolve, reject) => {
      this.otherWaiters.set(seq, { resolve, reject });
      this.post({ kind: 'release', seq, index });
    });
  }

  /** Flushes appends already made, then stops the writer. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.flushTurn();
    const seq = this.nextSeq++;
    this.closing = new Promise<void>((resolve, reject) => {
      this.otherWaiters.set(seq, { resolve, reject });
      if (this.failure) {
        this.otherWaiters.delete(seq);
        void this.worker.terminate().then(() => resolve(), reject);
        return;
      }
      this.post({ kind: 'close', seq });
    }).then(async () => {
      this.port.close();
      await this.worker.terminate();
    });
    return this.closing;
  }

  private enqueue(entries: WalEntry[], hardState: HardState | undefined, marker: SnapshotMarker | undefined): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new KeyraftError('Stopped'));
    let bytes = 0;
    const first = entries[0];
    if (first) {
      assert(first.index >= 1 && first.index <= this.lastIndex + 1,
        () => `wal append starts at index ${first.index}, but the log ends at ${this.lastIndex}: a gap`);
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        assert(e.index === first.index + i, () => `wal append: entry ${i} has index ${e.index}, expected ${first.index + i}`);
        assert(Number.isSafeInteger(e.term) && e.term >= 0, () => `wal append: entry ${e.index} has term ${e.term}`);
        bytes += entryRecordBytes(e.data.length);
      }
      this.lastIndex = entries[entries.length - 1]!.index;
    }
    if (hardState) bytes += hardStateRecordBytes;
    if (marker) bytes += snapshotMarkerRecordBytes(marker);
    if (this.pendingBytes + bytes > this.pendingBytesMax) {
      return Promise.reject(new KeyraftError('TooManyRequests'));
    }
    this.pendingBytes += bytes;
    this.stats.appends++;
    return new Promise<void>((resolve, reject) => {
      this.turn.push({ entries, hardState, marker, bytes, resolve, reject });
      if (!this.turnScheduled) {
        this.turnScheduled = true;
        queueMicrotask(() => this.flushTurn());
      }
    });
  }

  /**
   * Encodes this turn's calls into one transferred buffer per message, split at
   * walBatchEntriesMax entries or messageBytesMax bytes (whole calls only).
   */
  private flushTurn(): void {
    this.turnScheduled = false;
    const calls = this.turn;
    if (calls.length === 0) return;
    this.turn = [];
    let start = 0;
    while (start < calls.length) {
      // Take calls up to the bounds; a single call over a bound goes alone.
      let end = start;
      let bytes = 0;
      let entries = 0;
      while (end < calls.length) {
        const call = calls[end]!;
        if (end > start && (entries + call.entries.length > Limits.walBatchEntriesMax || bytes + call.bytes > this.messageBytesMax)) break;
        bytes += call.bytes;
        entries += call.entries.length;
        end++;
      }
      const buffer = Buffer.allocUnsafeSlow(bytes);
      let at = 0;
      let records = 0;
      for (let i = start; i < end; i++) {
        const call = calls[i]!;
        for (const entry of call.entries) at = encodeEntryRecord(buffer, at, entry);
        records += call.entries.length;
        if (call.hardState) {
          at = encodeHardStateRecord(buffer, at, call.hardState);
          records++;
        }
        if (call.marker) {
          at = encodeSnapshotMarkerRecord(buffer, at, call.marker);
          records++;
        }
      }
      assert(at === bytes, () => `wal: encoded ${at} bytes, sized ${bytes}`);
      const seq = this.nextSeq++;
      for (let i = start; i < end; i++) {
        const call = calls[i]!;
        this.appendWaiters.push({ seq, bytes: call.bytes, resolve: call.resolve, reject: call.reject });
      }
      const arrayBuffer = buffer.buffer as ArrayBuffer;
      this.stats.messages++;
      this.post({ kind: 'append', seq, buffer: arrayBuffer, bytes, records }, [arrayBuffer]);
      start = end;
    }
  }

  private post(message: ToWriter, transfer: ArrayBuffer[] = []): void {
    this.setRef(true);
    this.port.postMessage(message, transfer);
  }

  private handleMessage(message: FromWriter): void {
    switch (message.kind) {
      case 'synced': {
        if (this.metrics) {
          for (const seconds of message.syncSeconds) this.metrics.fsyncSeconds.observe(seconds);
          this.metrics.writeBytes.inc(message.stats.bytesWritten - this.stats.bytesWritten);
        }
        Object.assign(this.stats, message.stats);
        const waiters = this.appendWaiters;
        let head = this.appendWaitersHead;
        while (head < waiters.length && waiters[head]!.seq <= message.seq) {
          const waiter = waiters[head++]!;
          this.pendingBytes -= waiter.bytes;
          waiter.resolve();
        }
        if (head === waiters.length) {
          this.appendWaiters = [];
          head = 0;
        }
        this.appendWaitersHead = head;
        break;
      }
      case 'released':
        Object.assign(this.stats, message.stats);
        if (message.deleted.length > 0) this.logger.info({ deleted: message.deleted }, 'wal segments released');
        this.settle(message.seq);
        break;
      case 'closed':
        Object.assign(this.stats, message.stats);
        this.settle(message.seq);
        break;
      case 'failed':
        this.failAll(new Error(`wal write failed: ${message.message}`));
        break;
      case 'opened':
      case 'open-failed':
        assert(false, `wal writer sent ${message.kind} after open`);
    }
    this.setRef(this.appendWaitersHead < this.appendWaiters.length || this.otherWaiters.size > 0);
  }

  private settle(seq: number): void {
    const waiter = this.otherWaiters.get(seq);
    assert(waiter, () => `wal writer answered unknown seq ${seq}`);
    this.otherWaiters.delete(seq);
    waiter.resolve();
  }

  private failAll(err: Error): void {
    if (!this.failure) this.logger.error({ err }, 'wal failed; every pending and later append is rejected');
    this.failure ??= err;
    const turn = this.turn;
    this.turn = [];
    for (const call of turn) call.reject(err);
    for (let i = this.appendWaitersHead; i < this.appendWaiters.length; i++) this.appendWaiters[i]!.reject(err);
    this.appendWaiters = [];
    this.appendWaitersHead = 0;
    for (const waiter of this.otherWaiters.values()) waiter.reject(err);
    this.otherWaiters.clear();
    this.setRef(false);
  }

  /** Keeps the process alive only while the writer owes an answer. */
  private setRef(ref: boolean): void {
    if (ref === this.refs) return;
    this.refs = ref;
    if (ref) {
      this.worker.ref();
      this.port.ref();
    } else {
      this.worker.unref();
      this.port.unref();
    }
  }
}

/** Rebuilds the replayed log (wal-protocol.ts PackedEntries); data are Buffer views, not copies. */
function unpackEntries(packed: PackedEntries): WalEntry[] {
  const { numbers, layout, buffers } = packed;
  const entries = new Array<WalEntry>(packed.count);
  for (let i = 0; i < packed.count; i++) {
    entries[i] = {
      index: numbers[2 * i]!,
      term: numbers[2 * i + 1]!,
      type: layout[4 * i]!,
      data: Buffer.from(buffers[layout[4 * i + 1]!]!, layout[4 * i + 2]!, layout[4 * i + 3]!),
    };
  }
  return entries;
}
