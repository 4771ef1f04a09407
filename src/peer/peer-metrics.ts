import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The transport's metrics, registered on the registry the transport is given (tests pass a fresh
 * one each, so transports never collide). Names and labels follow etcd's rafthttp
 * (etcdserver/api/rafthttp/metrics.go) where etcd has the metric; member ids are labelled in hex
 * as etcd's types.ID prints them. keyraft_* metrics are our own.
 */
export class PeerMetrics {
  readonly sentBytes: Counter<'To'>;
  readonly receivedBytes: Counter<'From'>;
  readonly sentFailures: Counter<'To'>;
  readonly receivedFailures: Counter<'From'>;
  readonly roundTripSeconds: Histogram<'To'>;
  readonly activePeers: Gauge<'Local' | 'Remote'>;
  readonly snapshotSendSuccess: Counter<'To'>;
  readonly snapshotSendFailures: Counter<'To'>;
  readonly snapshotReceiveSuccess: Counter<'From'>;
  readonly snapshotReceiveFailures: Counter<'From'>;
  readonly droppedMessages: Counter<'To' | 'reason'>;
  readonly frameErrors: Counter<'reason'>;
  readonly handshakeRefusals: Counter<'side' | 'reason'>;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.sentBytes = new Counter({ name: 'etcd_network_peer_sent_bytes_total', help: 'The total number of bytes sent to peers.', labelNames: ['To'], registers });
    this.receivedBytes = new Counter({ name: 'etcd_network_peer_received_bytes_total', help: 'The total number of bytes received from peers.', labelNames: ['From'], registers });
    this.sentFailures = new Counter({ name: 'etcd_network_peer_sent_failures_total', help: 'The total number of send failures from peers.', labelNames: ['To'], registers });
    this.receivedFailures = new Counter({ name: 'etcd_network_peer_received_failures_total', help: 'The total number of receive failures from peers.', labelNames: ['From'], registers });
    this.roundTripSeconds = new Histogram({
      name: 'etcd_network_peer_round_trip_time_seconds', help: 'Round-Trip-Time histogram between peers',
      labelNames: ['To'], registers,
      // etcd: prometheus.ExponentialBuckets(0.0001, 2, 14): 100 µs to 0.8 s.
      buckets: Array.from({ length: 14 }, (_, i) => 0.0001 * 2 ** i),
    });
    this.activePeers = new Gauge({ name: 'etcd_network_active_peers', help: 'The current number of active peer connections.', labelNames: ['Local', 'Remote'], registers });
    this.snapshotSendSuccess = new Counter({ name: 'etcd_network_snapshot_send_success', help: 'Total number of successful snapshot sends', labelNames: ['To'], registers });
    this.snapshotSendFailures = new Counter({ name: 'etcd_network_snapshot_send_failures', help: 'Total number of snapshot send failures', labelNames: ['To'], registers });
    this.snapshotReceiveSuccess = new Counter({ name: 'etcd_network_snapshot_receive_success', help: 'Total number of successful snapshot receives', labelNames: ['From'], registers });
    this.snapshotReceiveFailures = new Counter({ name: 'etcd_network_snapshot_receive_failures', help: 'Total number of snapshot receive failures', labelNames: ['From'], registers });
    this.droppedMessages = new Counter({ name: 'keyraft_peer_dropped_messages_total', help: 'Raft messages dropped before reaching the socket, by reason.', labelNames: ['To', 'reason'], registers });
    this.frameErrors = new Counter({ name: 'keyraft_peer_frame_errors_total', help: 'Peer connections closed for a bad frame, by reason.', labelNames: ['reason'], registers });
    this.handshakeRefusals = new Counter({ name: 'keyraft_peer_handshake_refusals_total', help: 'Peer handshakes refused, by side (listener refused a dialer, or dialer was refused) and reason.', labelNames: ['side', 'reason'], registers });
  }
}

/** A member id as etcd labels and logs it: lower-case hex. */
export function idLabel(id: bigint): string {
  return id.toString(16);
}
