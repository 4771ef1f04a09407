// Membership changes (dissertation 4.1, single-server) and learners (non-voting members).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfChangeType, decodeConfChange, encodeConfChange, applyConfChange, validateConfChange } from '../../src/raft/conf-change.js';
import { isRaftError } from '../../src/raft/raft-errors.js';
import { Role } from '../../src/raft/raft-types.js';
import { TestCluster } from './test-cluster.js';

const none = new Uint8Array(0);

function add(c: TestCluster, leader: number, type: ConfChangeType, id: number): void {
  c.raft(leader).proposeConfChange({ type, memberId: BigInt(id), context: none });
  c.process(BigInt(leader));
}

test('conf change encoding round-trips, context included', () => {
  const cc = { type: ConfChangeType.AddLearner, memberId: 0xfedcba9876543210n, context: new TextEncoder().encode('http://p:2380') };
  const back = decodeConfChange(encodeConfChange(cc));
  assert.is(back.type, cc.type);
  assert.is(back.memberId, cc.memberId);
  assert.equal([...back.context], [...cc.context]);
});

test('bootstrap: every founding member persists the same snapshot at index 1 holding the voters', () => {
  const c = TestCluster.bootstrap(3);
  for (const id of [1, 2, 3]) {
    const n = c.node(id);
    assert.equal(n.snapshot.metadata, { index: 1, term: 1, confState: { voters: [1n, 2n, 3n], learners: [] } });
    assert.equal(n.hardState, { term: 1, vote: 0n, commit: 1 });
    assert.equal(n.entries, []);
  }
  assert.equal(c.raft(2).status().conf, { voters: [1n, 2n, 3n], learners: [] });
});

test('bootstrap: a founding member that lost its bootstrap write gets the configuration from the leader, whole', () => {
  const c = TestCluster.bootstrap(3, { maxMessageBytes: 1 });
  const n3 = c.node(3);
  n3.snapshot = { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) };
  n3.hardState = { term: 0, vote: 0n, commit: 0 };
  c.restart(3);
  c.elect(1);
  c.run(3);
  assert.equal(c.raft(3).status().conf, { voters: [1n, 2n, 3n], learners: [] });
  assert.is(c.node(3).snapshot.metadata.index, 1, 'it received the bootstrap snapshot, not a prefix of entries');
  c.isolate(3);
  c.run(40);
  assert.is.not(c.raft(3).role, Role.Leader, 'alone it cannot win: it knows all three voters');
});

test('a learner receives the log but does not vote, count for commit, or campaign', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  add(c, 1, ConfChangeType.AddLearner, 4);
  c.addEmptyNode(4n);
  c.stabilize();
  c.run(2);
  c.propose(1, 'x');
  c.stabilize();
  assert.equal(c.appliedData(4), ['x']);
  assert.equal(c.raft(4).status().conf.learners, [4n]);
  // Commit needs 2 of the 3 voters; the learner does not help.
  c.isolate(2);
  c.partition([3], [1, 4]);
  c.propose(1, 'y');
  c.stabilize();
  assert.equal(c.appliedData(4), ['x'], 'replicated to the learner, but not committed');
  assert.is(c.raft(4).log.lastIndex(), c.raft(1).log.lastIndex());
  // The learner never campaigns, however long it is cut off.
  c.heal();
  c.isolate(4);
  c.run(60);
  assert.is(c.raft(4).role, Role.Follower);
  assert.is(c.raft(4).term, 2);
});

test('a learner is promoted by AddVoter and then counts for quorum', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  add(c, 1, ConfChangeType.AddLearner, 4);
  c.addEmptyNode(4n);
  c.stabilize();
  c.run(2);
  add(c, 1, ConfChangeType.AddVoter, 4);
  c.stabilize();
  assert.equal(c.raft(1).status().conf, { voters: [1n, 2n, 3n, 4n], learners: [] });
  // 4 voters: quorum 3. With 2 and 3 cut off, 1 and 4 cannot commit.
  c.partition([1, 4], [2, 3]);
  c.propose(1, 'z');
  c.stabilize();
  assert.equal(c.appliedData(1), []);
  c.heal();
  c.run(3);
  assert.equal(c.appliedData(1), ['z']);
});

test('one change at a time: a second change waits until the first commits', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  add(c, 1, ConfChangeType.AddLearner, 4);
  assert.throws(() => add(c, 1, ConfChangeType.AddLearner, 5), (e: unknown) => isRaftError(e, 'conf-change-pending'));
  c.addEmptyNode(4n);
  c.stabilize();
  add(c, 1, ConfChangeType.AddLearner, 5);
});

