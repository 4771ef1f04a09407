/**
 * The bounds the peer transport enforces. They belong with the rest in platform/limits.ts; they
 * live here until that file is opened to this layer (platform/ is owned elsewhere). Every one can
 * be overridden per transport through PeerTransportOptions.limits (tests shrink them).
 */
export interface PeerLimits {
  /**
   * Largest frame payload accepted from an authenticated peer. Raft appends are capped by the
   * member's max-size-per-message (1 MiB in etcd) and snapshot chunks by snapshotChunkBytes, so
   * 16 MiB leaves room without letting one peer make us buffer without bound.
   */
  frameBytesMax: number;
  /**
   * Largest frame accepted before the handshake. A Handshake encodes in < 64 bytes; anything
   * bigger from an unauthenticated dialer is refused before we buffer it.
   */
  handshakeFrameBytesMax: number;
  /** Open inbound connections (authenticated or not); more are refused by the listener. */
  inboundConnectionsMax: number;
  /**
   * Inbound connections still waiting for their handshake. A new one past this closes the OLDEST
   * waiting one: a real peer sends its handshake at once and is through in a round trip, so a
   * crowd of idle or trickling dialers (each held up to handshakeTimeoutMs) can no longer fill
   * the listener and keep real peers out, as it could when only inboundConnectionsMax applied.
   */
  handshakesPendingMax: number;
  /** Messages queued per peer while its connection is being set up or its socket is full. */
  queueMessagesMax: number;
  /** Bytes queued per peer, the same bound in bytes (a few large appends fill it first). */
  queueBytesMax: number;
  /** A dialer that has not completed its handshake by then is disconnected. */
  handshakeTimeoutMs: number;
  /** Reconnect backoff: first delay, cap, doubling in between, with jitter. */
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  /** Ping period on each message stream; feeds the round-trip metric and detects dead links. */
  pingIntervalMs: number;
  /** Pings unanswered for this long mark the connection dead (half-open TCP on a bad network). */
  pingTimeoutMs: number;
  /** Snapshot data per SnapshotChunk frame. */
  snapshotChunkBytes: number;
  /** Largest snapshot a receiver buffers; a bigger transfer is refused and reported. */
  snapshotBytesMax: number;
  /** How long a snapshot sender waits for the receiver's verdict after the last chunk. */
  snapshotAckTimeoutMs: number;
}

export const defaultPeerLimits: PeerLimits = {
  frameBytesMax: 16 * 1024 * 1024,
  handshakeFrameBytesMax: 1024,
  // A member has a few peers with two streams each; the rest is headroom for redials in flight.
  inboundConnectionsMax: 1024,
  handshakesPendingMax: 128,
  // etcd's rafthttp streamBufSize: 4096 messages per peer.
  queueMessagesMax: 4096,
  queueBytesMax: 64 * 1024 * 1024,
  handshakeTimeoutMs: 5_000,
  reconnectBaseMs: 50,
  reconnectMaxMs: 5_000,
  pingIntervalMs: 1_000,
  pingTimeoutMs: 10_000,
  snapshotChunkBytes: 1024 * 1024,
  snapshotBytesMax: 8 * 1024 * 1024 * 1024,
  snapshotAckTimeoutMs: 60_000,
};
