import { createHash, randomBytes, type Hash } from 'node:crypto';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { SnapshotChunk } from './peer-codec.js';
import type { ReceivedSnapshot } from './transport-context.js';

/**
 * One inbound snapshot being put together from its chunks. Chunks must come in order, from one
 * transfer (one snapshot_id), within snapshotBytesMax; the last chunk names the total size and
 * the SHA-256 over all data, and the snapshot is handed up only if both match what arrived.
 * Hashing is incremental, one chunk at a time as it arrives, so no single step is proportional
 * to the snapshot's size.
 *
 * Where the bytes go: with a directory (the member's snap dir), each chunk is appended to a
 * temporary file there as it arrives, so a snapshot is never whole in memory; writes run in
 * order, one at a time, and `pendingBytes` lets the connection pause its socket while the disk
 * is behind. finish() waits for the writes and fsyncs, and the verified file is handed up by
 * path; a refused or cut-short transfer removes its file (discard()). Without a directory the
 * chunks are kept in memory (tests, and members that take no large snapshots).
 */
export class SnapshotAssembly {
  private snapshotId: bigint | null = null;
  private metadata: Uint8Array = new Uint8Array(0);
  private readonly chunks: Uint8Array[] = [];
  private sizeBytes = 0;
  private readonly hash: Hash = createHash('sha256');
  private verified = false;
  // File mode.
  private readonly path: string | null;
  private file: FileHandle | null = null;
  /** The chain of file writes; each starts after the previous one. */
  private writing: Promise<void> = Promise.resolve();
  private writeError: Error | null = null;
  private unwritten = 0;
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly snapshotBytesMax: number, private readonly dir?: string) {
    this.path = dir === undefined ? null : join(dir, `incoming-${randomBytes(6).toString('hex')}.part`);
    if (this.path !== null) {
      const path = this.path;
      this.writing = mkdir(dir!, { recursive: true })
        .then(() => open(path, 'wx'))
        .then((fh) => { this.file = fh; })
        .catch((err: Error) => { this.writeError = err; });
    }
  }

  get receivedBytes(): number {
    return this.sizeBytes;
  }

  /** Bytes received but not yet written to the file. */
  get pendingBytes(): number {
    return this.unwritten;
  }

  /** Resolves once pendingBytes is 0 (or a write failed). */
  drained(): Promise<void> {
    if (this.unwritten === 0 || this.writeError !== null) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Adds a chunk. Returns true after the last chunk, once size and checksum matched (then call
   * finish()); throws SnapshotRejected if the transfer is out of order, too large or corrupt.
   */
  add(chunk: SnapshotChunk): boolean {
    if (this.snapshotId === null) {
      this.snapshotId = chunk.snapshotId;
      this.metadata = chunk.metadata;
    } else if (chunk.snapshotId !== this.snapshotId) {
      throw new SnapshotRejected(`chunk of snapshot ${chunk.snapshotId} inside transfer of snapshot ${this.snapshotId}`);
    }
    if (chunk.offset !== this.sizeBytes) {
      throw new SnapshotRejected(`chunk at offset ${chunk.offset}, expected ${this.sizeBytes}`);
    }
    if (this.sizeBytes + chunk.data.length > this.snapshotBytesMax) {
      throw new SnapshotRejected(`snapshot exceeds the ${this.snapshotBytesMax}-byte limit`);
    }
    if (this.writeError !== null) throw new SnapshotRejected(`writing the snapshot file failed: ${this.writeError.message}`);
    if (chunk.data.length > 0) {
      this.sizeBytes += chunk.data.length;
      this.hash.update(chunk.data);
      if (this.path === null) this.chunks.push(chunk.data);
      else this.append(chunk.data);
    }
    if (!chunk.last) return false;
    if (chunk.totalBytes !== this.sizeBytes) {
      throw new SnapshotRejected(`snapshot size mismatch: sender says ${chunk.totalBytes} bytes, received ${this.sizeBytes}`);
    }
    const digest = this.hash.digest();
    if (chunk.sha256.length !== digest.length || !digest.equals(chunk.sha256)) {
      throw new SnapshotRejected(`snapshot checksum mismatch: sender sha256 ${Buffer.from(chunk.sha256).toString('hex')}, received data hashes to ${digest.toString('hex')}`);
    }
    this.verified = true;
    return true;
  }

  /** After add() returned true: the snapshot, its file written and fsync'd. Throws SnapshotRejected if the disk failed. */
  async finish(): Promise<ReceivedSnapshot> {
    if (!this.verified || this.snapshotId === null) throw new Error('SnapshotAssembly.finish before the last chunk verified');
    const base = { snapshotId: this.snapshotId, metadata: this.metadata, sizeBytes: this.sizeBytes };
    if (this.path === null) return { ...base, chunks: this.chunks, path: null };
    await this.writing;
    try {
      if (this.writeError !== null) throw this.writeError;
      await this.file!.sync();
      await this.file!.close();
      this.file = null;
    } catch (err) {
      await this.discard();
      throw new SnapshotRejected(`writing the snapshot file failed: ${(err as Error).message}`);
    }
    return { ...base, chunks: [], path: this.path };
  }

  /** Drops a transfer that will not be handed up: closes and removes its file, if any. */
  async discard(): Promise<void> {
    if (this.path === null) return;
    await this.writing;
    const file = this.file;
    this.file = null;
    await file?.close().catch(() => undefined);
    await rm(this.path, { force: true });
  }

  private append(data: Uint8Array): void {
    this.unwritten += data.length;
    this.writing = this.writing.then(async () => {
      try {
        if (this.writeError === null) {
          let at = 0;
          while (at < data.length) at += (await this.file!.write(data, at, data.length - at)).bytesWritten;
        }
      } catch (err) {
        this.writeError = err as Error;
      }
      this.unwritten -= data.length;
      if (this.unwritten === 0 || this.writeError !== null) {
        const waiters = this.drainWaiters;
        this.drainWaiters = [];
        for (const resolve of waiters) resolve();
      }
    });
  }
}

/** An inbound snapshot that must not be applied; the message says why. */
export class SnapshotRejected extends Error {
  override name = 'SnapshotRejected';
}