test('a new leader may not change the configuration before it commits an entry of its term', () => {
  const c = TestCluster.bootstrap(3);
  c.campaign(1);
  c.deliverAllWhere((m) => m.type !== 2 /* AppResp held back */ && m.type !== 1);
  assert.is(c.raft(1).role, Role.Leader);
  assert.throws(() => add(c, 1, ConfChangeType.AddLearner, 4), (e: unknown) => isRaftError(e, 'conf-change-pending'));
  c.stabilize();
  add(c, 1, ConfChangeType.AddLearner, 4);
});

test('invalid changes are refused: removing the last voter, adding an existing voter, removing a stranger', () => {
  const c1 = TestCluster.bootstrap(1);
  c1.campaign(1);
  assert.throws(() => add(c1, 1, ConfChangeType.RemoveMember, 1), (e: unknown) => isRaftError(e, 'conf-change-invalid'));
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  assert.throws(() => add(c, 1, ConfChangeType.AddVoter, 2), (e: unknown) => isRaftError(e, 'conf-change-invalid'));
  assert.throws(() => add(c, 1, ConfChangeType.RemoveMember, 9), (e: unknown) => isRaftError(e, 'conf-change-invalid'));
  assert.throws(() => c.raft(2).proposeConfChange({ type: ConfChangeType.AddLearner, memberId: 4n, context: none }),
    (e: unknown) => isRaftError(e, 'not-leader'));
});

test('validateConfChange and applyConfChange agree with a naive model over seeded random changes', () => {
  let conf = { voters: [1n, 2n, 3n] as bigint[], learners: [] as bigint[] };
  let seed = 12345;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  for (let i = 0; i < 2000; i++) {
    const type = rnd(3) as ConfChangeType;
    const id = BigInt(1 + rnd(6));
    const refusal = validateConfChange(conf, { type, memberId: id, context: none });
    const isVoter = conf.voters.includes(id);
    const isLearner = conf.learners.includes(id);
    const naiveOk = type === ConfChangeType.AddVoter ? !isVoter
      : type === ConfChangeType.AddLearner ? !isLearner && !(isVoter && conf.voters.length === 1)
        : (isVoter || isLearner) && !(isVoter && conf.voters.length === 1);
    assert.is(refusal === null, naiveOk, `change ${type} of ${id} on ${JSON.stringify(conf, (_, v) => typeof v === 'bigint' ? Number(v) : v)}`);
    if (refusal !== null) continue;
    const next = applyConfChange(conf, { type, memberId: id, context: none });
    const voterDelta = Math.abs(next.voters.length - conf.voters.length);
    assert.ok(voterDelta <= 1, 'single-server: the voter set changes by at most one');
    assert.ok(next.voters.every((v) => !next.learners.includes(v)), 'no member is both voter and learner');
    conf = { voters: [...next.voters], learners: [...next.learners] };
  }
});

test('removing the leader: it keeps leading until the change commits, then steps down and the rest elect a leader', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  add(c, 1, ConfChangeType.RemoveMember, 1);
  assert.is(c.raft(1).role, Role.Leader, 'still leading while the change is uncommitted');
  c.stabilize();
  assert.is(c.raft(1).role, Role.Follower);
  assert.equal(c.raft(2).status().conf.voters, [2n, 3n]);
  const leader = c.runUntilLeader();
  assert.ok(leader === 2 || leader === 3);
  c.propose(leader, 'after');
  c.stabilize();
  assert.equal(c.appliedData(2), ['after']);
  c.run(40);
  assert.is(c.raft(1).role, Role.Follower, 'the removed member never campaigns');
});

test('a configuration takes effect on append and is reverted when its entry is truncated', () => {
  const c = TestCluster.bootstrap(3, { preVote: false });
  c.elect(1);
  c.isolate(1);
  add(c, 1, ConfChangeType.AddLearner, 4);
  assert.equal(c.raft(1).status().conf.learners, [4n], 'in effect as soon as appended');
  c.stabilize();
  const leader = (() => {
    for (let i = 0; i < 100; i++) {
      c.tick(2);
      c.tick(3);
      c.stabilize();
      const l = [2, 3].find((id) => c.raft(id).role === Role.Leader);
      if (l !== undefined) return l;
    }
    throw new Error('no leader');
  })();
  c.propose(leader, 'x');
  c.stabilize();
  c.heal();
  c.run(15);
  assert.equal(c.raft(1).status().conf, { voters: [1n, 2n, 3n], learners: [] }, 'truncated with its entry');
  assert.equal(c.appliedData(1), ['x']);
});

test.run();
