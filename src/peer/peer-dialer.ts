import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { PeerAddress } from './peer-address.js';

/**
 * Opens a connection to a peer, TLS when the transport has a TLS context. Frames written before
 * the connection is up are buffered by node and sent once it is (TLS: after the TLS handshake).
 * Nagle is off: the transport already coalesces, and a heartbeat must not wait for an ack.
 */
export function dialPeer(address: PeerAddress, tls: ConnectionOptions | undefined): Socket {
  const socket = tls
    ? tlsConnect({ ...tls, host: address.host, port: address.port, servername: isIP(address.host) ? undefined : address.host })
    : netConnect({ host: address.host, port: address.port });
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 30_000);
  return socket;
}
