import { readFile } from 'node:fs/promises';
import type { ConnectionOptions, TlsOptions } from 'node:tls';

/** Peer TLS, as etcd's --peer-cert-file, --peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth. */
export interface PeerTlsOptions {
  certFile: string;
  keyFile: string;
  /** CA bundle that signs peers' certificates; without it, the system roots. */
  trustedCaFile?: string;
  /** Listener demands and verifies a client certificate from every dialer (mutual TLS). */
  clientCertAuth: boolean;
}

export interface PeerTlsContext {
  server: TlsOptions;
  /** The dialer always verifies the listener's certificate and presents its own. */
  client: ConnectionOptions;
}

/** Reads the files once, at start-up (async: the main thread never blocks on fs). */
export async function loadPeerTls(options: PeerTlsOptions): Promise<PeerTlsContext> {
  const [cert, key, ca] = await Promise.all([
    readFile(options.certFile),
    readFile(options.keyFile),
    options.trustedCaFile ? readFile(options.trustedCaFile) : Promise.resolve(undefined),
  ]);
  return {
    server: {
      cert, key, ca,
      requestCert: options.clientCertAuth,
      rejectUnauthorized: options.clientCertAuth,
      minVersion: 'TLSv1.2',
    },
    client: { cert, key, ca, rejectUnauthorized: true, minVersion: 'TLSv1.2' },
  };
}
