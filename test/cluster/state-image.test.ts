/**
 * A follower further behind than the leader's retained log catches up from a state image: with
 * --snapshot-count 200 the leader compacts every 200 applied entries and keeps 5000, so a
 * follower that misses > 6000 entries can only be brought back by an image streamed from the
 * leader's backend. Afterwards every member holds the same state, and the follower's counters
 * and snap dir show it installed an image (rather than replaying entries).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { httpRequest, killAll } from '../integration/harness.js';
import { TestCluster } from './cluster-harness.js';
import { call, memberState } from './workload.js';

test.after(async () => {
  await killAll();
});

async function metric(cluster: TestCluster, i: number, name: string): Promise<number> {
  const res = await httpRequest(cluster.slots[i]!.clientPort, 'GET', '/metrics');
  let sum = 0;
  for (const line of res.body.split('\n')) {
    if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Puts `count` keys through member i, `parallel` at a time. */
async function writeMany(cluster: TestCluster, i: number, count: number, parallel: number, prefix: string): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: parallel }, async () => {
    for (;;) {
      const n = next++;
      if (n >= count) return;
      for (let attempt = 0; ; attempt++) {
        try {
          await call(cluster.kv(i), 'Put', { key: Buffer.from(`${prefix}/${n % 2500}`), value: Buffer.from(`v${n}-`.padEnd(64, 'x')) });
          break;
        } catch (err) {
          if (attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
  });
  await Promise.all(workers);
}

test('a follower behind the compacted log catches up from a state image; all members end with the same state', async () => {
  const cluster = await TestCluster.start({ members: 3, args: ['--snapshot-count', '200'] });
  try {
    await writeMany(cluster, await cluster.waitLeader(), 300, 16, 'before');
    await cluster.waitConverged();
    const leader = await cluster.waitLeader();
    const follower = (leader + 1) % 3;
    await cluster.kill9(follower);
    // More than the 5000 retained entries plus a snapshot-count round: the follower's next index is compacted away.
    await writeMany(cluster, leader, 6500, 32, 'while-down');
    cluster.spawn(follower);
    await cluster.waitLeader();
    // Writes after the restart land on top of the image through ordinary appends.
    await writeMany(cluster, leader, 200, 16, 'after');
    const statuses = await cluster.waitConverged(60_000);
    assert.is(statuses.length, 3);
    const states = await Promise.all([0, 1, 2].map((i) => memberState(cluster, i)));
    for (const s of states) {
      assert.is(s.hash, states[0]!.hash, 'every member holds the same keys, values and revisions');
      assert.is(s.revision, states[0]!.revision);
    }
    assert.is(states[0]!.values.size, 300 + 2500 + 200);
    assert.ok(states[0]!.values.has('while-down/2499') && states[0]!.values.has('after/199'));
    assert.is(await metric(cluster, follower, 'keyraft_server_state_images_installed_total'), 1, 'the follower installed one image');
    assert.ok(await metric(cluster, leader, 'keyraft_server_state_images_sent_total') >= 1, 'the leader sent an image');
    assert.ok(await metric(cluster, follower, 'etcd_network_snapshot_receive_success') >= 1);
    const snap = await readdir(join(cluster.slots[follower]!.dataDir, 'member', 'snap'));
    assert.is(snap.filter((n) => n.endsWith('.krimg')).length, 1, `one image kept on the follower: ${snap.join(', ')}`);

    // Restart the follower again: it starts from its installed backend and the WAL after the image.
    await cluster.kill9(follower);
    cluster.spawn(follower);
    await cluster.waitLeader();
    await writeMany(cluster, leader, 50, 8, 'again');
    await cluster.waitConverged(30_000);
    const again = await Promise.all([0, 1, 2].map((i) => memberState(cluster, i)));
    for (const s of again) assert.is(s.hash, again[0]!.hash);
  } finally {
    await cluster.close();
  }
});

test.run();
