/**
 * Expected failures of the peer transport, with stable codes. They stay inside the cluster (no
 * client sees them), so they are not in platform/errors.ts's etcd table.
 */
export type PeerErrorCode = 'InvalidAddress' | 'UnknownPeer' | 'Closed' | 'Unreachable' | 'HandshakeRefused' | 'SnapshotFailed';

export class PeerError extends Error {
  override name = 'PeerError';
  constructor(readonly code: PeerErrorCode, message: string) {
    super(message);
  }
}
