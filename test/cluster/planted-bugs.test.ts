/**
 * The linearizability checker catches real violations from real members: each case runs the same
 * scripted scenario against a cluster built with a planted bug (KEYRAFT_TEST_FAULT) and against a
 * correct one. The buggy history must be reported non-linearizable; the correct one must pass.
 *   stale-read: a partitioned follower serves a linearizable read from its own state;
 *   early-ack:  a partitioned leader acknowledges a write before any quorum has it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { killAll } from '../integration/harness.js';
import { TestCluster } from './cluster-harness.js';
import { checkLinearizable, HistoryRecorder, type RegisterValue } from './linearizability.js';
import { call } from './workload.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function valueOf(res: { kvs?: Array<{ value?: Uint8Array }> }): RegisterValue {
  const kv = res.kvs?.[0];
  return kv === undefined ? null : Buffer.from(kv.value ?? new Uint8Array(0)).toString();
}

async function put(h: HistoryRecorder, cluster: TestCluster, i: number, key: string, value: string): Promise<void> {
  await h.record(i, 'put', { key, value }, () => call(cluster.kv(i), 'Put', { key: Buffer.from(key), value: Buffer.from(value) }, 1500)).catch(() => undefined);
}

/** A get that is retried until it answers (failed tries are left out of the history: reads change nothing). */
async function get(h: HistoryRecorder, cluster: TestCluster, i: number, key: string, tries = 1): Promise<void> {
  for (let n = 0; n < tries; n++) {
    try {
      await h.record(i, 'get', { key }, async () => valueOf(await call(cluster.kv(i), 'Range', { key: Buffer.from(key) }, 1500)));
      return;
    } catch {
      await sleep(100);
    }
  }
}

/** A follower cut off from the others, asked for a key written meanwhile through the leader. */
async function staleReadScenario(fault: string | undefined): Promise<HistoryRecorder> {
  const cluster = await TestCluster.start({ members: 3, env: fault ? { KEYRAFT_TEST_FAULT: fault } : {} });
  const h = new HistoryRecorder();
  try {
    const leader = await cluster.waitLeader();
    const follower = (leader + 1) % 3;
    await put(h, cluster, leader, 'k', 'v1');
    await cluster.links.isolate(follower);
    await put(h, cluster, leader, 'k', 'v2');
    await get(h, cluster, follower, 'k');
    return h;
  } finally {
    await cluster.close();
  }
}

/** A leader cut off from the others takes a write; the majority's new leader is read afterwards. */
async function earlyAckScenario(fault: string | undefined): Promise<HistoryRecorder> {
  const cluster = await TestCluster.start({ members: 3, env: fault ? { KEYRAFT_TEST_FAULT: fault } : {} });
  const h = new HistoryRecorder();
  try {
    const leader = await cluster.waitLeader();
    await put(h, cluster, leader, 'k', 'v1');
    await cluster.links.isolate(leader);
    await put(h, cluster, leader, 'k', 'v2');
    // The majority elects a new leader (check-quorum deposes the old one meanwhile).
    const other = (leader + 1) % 3;
    for (let tries = 0; tries < 100; tries++) {
      const s = await cluster.status(other);
      if (s !== null && s.leader !== 0n && s.leader !== cluster.slots[leader]!.id) break;
      await sleep(50);
    }
    await get(h, cluster, other, 'k', 30);
    return h;
  } finally {
    await cluster.close();
  }
}

test.after(async () => {
  await killAll();
});

test('stale-read: a follower serving linearizable reads from local state is caught; a correct member passes', async () => {
  const buggy = checkLinearizable((await staleReadScenario('stale-read')).history());
  assert.is(buggy.ok, false, `planted stale read reported: ${JSON.stringify(buggy)}`);
  const correct = checkLinearizable((await staleReadScenario(undefined)).history());
  assert.is(correct.ok, true, `the same scenario without the bug: ${JSON.stringify(correct)}`);
});

test('early-ack: a write acknowledged before a quorum has it is caught; a correct member passes', async () => {
  const buggy = checkLinearizable((await earlyAckScenario('early-ack')).history());
  assert.is(buggy.ok, false, `planted early ack reported: ${JSON.stringify(buggy)}`);
  const correct = checkLinearizable((await earlyAckScenario(undefined)).history());
  assert.is(correct.ok, true, `the same scenario without the bug: ${JSON.stringify(correct)}`);
});

test.run();
