import { createHash, type Hash } from 'node:crypto';
import type { SnapshotChunk } from './peer-codec.js';
import type { ReceivedSnapshot } from './transport-context.js';

/**
 * One inbound snapshot being put together from its chunks. Chunks must come in order, from one
 * transfer (one snapshot_id), within snapshotBytesMax; the last chunk names the total size and
 * the SHA-256 over all data, and the snapshot is handed up only if both match what arrived.
 * Hashing is incremental, one chunk at a time as it arrives, so no single step is proportional
 * to the snapshot's size.
 */
export class SnapshotAssembly {
  private snapshotId: bigint | null = null;
  private metadata: Uint8Array = new Uint8Array(0);
  private readonly chunks: Uint8Array[] = [];
  private sizeBytes = 0;
  private readonly hash: Hash = createHash('sha256');

  constructor(private readonly snapshotBytesMax: number) {}

  get receivedBytes(): number {
    return this.sizeBytes;
  }

  /** Adds a chunk. Returns the verified snapshot after the last chunk, or throws SnapshotRejected. */
  add(chunk: SnapshotChunk): ReceivedSnapshot | null {
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
    if (chunk.data.length > 0) {
      this.chunks.push(chunk.data);
      this.sizeBytes += chunk.data.length;
      this.hash.update(chunk.data);
    }
    if (!chunk.last) return null;
    if (chunk.totalBytes !== this.sizeBytes) {
      throw new SnapshotRejected(`snapshot size mismatch: sender says ${chunk.totalBytes} bytes, received ${this.sizeBytes}`);
    }
    const digest = this.hash.digest();
    if (chunk.sha256.length !== digest.length || !digest.equals(chunk.sha256)) {
      throw new SnapshotRejected(`snapshot checksum mismatch: sender sha256 ${Buffer.from(chunk.sha256).toString('hex')}, received data hashes to ${digest.toString('hex')}`);
    }
    return { snapshotId: this.snapshotId, metadata: this.metadata, chunks: this.chunks, sizeBytes: this.sizeBytes };
  }
}

/** An inbound snapshot that must not be applied; the message says why. */
export class SnapshotRejected extends Error {
  override name = 'SnapshotRejected';
}
