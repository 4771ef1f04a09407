/** Certificates for peer TLS tests, made with openssl at test time in a temp dir, never committed. */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { PeerTlsOptions } from '../../src/peer/peer-tls.js';

const run = promisify(execFile);

export class TestCerts {
  constructor(readonly dir: string) {}

  private async openssl(...args: string[]): Promise<void> {
    await run('openssl', args, { cwd: this.dir });
  }

  /** A self-signed CA named `name`. */
  async makeCa(name: string): Promise<void> {
    await this.openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`,
      '-keyout', `${name}.key`, '-out', `${name}.crt`);
  }

  /** A certificate `ca` signs for `name`, valid for 127.0.0.1 and localhost, as server and client. */
  async makeCert(name: string, ca: string): Promise<void> {
    await writeFile(join(this.dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
    await this.openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
    await this.openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
      '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
  }

  tlsFor(name: string, ca = 'ca', clientCertAuth = true): PeerTlsOptions {
    return { certFile: join(this.dir, `${name}.crt`), keyFile: join(this.dir, `${name}.key`), trustedCaFile: join(this.dir, `${ca}.crt`), clientCertAuth };
  }
}
