/**
 * Leases travel in state images: a follower that missed the grants, the attachments and more
 * than the leader's retained log (--snapshot-count 200 keeps 5000 entries) installs an image and
 * gets every lease and its keys from it. Then it applies a revocation like the others (its keys
 * go at the same revision: the members converge), and, made leader, it answers time-to-live with
 * the keys it restored and keeps the leases alive.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { httpRequest, killAll, postJson } from '../integration/harness.js';
import { TestCluster } from '../cluster/cluster-harness.js';
import { LeaseGrpc } from '../cluster/lease-grpc.js';

test.after(async () => {
  await killAll();
});

async function metric(cluster: TestCluster, i: number, name: string): Promise<number> {
  const res = await httpRequest(cluster.slots[i]!.clientPort, 'GET', '/metrics');
  let sum = 0;
  for (const line of res.body.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

test('a follower restored from a state image holds every lease and its keys, and serves them as leader', async () => {
  const cluster = await TestCluster.start({ members: 3, args: ['--snapshot-count', '200'] });
  const clients = cluster.slots.map((s) => new LeaseGrpc(s.clientPort));
  try {
    const leader = await cluster.waitLeader();
    const follower = (leader + 1) % 3;
    await cluster.kill9(follower);
    const l = clients[leader]!;
    const ids: bigint[] = [];
    for (let i = 0; i < 50; i++) {
      const { ID } = await l.grant(600);
      ids.push(ID);
      await l.put(`lease/${i}`, 'v', ID);
      await l.put(`lease/${i}/b`, 'v', ID);
    }
    // More than the retained log: the follower can only come back from an image.
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < 6500) {
        const n = next++;
        await l.put(`filler/${n % 500}`, 'x'.repeat(64), 0n);
      }
    }));
    cluster.spawn(follower);
    await cluster.waitLeader();
    await cluster.waitConverged(60_000);
    assert.is(await metric(cluster, follower, 'keyraft_server_state_images_installed_total'), 1, 'the follower installed an image');
    const f = clients[follower]!;
    const listed = (await f.leases()).leases.map((x) => x.ID).sort();
    assert.equal(listed, [...ids].sort(), 'the follower lists every lease (served from its own lessor)');

    // A revocation through the follower: every member deletes the two keys, the follower too.
    await f.revoke(ids[0]!);
    const converged = await cluster.waitConverged();
    assert.ok(converged.every((s) => s.revision === converged[0]!.revision));
    assert.is(await f.get('lease/0'), undefined);
    assert.is(await f.get('lease/0/b'), undefined);

    // Made leader, the restored member knows each lease's keys and renews them.
    const moved = await postJson(cluster.slots[leader]!.clientPort, '/v3/maintenance/transfer-leadership', { targetID: cluster.slots[follower]!.id.toString() });
    assert.is(moved.status, 200, moved.raw);
    assert.is(await cluster.waitLeader(), follower);
    const ttl = await f.timeToLive(ids[7]!, true);
    assert.is(ttl.grantedTTL, 600);
    assert.equal(ttl.keys.map(String), ['lease/7', 'lease/7/b']);
    const stream = f.keepAliveStream();
    try {
      assert.is(await stream.keepAlive(ids[7]!), 600);
      assert.is(await stream.keepAlive(ids[0]!), 0, 'the revoked lease is gone here too');
    } finally {
      stream.close();
    }
  } finally {
    for (const c of clients) c.close();
    await cluster.close();
  }
});

test.run();
