/**
 * A txn of compares and ranges only is a read (DESIGN.md's read path, etcd's isTxnReadonly): on
 * any member it sees every write acknowledged before it (ReadIndex) and adds no log entry.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { killAll } from '../integration/harness.js';
import { TestCluster } from './cluster-harness.js';
import { call } from './workload.js';

test.after(async () => {
  await killAll();
});

test('a read-only txn on a follower is linearizable and takes no log entry', async () => {
  const cluster = await TestCluster.start({ members: 3 });
  try {
    const leader = await cluster.waitLeader();
    const follower = (leader + 1) % 3;
    const key = Buffer.from('ro');
    for (let round = 0; round < 20; round++) {
      const value = Buffer.from(`v${round}`);
      // Written through the leader, read at once through a follower.
      await call(cluster.kv(leader), 'Put', { key, value });
      // The leader's index once the put is acknowledged; the follower may not have the entry yet
      // (the leader and the other follower are a quorum), so its own index is no baseline.
      const before = await cluster.status(leader);
      const res = await call<{ succeeded?: boolean; responses?: Array<{ response_range?: { kvs?: Array<{ value: Uint8Array }> } }> }>(
        cluster.kv(follower), 'Txn', {
          compare: [{ result: 0, target: 3, key, value }],
          success: [{ request_range: { key } }],
        });
      assert.is(res.succeeded, true, `round ${round}: the follower's txn saw the acknowledged write`);
      assert.is(Buffer.from(res.responses![0]!.response_range!.kvs![0]!.value).toString(), `v${round}`);
      // A txn through the log would have raised the leader's index; the follower has caught up to
      // the leader (its ReadIndex waited for that) and no further.
      const leaderAfter = await cluster.status(leader);
      const followerAfter = await cluster.status(follower);
      assert.is(leaderAfter!.raftIndex, before!.raftIndex, `round ${round}: no log entry for a read-only txn`);
      assert.is(followerAfter!.raftIndex, before!.raftIndex, `round ${round}: the follower is at the leader's index`);
    }
    // A txn with a nested txn is a write in etcd's eyes: it goes through the log.
    const before = await cluster.status(leader);
    await call(cluster.kv(follower), 'Txn', { success: [{ request_txn: { success: [{ request_range: { key } }] } }] });
    await cluster.waitConverged();
    assert.ok((await cluster.status(leader))!.raftIndex > before!.raftIndex, 'a nested txn takes a log entry');
  } finally {
    await cluster.close();
  }
});

test.run();
