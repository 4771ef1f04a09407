/**
 * The `etcd3` npm client's Lease API against a real keyraft member: grant, put under the lease,
 * automatic keep-alives over its LeaseKeepAlive stream, keepaliveOnce, time-to-live and the lease
 * list through its LeaseClient, revoke, and the 'lost' event once a released lease expires.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Etcd3, EtcdLeaseInvalidError } from 'etcd3';
import { killAll, startKeyraftWithEtcd3, type ServerProcess } from '../integration/harness.js';

const test = suite('lease-etcd3');
let keyraft: ServerProcess;
let client: Etcd3;

test.before(async () => {
  ({ keyraft, client } = await startKeyraftWithEtcd3());
});

test.after(async () => {
  client?.close();
  await killAll();
});

test('grant, put under the lease, keepaliveOnce, time-to-live with keys, leases, revoke', async () => {
  const lease = client.lease(30, { autoKeepAlive: false });
  const id = await lease.grant();
  assert.ok(BigInt(id) > 0n, `lease id ${id}`);
  await lease.put('svc/one').value('1');
  await lease.put('svc/two').value('2');
  const kept = await lease.keepaliveOnce();
  assert.is(kept.TTL, '30');
  assert.is(kept.ID, id);
  const ttl = await client.leaseClient.leaseTimeToLive({ ID: id, keys: true });
  assert.is(ttl.grantedTTL, '30');
  assert.ok(Number(ttl.TTL) >= 28 && Number(ttl.TTL) <= 30, `TTL ${ttl.TTL}`);
  assert.equal(ttl.keys.map((k) => k.toString()), ['svc/one', 'svc/two']);
  const list = await client.leaseClient.leaseLeases();
  assert.ok(list.leases.some((l) => l.ID === id), 'the lease is listed');
  await lease.revoke();
  assert.is(await client.getAll().prefix('svc/').count(), 0, 'revoke deleted the keys');
  const gone = await client.leaseClient.leaseTimeToLive({ ID: id });
  assert.is(gone.TTL, '-1');
});

test('automatic keep-alives hold a 2 s lease for 5 s; released, it expires and the key goes', async () => {
  const lease = client.lease(2);
  let succeeded = 0;
  lease.on('keepaliveSucceeded', () => { succeeded++; });
  let lost: Error | undefined;
  lease.on('lost', (err) => { lost = err; });
  await lease.put('auto').value('x');
  await new Promise((r) => setTimeout(r, 5000));
  assert.is(lost, undefined, 'lease not lost while kept alive');
  assert.ok(succeeded >= 2, `keep-alives answered: ${succeeded}`);
  assert.is(await client.get('auto').string(), 'x');
  lease.release();
  while ((await client.get('auto').string()) !== null) await new Promise((r) => setTimeout(r, 100));
  const err = await lease.keepaliveOnce().then(() => undefined, (e: Error) => e);
  // A keep-alive of the expired lease answers TTL 0, which the client reports as an invalid lease.
  assert.instance(err, EtcdLeaseInvalidError);
});

test('a put naming an unknown lease: EtcdLeaseInvalidError, etcd\'s message', async () => {
  const err = await client.put('k').value('v').lease('999').then(() => undefined, (e: Error) => e);
  assert.instance(err, EtcdLeaseInvalidError);
  assert.match(err!.message, 'requested lease not found');
});

test.run();
