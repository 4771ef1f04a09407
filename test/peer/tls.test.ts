/** Peer traffic over mutual TLS; certificates are made with openssl at test time, never committed. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerTlsOptions } from '../../src/peer/peer-tls.js';
import type { PeerTransport } from '../../src/peer/peer-transport.js';
import { TestCerts } from './test-certs.js';
import { Inbox, metricValue, RawPeer, startTransport, waitFor, waitForAsync } from './peer-test-helpers.js';

let dir = '';
let certs: TestCerts;

function tlsFor(name: string, ca = 'ca', clientCertAuth = true): PeerTlsOptions {
  return certs.tlsFor(name, ca, clientCertAuth);
}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyraft-peer-tls-'));
  certs = new TestCerts(dir);
  await Promise.all([certs.makeCa('ca'), certs.makeCa('rogue-ca')]);
  await Promise.all([certs.makeCert('m1', 'ca'), certs.makeCert('m2', 'ca'), certs.makeCert('rogue', 'rogue-ca')]);
});

test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function closeAll(...ts: (PeerTransport | undefined)[]) {
  for (const t of ts) await t?.close();
}

test('mutual TLS with good certificates: messages and snapshots flow both ways', async () => {
  const inbox1 = new Inbox();
  const inbox2 = new Inbox();
  const t1 = await startTransport(1n, inbox1, { tls: tlsFor('m1') });
  const t2 = await startTransport(2n, inbox2, { tls: tlsFor('m2') });
  try {
    t1.addPeer(2n, `https://127.0.0.1:${t2.address.port}`);
    t2.addPeer(1n, `https://127.0.0.1:${t1.address.port}`);
    t1.send(2n, [Buffer.from('over'), Buffer.from('tls')]);
    t2.send(1n, Buffer.from('back'));
    await waitFor(() => inbox2.messages.length === 2 && inbox1.messages.length === 1, 'delivered over TLS');
    assert.equal(inbox2.messages.map((m) => m.message.toString()), ['over', 'tls']);
    await t1.sendSnapshot(2n, Buffer.alloc(100_000, 3));
    assert.is(inbox2.snapshots[0]!.snapshot.sizeBytes, 100_000);
  } finally {
    await closeAll(t1, t2);
  }
});

test('listener with client-cert-auth refuses a dialer whose certificate another CA signed', async () => {
  const inbox1 = new Inbox();
  const inbox2 = new Inbox();
  // The rogue dialer trusts our CA (it can verify the listener) but its own cert is not ours.
  const rogue = await startTransport(1n, inbox1, { tls: tlsFor('rogue', 'ca'), limits: { reconnectBaseMs: 10, reconnectMaxMs: 20 } });
  const t2 = await startTransport(2n, inbox2, { tls: tlsFor('m2') });
  try {
    rogue.addPeer(2n, `127.0.0.1:${t2.address.port}`);
    t2.addPeer(1n, `127.0.0.1:${rogue.address.port}`);
    rogue.send(2n, Buffer.from('let me in'));
    await waitFor(() => inbox1.unreachable.length > 0, 'dialer failed');
    await waitForAsync(async () => (await metricValue(t2, 'keyraft_peer_handshake_refusals_total', { reason: 'tls' })) > 0, 'listener refused at TLS');
    assert.not.ok(rogue.isConnected(2n));
    assert.is(inbox2.messages.length, 0);
  } finally {
    await closeAll(rogue, t2);
  }
});

test('dialer refuses a listener whose certificate it does not trust', async () => {
  const inbox1 = new Inbox();
  const inbox2 = new Inbox();
  const t1 = await startTransport(1n, inbox1, { tls: tlsFor('m1') });
  const impostor = await startTransport(2n, inbox2, { tls: tlsFor('rogue', 'rogue-ca', false) });
  try {
    t1.addPeer(2n, `127.0.0.1:${impostor.address.port}`);
    impostor.addPeer(1n, `127.0.0.1:${t1.address.port}`);
    t1.send(2n, Buffer.from('secret'));
    await waitFor(() => inbox1.unreachable.length > 0, 'dialer gave up');
    assert.not.ok(t1.isConnected(2n));
    assert.is(inbox2.messages.length, 0);
  } finally {
    await closeAll(t1, impostor);
  }
});

test('plain TCP to a TLS listener is refused; no certificate at all is refused under client-cert-auth', async () => {
  const inbox2 = new Inbox();
  const t2 = await startTransport(2n, inbox2, { tls: tlsFor('m2') });
  try {
    t2.addPeer(1n, '127.0.0.1:1');
    const raw = await RawPeer.connect(t2.address.port);
    raw.write(Buffer.from([0, 0, 0, 4, 1, 2, 3, 4]));
    await raw.waitClosed();
    const { connect } = await import('node:tls');
    const { readFile } = await import('node:fs/promises');
    const noCert = connect({ host: '127.0.0.1', port: t2.address.port, ca: await readFile(join(dir, 'ca.crt')) });
    let closed = false;
    noCert.on('error', () => {});
    noCert.on('close', () => { closed = true; });
    noCert.write(Buffer.from([0, 0, 0, 0]));
    await waitFor(() => closed, 'no-cert client closed');
    await waitForAsync(async () => (await metricValue(t2, 'keyraft_peer_handshake_refusals_total', { reason: 'tls' })) >= 2, 'both refused at TLS');
    assert.is(inbox2.messages.length, 0);
  } finally {
    await t2.close();
  }
});

test.run();
