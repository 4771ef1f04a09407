import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

/**
 * etcd's snapshot trailer: Maintenance.Snapshot streams the bbolt file followed by the SHA-256 of
 * every byte before it (etcdserver/api/v3rpc/maintenance.go). bbolt files are whole pages, so a
 * file whose size is 32 past a multiple of 512 has a trailer; that is the test etcdctl's restore
 * uses (clientv3/snapshot/v3_snapshot.go), and this does the same: a file without a trailer is
 * refused unless the hash check is skipped (a db file copied out of a data dir has none).
 */

export const SNAPSHOT_TRAILER_BYTES = 32;

export type SnapshotFileErrorCode = 'MissingHash' | 'HashMismatch' | 'Empty';

export class SnapshotFileError extends Error {
  override name = 'SnapshotFileError';
  constructor(readonly code: SnapshotFileErrorCode, message: string) {
    super(message);
  }
}

export interface SnapshotTrailerCheck {
  /** Bytes of the bbolt database (the file without its trailer). */
  dbBytes: number;
  hasHash: boolean;
}

/** Reads the whole file once (streamed) to check its trailer; throws SnapshotFileError. */
export async function checkSnapshotTrailer(path: string, skipHashCheck: boolean): Promise<SnapshotTrailerCheck> {
  const size = (await stat(path)).size;
  if (size === 0) throw new SnapshotFileError('Empty', `snapshot ${path} is empty`);
  const hasHash = size % 512 === SNAPSHOT_TRAILER_BYTES;
  const dbBytes = hasHash ? size - SNAPSHOT_TRAILER_BYTES : size;
  if (!hasHash && !skipHashCheck) {
    throw new SnapshotFileError('MissingHash', `snapshot missing hash but --skip-hash-check=false (${path} is ${size} bytes: no SHA-256 trailer after whole pages)`);
  }
  if (hasHash && !skipHashCheck) {
    const hash = createHash('sha256');
    let trailer = Buffer.alloc(0);
    let position = 0;
    for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
      const bodyPart = piece.subarray(0, Math.max(0, Math.min(piece.length, dbBytes - position)));
      hash.update(bodyPart);
      if (bodyPart.length < piece.length) trailer = Buffer.concat([trailer, piece.subarray(bodyPart.length)]);
      position += piece.length;
    }
    const digest = hash.digest();
    if (!digest.equals(trailer)) {
      throw new SnapshotFileError('HashMismatch', `snapshot ${path}: expected sha256 ${trailer.toString('hex')} (its trailer), got ${digest.toString('hex')}`);
    }
  }
  return { dbBytes, hasHash };
}

/**
 * The bytes of the database file at `path` in chunks, followed by its SHA-256 trailer: what
 * Maintenance.Snapshot streams. The file is read as the consumer asks for chunks, never whole.
 */
export async function* snapshotStream(path: string, chunkBytes: number): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  // The file is read READ_BYTES at a time (one read and one hash update per MiB, not per chunk)
  // and handed out in views of chunkBytes.
  for await (const piece of createReadStream(path, { highWaterMark: Math.max(chunkBytes, READ_BYTES) }) as AsyncIterable<Buffer>) {
    hash.update(piece);
    for (let at = 0; at < piece.length; at += chunkBytes) yield piece.subarray(at, Math.min(piece.length, at + chunkBytes));
  }
  yield hash.digest();
}

const READ_BYTES = 1024 * 1024;
