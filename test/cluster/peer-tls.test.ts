/**
 * A 3-member cluster whose peers speak mutual TLS, configured with etcd's flags
 * (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth and https
 * peer URLs): writes on one member are read on another. A member whose certificate another CA
 * signed never joins the conversation (its peers refuse the TLS handshake), and the cluster
 * keeps its quorum without it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killAll } from '../integration/harness.js';
import { TestCerts } from '../peer/test-certs.js';
import { TestCluster } from './cluster-harness.js';
import { call } from './workload.js';

let certs: TestCerts;

test.before(async () => {
  certs = new TestCerts(await mkdtemp(join(tmpdir(), 'keyraft-cluster-tls-')));
  await Promise.all([certs.makeCa('ca'), certs.makeCa('rogue-ca')]);
  await Promise.all([certs.makeCert('member', 'ca'), certs.makeCert('rogue', 'rogue-ca')]);
});

test.after(async () => {
  await killAll();
  await rm(certs.dir, { recursive: true, force: true });
});

function tlsArgs(name: string, ca: string): string[] {
  const t = certs.tlsFor(name, ca);
  return ['--peer-cert-file', t.certFile, '--peer-key-file', t.keyFile, '--peer-trusted-ca-file', t.trustedCaFile!, '--peer-client-cert-auth'];
}

test('peers over mutual TLS replicate; a member with a certificate from another CA is refused', async () => {
  const cluster = await TestCluster.start({ members: 3, direct: { scheme: 'https' }, args: tlsArgs('member', 'ca') });
  try {
    const leader = await cluster.waitLeader();
    const other = (leader + 1) % 3;
    await call(cluster.kv(other), 'Put', { key: Buffer.from('tls'), value: Buffer.from('yes') });
    const got = await call<{ kvs?: Array<{ value: Uint8Array }> }>(cluster.kv((leader + 2) % 3), 'Range', { key: Buffer.from('tls') });
    assert.is(Buffer.from(got.kvs![0]!.value).toString(), 'yes');
  } finally {
    await cluster.close();
  }
  // The same cluster where one member presents a certificate its peers do not trust.
  const mixed = await TestCluster.start({ members: 3, direct: { scheme: 'https' }, memberArgs: (i) => tlsArgs(i === 2 ? 'rogue' : 'member', i === 2 ? 'rogue-ca' : 'ca'), quorumOf: [0, 1] });
  try {
    const leader = await mixed.waitLeader(20_000, [0, 1]);
    assert.ok(leader !== 2, 'the rogue member does not lead');
    await call(mixed.kv(leader), 'Put', { key: Buffer.from('k'), value: Buffer.from('v') });
    const rogue = await mixed.status(2);
    assert.is(rogue?.leader ?? 0n, 0n, 'the rogue member never hears from a leader');
    assert.match(mixed.slots[2]!.process!.output() + mixed.slots[0]!.process!.output() + mixed.slots[1]!.process!.output(), /TLS|certificate|handshake/i);
  } finally {
    await mixed.close();
  }
});

test.run();
