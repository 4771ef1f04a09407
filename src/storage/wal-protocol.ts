import type { MessagePort } from 'node:worker_threads';
import type { HardState, SnapshotMarker } from './wal-record.js';

/**
 * Messages between the WAL facade (main thread, wal.ts) and the WAL writer (worker thread,
 * workers/wal-writer.ts), over one MessagePort. The main thread sends each tick's appends as one
 * message whose buffer holds encoded records (crc left 0) and is transferred, not copied. The
 * writer drains every message that is waiting (receiveMessageOnPort), writes all waiting appends
 * as one batch with one writev + one fdatasync, and answers with the highest seq now durable.
 * Messages are handled in seq order, so a release never overtakes an append sent before it.
 */

export interface WalWriterData {
  dir: string;
  segmentSizeBytes: number;
  port: MessagePort;
}

export type ToWriter =
  | { kind: 'append'; seq: number; buffer: ArrayBuffer; bytes: number; records: number }
  | { kind: 'release'; seq: number; index: number }
  | { kind: 'close'; seq: number };

export interface WriterStats {
  /** fdatasync calls on segment files, including the one per segment creation. */
  syncs: number;
  /** Group-commit writes of appended records (one writev each). */
  batches: number;
  bytesWritten: number;
  syncMicrosTotal: number;
  syncMicrosMax: number;
  segmentsCreated: number;
  segmentsReleased: number;
}

/**
 * The replayed log, packed so the main thread rebuilds it without a structured clone of one
 * object per entry (200k entries: ~0.5 s of main-thread time as objects). Entry i is
 * { index: numbers[2i], term: numbers[2i+1], type: layout[4i],
 *   data: bytes of buffers[layout[4i+1]] at offset layout[4i+2], length layout[4i+3] }.
 * All ArrayBuffers are transferred.
 */
export interface PackedEntries {
  count: number;
  numbers: Float64Array;
  layout: Uint32Array;
  buffers: ArrayBuffer[];
}

export interface OpenedReplay {
  entries: PackedEntries;
  hardState: HardState | undefined;
  snapshot: SnapshotMarker | undefined;
  firstIndex: number;
  torn: { file: string; offset: number; reason: string } | undefined;
  segments: number;
}

export type FromWriter =
  | { kind: 'opened'; replay: OpenedReplay; stats: WriterStats }
  | { kind: 'open-failed'; message: string; corruption: { file: string; offset: number; reason: string } | undefined }
  /** syncSeconds: each fdatasync since the previous answer (for the fsync histogram). */
  | { kind: 'synced'; seq: number; stats: WriterStats; syncSeconds: number[] }
  | { kind: 'released'; seq: number; deleted: string[]; stats: WriterStats }
  | { kind: 'closed'; seq: number; stats: WriterStats }
  | { kind: 'failed'; message: string };
