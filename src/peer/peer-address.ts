import { PeerError } from './peer-error.js';

/**
 * Where a peer listens. Accepts what etcd's flags carry (a peer URL, "https://10.0.0.2:2380")
 * and the bare "host:port" form; IPv6 hosts in brackets ("[::1]:2380").
 */
export interface PeerAddress {
  host: string;
  port: number;
}

export function parsePeerAddress(text: string): PeerAddress {
  const hostPort = text.includes('://') ? new URL(text).host : text;
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(hostPort);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port > 0 && port < 65536)) throw new PeerError('InvalidAddress', `peer address must be host:port or a URL with a port, got "${text}"`);
  return { host: (match[1] ?? match[2])!, port };
}

export function formatPeerAddress(a: PeerAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
