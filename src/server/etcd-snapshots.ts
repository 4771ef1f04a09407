import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../platform/logger.js';
import type { Backend } from '../storage/backend.js';
import { SNAPSHOT_TRAILER_BYTES, snapshotStream } from '../storage/bbolt/snapshot-trailer.js';
import { writeEtcdSnapshotFile, type EtcdSnapshotWriteOptions } from './etcd-snapshot-writer.js';

/**
 * Maintenance.Snapshot's source: the member's state at one revision as an etcd snapshot
 * (etcd-snapshot-writer.ts), written to a temporary file in data-dir/member/snap and streamed from
 * it with etcd's SHA-256 trailer, as the client takes the chunks. The file is the point of
 * consistency (one LevelDB snapshot, written out at disk speed, so a slow client does not hold a
 * LevelDB snapshot and its memtables for the whole download) and bounds memory to a chunk. It is
 * removed when the stream closes; a crash leaves a *.tmp that StateImages.open() removes at the
 * next start.
 */

/** etcd's snapshotSendBufferSize: the blob of each SnapshotResponse. */
export const SNAPSHOT_CHUNK_BYTES = 32 * 1024;

export interface EtcdSnapshotStream {
  /** The revision the snapshot holds. */
  readonly revision: number;
  /** Bytes the stream carries: the database and the 32-byte trailer. */
  readonly totalBytes: number;
  /** The chunks (SNAPSHOT_CHUNK_BYTES each but the last ones), then the trailer as its own chunk. */
  readonly chunks: AsyncIterator<Buffer>;
  /** Removes the file; call once, when the stream ends or the client goes away. */
  close(): Promise<void>;
}

let sequence = 0;

export async function openEtcdSnapshot(backend: Backend, snapDir: string, options: EtcdSnapshotWriteOptions, logger: Logger): Promise<EtcdSnapshotStream> {
  const path = join(snapDir, `etcd-snapshot-${process.pid}-${++sequence}.tmp`);
  const started = performance.now();
  let written;
  try {
    written = await writeEtcdSnapshotFile(backend, path, options);
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
  const size = (await stat(path)).size;
  logger.info({ revision: written.revision, records: written.records, sizeBytes: size, ms: Math.round(performance.now() - started) }, 'wrote etcd-format snapshot; streaming it');
  const iterator = snapshotStream(path, SNAPSHOT_CHUNK_BYTES);
  let closed = false;
  return {
    revision: written.revision,
    totalBytes: size + SNAPSHOT_TRAILER_BYTES,
    chunks: iterator,
    async close() {
      if (closed) return;
      closed = true;
      await iterator.return(undefined);
      await rm(path, { force: true });
    },
  };
}
