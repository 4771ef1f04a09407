/**
 * The in-memory Raft log is trimmed apart from the WAL release (member.ts trimLog): with the
 * default --snapshot-count (100,000) the member keeps only the catch-up window
 * (Limits.raftLogCatchUpEntries below the applied index) in memory, not the two rounds of
 * entries the WAL keeps for recovery. Checked from outside, on spawned members:
 *   - the keyraft_server_raft_log_entries gauge stays within the window under many puts, and
 *     right after a restart (start-up trims what it read from the WAL);
 *   - kill -9 and restart lose no acknowledged put (the WAL still holds what the backend may lack);
 *   - a follower further behind than the window, in a 3-member cluster, catches up from a state
 *     image (before the trim it caught up from entries the leader still held).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Limits } from '../../src/platform/limits.js';
import { httpRequest, killAll } from '../integration/harness.js';
import { TestCluster } from '../cluster/cluster-harness.js';
import { call, memberState } from '../cluster/workload.js';

test.after(async () => {
  await killAll();
});

/**
 * The window, plus one trim interval not yet trimmed, plus one the backend may not have written
 * yet (trimLog never trims past it), plus what is applied but not yet confirmed.
 */
const LOG_ENTRIES_BOUND = Limits.raftLogCatchUpEntries + 3 * Limits.raftLogTrimIntervalEntries;

async function metric(cluster: TestCluster, i: number, name: string): Promise<number> {
  const res = await httpRequest(cluster.slots[i]!.clientPort, 'GET', '/metrics');
  let sum = 0;
  for (const line of res.body.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/**
 * Puts `count` values to `keys` keys through member i, `parallel` at a time; returns the last
 * acknowledged value of each key. Calls for one key are never concurrent, so the last
 * acknowledged value is the key's value.
 */
async function writeMany(cluster: TestCluster, i: number, count: number, keys: number, parallel: number, prefix: string): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  let next = 0;
  const keysPerWorker = Math.max(1, Math.floor(keys / parallel));
  const workers = Array.from({ length: parallel }, async (_, w) => {
    // Each worker puts to keys of its own, one call at a time.
    for (let round = 0; ; round++) {
      const n = next++;
      if (n >= count) return;
      const key = `${prefix}/${w}/${round % keysPerWorker}`;
      const value = `v${n}-`.padEnd(64, 'x');
      for (let attempt = 0; ; attempt++) {
        try {
          await call(cluster.kv(i), 'Put', { key: Buffer.from(key), value: Buffer.from(value) });
          acked.set(key, value);
          break;
        } catch (err) {
          if (attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
  });
  await Promise.all(workers);
  return acked;
}

test('the in-memory log stays within the catch-up window under many puts and after a restart; kill -9 loses no acknowledged put', async () => {
  const cluster = await TestCluster.start({ members: 1 });
  try {
    const acked = await writeMany(cluster, 0, 20_000, 1000, 32, 'trim');
    const entries = await metric(cluster, 0, 'keyraft_server_raft_log_entries');
    assert.ok(entries > 0 && entries <= LOG_ENTRIES_BOUND, `raft log entries in memory after 20,000 puts: ${entries} (bound ${LOG_ENTRIES_BOUND})`);

    await cluster.kill9(0);
    cluster.spawn(0);
    await cluster.waitLeader();
    const restarted = await metric(cluster, 0, 'keyraft_server_raft_log_entries');
    assert.ok(restarted > 0 && restarted <= LOG_ENTRIES_BOUND, `raft log entries in memory after the restart: ${restarted} (bound ${LOG_ENTRIES_BOUND})`);
    const state = await memberState(cluster, 0);
    assert.is(state.values.size, acked.size);
    for (const [key, value] of acked) assert.is(state.values.get(key), value, `${key} after kill -9 and restart`);
    assert.ok(state.revision >= 20_001, `revision ${state.revision}: every put applied`);
  } finally {
    await cluster.close();
  }
});

test('a follower behind the catch-up window catches up from a state image with the default --snapshot-count', async () => {
  const cluster = await TestCluster.start({ members: 3 });
  try {
    await writeMany(cluster, await cluster.waitLeader(), 300, 300, 16, 'before');
    await cluster.waitConverged();
    const leader = await cluster.waitLeader();
    const follower = (leader + 1) % 3;
    await cluster.kill9(follower);
    // More than the window plus the trim's lag (one interval not yet trimmed, one more until the
    // backend is known to have written it): the follower's next index is trimmed away on the leader.
    await writeMany(cluster, leader, Limits.raftLogCatchUpEntries + 4 * Limits.raftLogTrimIntervalEntries, 2500, 32, 'while-down');
    cluster.spawn(follower);
    await cluster.waitLeader();
    await writeMany(cluster, leader, 200, 200, 16, 'after');
    await cluster.waitConverged(60_000);
    const states = await Promise.all([0, 1, 2].map((i) => memberState(cluster, i)));
    for (const s of states) {
      assert.is(s.hash, states[0]!.hash, 'every member holds the same keys, values and revisions');
      assert.is(s.revision, states[0]!.revision);
    }
    assert.is(await metric(cluster, follower, 'keyraft_server_state_images_installed_total'), 1, 'the follower installed one image');
    for (const i of [0, 1, 2]) {
      const entries = await metric(cluster, i, 'keyraft_server_raft_log_entries');
      assert.ok(entries <= LOG_ENTRIES_BOUND, `member ${i}: ${entries} raft log entries in memory (bound ${LOG_ENTRIES_BOUND})`);
    }
  } finally {
    await cluster.close();
  }
});

test.run();
