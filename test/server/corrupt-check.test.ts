/**
 * The corrupt checks' verdicts: which member the CORRUPT alarm names. Start-up check: CI once saw a healthy
 * member name itself: its first check ran late (a leader and a peer's client URL are known only
 * seconds in), after the member whose data was altered had restarted, and any mismatch named the
 * checking member. The member whose hash a majority of the cluster holds names the peers that
 * differ; only a member without such a majority names itself. The leader's periodic check
 * applies the same majority: a leader whose hash a majority does not share names itself.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../src/platform/logger.js';
import { CorruptCheck, type CorruptCheckHost } from '../../src/server/corrupt-check.js';
import type { HashKVResponse } from '../../src/proto/etcd-types.js';

const SELF = 1n;
const REVISION = 51;

/** Peers answer HashKV with `hash`, or fail (`null`: unreachable); `members` overrides the member count. */
function fake(localHash: number, peers: Array<{ id: bigint; hash: number | null; compactRevision?: number }>, members?: number, leader = false) {
  const raised: bigint[] = [];
  const counted: string[] = [];
  const host: CorruptCheckHost = {
    memberId: SELF,
    isLeader: () => leader,
    hashKV: async () => ({ hash: localHash, compactRevision: -1, currentRevision: REVISION, hashRevision: REVISION }),
    peers: () => peers.map((p) => ({ id: p.id, clientUrl: `http://peer-${p.id}` })),
    memberCount: () => members ?? peers.length + 1,
    peerHashKV: async (clientUrl, revision): Promise<HashKVResponse> => {
      assert.is(revision, REVISION);
      const p = peers.find((q) => clientUrl === `http://peer-${q.id}`)!;
      if (p.hash === null) throw new Error('connect ECONNREFUSED');
      return { header: { revision: REVISION }, hash: p.hash, compact_revision: p.compactRevision ?? -1 } as HashKVResponse;
    },
    raiseCorrupt: (id) => raised.push(id),
    count: (result) => counted.push(result),
  };
  return { check: new CorruptCheck(host, 0, silentLogger), raised, counted };
}

test('3 members agree: no alarm, counted ok', async () => {
  const { check, raised, counted } = fake(7, [{ id: 2n, hash: 7 }, { id: 3n, hash: 7 }]);
  assert.equal(await check.initial(), []);
  assert.equal(raised, []);
  assert.equal(counted, ['ok']);
});

test('the altered member restarts: both peers differ, it names itself', async () => {
  const { check, raised, counted } = fake(9, [{ id: 2n, hash: 7 }, { id: 3n, hash: 7 }]);
  assert.equal(await check.initial(), [SELF]);
  assert.equal(raised, [SELF]);
  assert.equal(counted, ['mismatch']);
});

test('a healthy member checks while the altered one is up: it names that peer, not itself (the CI failure)', async () => {
  const { check, raised, counted } = fake(7, [{ id: 2n, hash: 7 }, { id: 3n, hash: 9 }]);
  const named = await check.initial();
  assert.equal(raised, [3n]);
  assert.equal(named, [3n]);
  assert.equal(counted, ['mismatch']);
});

test('no majority either way (the agreeing peer is down): it names itself, as etcd', async () => {
  const { check, raised } = fake(7, [{ id: 2n, hash: null }, { id: 3n, hash: 9 }]);
  assert.equal(await check.initial(), [SELF]);
  assert.equal(raised, [SELF]);
});

test('2 members that differ: it names itself (cannot tell which)', async () => {
  const { check, raised } = fake(7, [{ id: 2n, hash: 9 }]);
  assert.equal(await check.initial(), [SELF]);
  assert.equal(raised, [SELF]);
});

test('5 members, 3 agree with it: both differing peers are named', async () => {
  const { check, raised } = fake(7, [{ id: 2n, hash: 7 }, { id: 3n, hash: 9 }, { id: 4n, hash: 7 }, { id: 5n, hash: 8 }]);
  assert.equal(await check.initial(), [3n, 5n]);
  assert.equal(raised, [3n, 5n]);
});

test('the majority counts every member, unpublished ones too: 2 of 4 is none', async () => {
  // Member 4 has not published a client URL yet, so it is not asked, but it is a member.
  const { check, raised } = fake(7, [{ id: 2n, hash: 7 }, { id: 3n, hash: 9 }], 4);
  assert.equal(await check.initial(), [SELF]);
  assert.equal(raised, [SELF]);
});

test('a peer compacted differently is skipped, neither agreeing nor differing', async () => {
  const { check, raised, counted } = fake(7, [{ id: 2n, hash: 9, compactRevision: 10 }, { id: 3n, hash: 7 }]);
  assert.equal(await check.initial(), []);
  assert.equal(raised, []);
  assert.equal(counted, ['incomplete']);
});

test('periodic, the leader altered: the followers agree, the leader names itself only', async () => {
  const { check, raised, counted } = fake(9, [{ id: 2n, hash: 7 }, { id: 3n, hash: 7 }], undefined, true);
  assert.equal(await check.periodic(), [SELF]);
  assert.equal(raised, [SELF]);
  assert.equal(counted, ['mismatch']);
});

test('periodic, a follower altered: the leader names that follower', async () => {
  const { check, raised } = fake(7, [{ id: 2n, hash: 7 }, { id: 3n, hash: 9 }], undefined, true);
  assert.equal(await check.periodic(), [3n]);
  assert.equal(raised, [3n]);
});

test('periodic, 5 members, 3 share a hash the leader lacks: the leader and the other outlier are named', async () => {
  const { check } = fake(9, [{ id: 2n, hash: 7 }, { id: 3n, hash: 7 }, { id: 4n, hash: 7 }, { id: 5n, hash: 8 }], undefined, true);
  assert.equal((await check.periodic()).sort(), [SELF, 5n]);
});

test('periodic, no majority (3 different hashes): every follower that differs, as etcd', async () => {
  const { check } = fake(9, [{ id: 2n, hash: 7 }, { id: 3n, hash: 8 }], undefined, true);
  assert.equal((await check.periodic()).sort(), [2n, 3n]);
});

test.run();
