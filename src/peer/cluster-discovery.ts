import type { ConnectionOptions } from 'node:tls';
import { dialPeer } from './peer-dialer.js';
import { FramedSocket } from './framed-socket.js';
import { parsePeerAddress } from './peer-address.js';
import { encodeHandshakeFrame, PROTOCOL_VERSION, StreamKind } from './peer-codec.js';

/**
 * Learns the id of an existing cluster from one of its members, for a member that joins it
 * (etcd's --initial-cluster-state existing, where etcd asks its peers for the cluster over HTTP).
 * It dials each peer URL in turn with a handshake naming cluster 0; the listener refuses it (no
 * member is in cluster 0) and its reply names the cluster it belongs to. Nothing else is
 * exchanged, and the refused connection is closed.
 */
export async function discoverClusterId(
  peerUrls: readonly string[], memberId: bigint, tls: ConnectionOptions | undefined, timeoutMs = 5000,
): Promise<bigint> {
  const reasons: string[] = [];
  for (const url of peerUrls) {
    try {
      return await askCluster(url, memberId, tls, timeoutMs);
    } catch (err) {
      reasons.push(`${url}: ${(err as Error).message}`);
    }
  }
  throw new Error(`could not learn the cluster id from any peer (${reasons.join('; ')})`);
}

function askCluster(url: string, memberId: bigint, tls: ConnectionOptions | undefined, timeoutMs: number): Promise<bigint> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null, id?: bigint) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      connection.destroy('discovery done');
      if (err) reject(err);
      else resolve(id!);
    };
    const connection = new FramedSocket(dialPeer(parsePeerAddress(url), tls), 1024, {
      onEnvelope: (envelope) => {
        if (envelope.kind !== 'handshakeReply') return finish(new Error(`unexpected ${envelope.kind} frame`));
        if (envelope.reply.clusterId === 0n) return finish(new Error('the peer did not name its cluster'));
        finish(null, envelope.reply.clusterId);
      },
      onFrameError: (_reason, message) => finish(new Error(message)),
      onClose: (reason) => finish(new Error(reason)),
    });
    const timer = setTimeout(() => finish(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    connection.socket.write(encodeHandshakeFrame({ clusterId: 0n, fromMemberId: memberId, toMemberId: 0n, protocolVersion: PROTOCOL_VERSION, stream: StreamKind.Message }));
  });
}
