/**
 * Real 3- and 5-member clusters under concurrent load while members are killed (-9), paused past
 * an election timeout and partitioned by the test's own proxies. After each run:
 *   - the recorded history of gets, puts and compare-and-swaps is linearizable (our checker);
 *   - every acknowledged unique put is present on every member;
 *   - all members hold the same key-value state at the same revision (hash of every key).
 * Timeouts are short (50 ms heartbeat, 500 ms election) so the fault runs stay a few seconds each.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { killAll } from '../integration/harness.js';
import { TestCluster } from './cluster-harness.js';
import { checkLinearizable } from './linearizability.js';
import { memberState, Workload } from './workload.js';


async function verify(cluster: TestCluster, load: Workload, label: string): Promise<void> {
  const history = load.recorder.history();
  assert.ok(load.ops.ok > 20, `${label}: the load made progress (${load.ops.ok} ok, ${load.ops.failed} failed)`);
  const result = checkLinearizable(history, { timeoutMs: 20_000 });
  if (result.ok !== true) {
    assert.unreachable(`${label}: history of ${history.length} ops is not linearizable: ${JSON.stringify(result)}`);
  }
  await cluster.waitConverged();
  const states = await Promise.all(cluster.slots.map((_, i) => (cluster.isUp(i)
    ? memberState(cluster, i).catch((err: Error) => {
      throw new Error(`${label}: reading member ${i}'s state: ${err.message}\n${cluster.describe(i)}`);
    })
    : null)));
  const up = states.filter((s): s is NonNullable<typeof s> => s !== null);
  for (const s of up) {
    assert.is(s.hash, up[0]!.hash, `${label}: every member holds the same keys, values and revisions`);
    assert.is(s.revision, up[0]!.revision, `${label}: same revision on every member`);
  }
  let checked = 0;
  for (const [key, value] of load.ackedUnique) {
    for (const s of up) assert.is(s.values.get(key), value, `${label}: acknowledged ${key} is on every member`);
    checked++;
  }
  assert.ok(checked > 0, `${label}: some unique puts were acknowledged`);
}

test.after(async () => {
  await killAll();
});

/** The members other than `i`. */
const others = (cluster: TestCluster, i: number) => cluster.slots.map((_, k) => k).filter((k) => k !== i);

// Each fault stays on until the members reacted to it (a new leader) and the load made progress
// through it; conditions, not fixed sleeps, so the run is as short as the cluster allows.
test('3 members: kill -9 of leader and follower, SIGSTOP of the leader, leader and follower partitions; no lost or stale write', async () => {
  const cluster = await TestCluster.start({ members: 3 });
  const load = new Workload(cluster, { clients: 8, keys: 24, seed: 1 });
  try {
    await load.progress(100);
    // kill -9 the leader, then bring it back
    let leader = await cluster.waitLeader();
    await cluster.kill9(leader);
    await cluster.waitLeader();
    await load.progress(50);
    cluster.spawn(leader);
    await load.progress(50);
    // kill -9 a follower
    leader = await cluster.waitLeader();
    const follower = (leader + 1) % 3;
    await cluster.kill9(follower);
    await load.progress(50);
    cluster.spawn(follower);
    await load.progress(50);
    // pause the leader until the others elected another (past an election timeout)
    leader = await cluster.waitLeader();
    cluster.pause(leader);
    await cluster.waitLeader(20_000, others(cluster, leader));
    await load.progress(50);
    cluster.resume(leader);
    await cluster.waitLeader();
    await load.progress(50);
    // isolate the leader until the majority elected another, then heal
    leader = await cluster.waitLeader();
    await cluster.links.isolate(leader);
    await cluster.waitLeader(20_000, others(cluster, leader));
    await load.progress(50);
    cluster.links.heal();
    await cluster.waitLeader();
    await load.progress(50);
    // isolate a follower while the load goes on, then heal
    leader = await cluster.waitLeader();
    await cluster.links.isolate((leader + 2) % 3);
    await load.progress(100);
    cluster.links.heal();
    await load.progress(50);
    await load.stop();
    await cluster.waitLeader();
    await verify(cluster, load, '3 members');
  } finally {
    await load.stop();
    await cluster.close();
  }
});

test('5 members: a follower and then the leader killed (quorum of 3 left), both restarted under load', async () => {
  const cluster = await TestCluster.start({ members: 5 });
  const load = new Workload(cluster, { clients: 8, keys: 24, seed: 2 });
  try {
    await load.progress(100);
    const leader = await cluster.waitLeader();
    const follower = (leader + 1) % 5;
    await cluster.kill9(follower);
    await load.progress(50);
    await cluster.kill9(leader);
    await cluster.waitLeader();
    await load.progress(50);
    cluster.spawn(follower);
    cluster.spawn(leader);
    await cluster.waitLeader();
    await load.progress(100);
    await load.stop();
    await cluster.waitLeader();
    await verify(cluster, load, '5 members');
  } finally {
    await load.stop();
    await cluster.close();
  }
});

test('the whole cluster killed with kill -9 at once under load, then restarted: nothing acknowledged is lost', async () => {
  const cluster = await TestCluster.start({ members: 3 });
  const load = new Workload(cluster, { clients: 8, keys: 24, seed: 3 });
  try {
    await load.progress(200);
    await Promise.all(cluster.slots.map((_, i) => cluster.kill9(i)));
    await load.stop();
    for (let i = 0; i < 3; i++) cluster.spawn(i);
    await cluster.waitLeader();
    await verify(cluster, load, 'whole cluster restart');
  } finally {
    await load.stop();
    await cluster.close();
  }
});

test.run();
