import type { ConnectionOptions } from 'node:tls';
import type { Logger } from '../platform/logger.js';
import type { PeerLimits } from './peer-limits.js';
import type { PeerMetrics } from './peer-metrics.js';
import type { SampledWarnings } from './sampled-warnings.js';

/** A snapshot that arrived whole and matched its checksum. */
export interface ReceivedSnapshot {
  snapshotId: bigint;
  /** Opaque bytes the sender passed along (the member's raftpb snapshot metadata). */
  metadata: Uint8Array;
  /** The snapshot's bytes in order, as they arrived, when the transport has no snapshot dir (else empty). */
  chunks: Uint8Array[];
  /**
   * With a snapshot dir: the fsync'd file holding the snapshot's bytes. The handler owns it from
   * the call on (it renames or removes it); null when the bytes are in `chunks`.
   */
  path: string | null;
  sizeBytes: number;
}

/** What the transport hands up to the member. Called on the main thread, synchronously. */
export interface PeerHandler {
  /** Raft messages from one peer, in the order that peer sent them. Opaque bytes. */
  onMessages(from: bigint, messages: Uint8Array[]): void;
  /** A verified snapshot. Without this handler, inbound snapshots are refused. */
  onSnapshot?(from: bigint, snapshot: ReceivedSnapshot): void;
  /** An inbound snapshot transfer that failed (bad checksum, cut short, too large); not applied. */
  onSnapshotFailed?(from: bigint, reason: string): void;
  /** Our connection to a peer failed (Raft's ReportUnreachable). */
  onPeerUnreachable?(to: bigint): void;
  /** A peer refused us because this member was removed from the cluster. */
  onRemovedFromCluster?(by: bigint): void;
}

/** What the transport's parts share: identity, bounds, metrics, logs, TLS for dialing. */
export interface TransportContext {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  readonly limits: PeerLimits;
  readonly metrics: PeerMetrics;
  readonly logger: Logger;
  /** Warnings about dialers that failed before or at the handshake: rate-limited (anyone can cause them). */
  readonly refusalWarnings: SampledWarnings;
  readonly handler: PeerHandler;
  readonly tlsClient: ConnectionOptions | undefined;
  /** Where inbound snapshots are written as they arrive; undefined keeps them in memory. */
  readonly snapshotDir: string | undefined;
}
