/**
 * Keys deleted because their lease ended produce DELETE watch events all at one revision per
 * lease: etcd revokes a lease in one txn. Checked for LeaseRevoke and for expiry (the leader's
 * revocation through the log), with two leases ending together: each lease's keys share one
 * revision, the two leases have different ones, and nothing else happened in between. The test
 * fails if a revocation spread its deletes over several revisions or merged two leases into one.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Etcd3, type IKeyValue } from 'etcd3';
import { killAll, startKeyraft, type ServerProcess } from '../integration/harness.js';

const test = suite('lease-revoke-events');
let keyraft: ServerProcess;
let client: Etcd3;

test.before(async () => {
  keyraft = await startKeyraft();
  client = new Etcd3({ hosts: `127.0.0.1:${keyraft.clientPort}` });
});

test.after(async () => {
  client?.close();
  await killAll();
});

/** Puts `count` keys `<prefix><i>` under `lease`, one revision each. */
async function attach(prefix: string, lease: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await client.put(`${prefix}${i}`).value(`v${i}`).lease(lease).exec();
}

/** Watches `prefix` for DELETEs until `count` arrived; resolves with their kvs. */
async function deletesUnder(prefix: string, count: number): Promise<{ deletes: Promise<IKeyValue[]>; cancel: () => Promise<void> }> {
  const watcher = await client.watch().prefix(prefix).create();
  const seen: IKeyValue[] = [];
  const deletes = new Promise<IKeyValue[]>((resolve) => {
    watcher.on('delete', (kv) => {
      seen.push(kv);
      if (seen.length === count) resolve(seen);
    });
  });
  return { deletes, cancel: () => watcher.cancel() };
}

test('LeaseRevoke of two leases: each lease\'s DELETE events at one revision, the revoke\'s own', async () => {
  const first = await client.leaseClient.leaseGrant({ TTL: 60 });
  const second = await client.leaseClient.leaseGrant({ TTL: 60 });
  await attach('rv/a/', first.ID, 5);
  await attach('rv/b/', second.ID, 4);
  const watch = await deletesUnder('rv/', 9);
  const revokeA = await client.leaseClient.leaseRevoke({ ID: first.ID });
  const revokeB = await client.leaseClient.leaseRevoke({ ID: second.ID });
  const events = await watch.deletes;
  await watch.cancel();
  const revisionsOf = (p: string) => new Set(events.filter((kv) => kv.key.toString().startsWith(p)).map((kv) => kv.mod_revision));
  assert.equal([...revisionsOf('rv/a/')], [revokeA.header.revision]);
  assert.equal([...revisionsOf('rv/b/')], [revokeB.header.revision]);
  assert.is(Number(revokeB.header.revision), Number(revokeA.header.revision) + 1);
});

test('expiry of two leases: each lease\'s DELETE events at one revision, one revision per lease', async () => {
  const before = await client.get('nothing').exec();
  const first = await client.leaseClient.leaseGrant({ TTL: 2 });
  const second = await client.leaseClient.leaseGrant({ TTL: 2 });
  await attach('ex/a/', first.ID, 5);
  await attach('ex/b/', second.ID, 5);
  const afterPuts = Number(before.header.revision) + 10;
  const watch = await deletesUnder('ex/', 10);
  const events = await watch.deletes;
  await watch.cancel();
  const revisionsOf = (p: string) => [...new Set(events.filter((kv) => kv.key.toString().startsWith(p)).map((kv) => Number(kv.mod_revision)))];
  const a = revisionsOf('ex/a/');
  const b = revisionsOf('ex/b/');
  assert.is(a.length, 1, `lease a's keys deleted at revisions ${a}`);
  assert.is(b.length, 1, `lease b's keys deleted at revisions ${b}`);
  assert.equal([a[0], b[0]].sort(), [afterPuts + 1, afterPuts + 2]);
});

test.run();
