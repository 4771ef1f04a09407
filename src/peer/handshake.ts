import { SUPPORTED_PROTOCOL_VERSIONS, type Handshake } from './peer-codec.js';

/** Why a listener refuses a dialer's handshake: a stable code for the metric, a sentence for logs. */
export interface HandshakeRefusal {
  reason: 'cluster_mismatch' | 'wrong_target' | 'unknown_member' | 'removed_member' | 'unsupported_version';
  message: string;
}

/**
 * The refusal text a removed member gets (etcd's ErrMemberRemoved): the dialer recognizes it and
 * tells its member, which stops, as etcd's removed member does.
 */
export const REMOVED_MEMBER_REASON = 'the member has been permanently removed from the cluster';

export interface LocalIdentity {
  clusterId: bigint;
  memberId: bigint;
  isKnownPeer(id: bigint): boolean;
  /** A member removed from the cluster (it may not know yet). */
  isRemovedPeer(id: bigint): boolean;
}

const hex = (id: bigint) => id.toString(16);

/**
 * Checks the first frame of an inbound connection against who we are. Order matters for the
 * message: a dialer from another cluster is told so even if it also got our id wrong.
 */
export function checkHandshake(h: Handshake, local: LocalIdentity): HandshakeRefusal | null {
  if (!SUPPORTED_PROTOCOL_VERSIONS.has(h.protocolVersion)) {
    return { reason: 'unsupported_version', message: `unsupported peer protocol version ${h.protocolVersion} (supported: ${[...SUPPORTED_PROTOCOL_VERSIONS].join(', ')})` };
  }
  if (h.clusterId !== local.clusterId) {
    return { reason: 'cluster_mismatch', message: `cluster id mismatch: dialer is in cluster ${hex(h.clusterId)}, this member is in ${hex(local.clusterId)}` };
  }
  if (h.toMemberId !== local.memberId) {
    return { reason: 'wrong_target', message: `dialer wanted member ${hex(h.toMemberId)}, this is member ${hex(local.memberId)}` };
  }
  if (local.isRemovedPeer(h.fromMemberId)) {
    return { reason: 'removed_member', message: REMOVED_MEMBER_REASON };
  }
  if (h.fromMemberId === local.memberId || !local.isKnownPeer(h.fromMemberId)) {
    return { reason: 'unknown_member', message: `member ${hex(h.fromMemberId)} is not a known peer of this member` };
  }
  return null;
}
