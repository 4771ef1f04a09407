import { SUPPORTED_PROTOCOL_VERSIONS, type Handshake } from './peer-codec.js';

/** Why a listener refuses a dialer's handshake: a stable code for the metric, a sentence for logs. */
export interface HandshakeRefusal {
  reason: 'cluster_mismatch' | 'wrong_target' | 'unknown_member' | 'unsupported_version';
  message: string;
}

export interface LocalIdentity {
  clusterId: bigint;
  memberId: bigint;
  isKnownPeer(id: bigint): boolean;
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
  if (h.fromMemberId === local.memberId || !local.isKnownPeer(h.fromMemberId)) {
    return { reason: 'unknown_member', message: `member ${hex(h.fromMemberId)} is not a known peer of this member` };
  }
  return null;
}
