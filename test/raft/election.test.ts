// Leader election rules: Raft paper 5.2 and 5.4.1; pre-vote and check-quorum from Ongaro's
// dissertation (9.6, 6.2); leadership transfer (3.10).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRaftError } from '../../src/raft/raft-errors.js';
import { MessageType, Role, makeMessage } from '../../src/raft/raft-types.js';
import { TestCluster } from './test-cluster.js';

test('5.2: a candidate with votes from a majority becomes leader; the others follow it', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  assert.is(c.raft(1).role, Role.Leader);
  assert.is(c.raft(1).term, 2);
  for (const id of [2, 3]) {
    assert.is(c.raft(id).role, Role.Follower);
    assert.is(c.raft(id).leader, 1n);
    assert.is(c.raft(id).term, 2);
  }
});

test('5.2: a lone member elects itself at once (no timeout, no messages)', () => {
  const c = TestCluster.bootstrap(1);
  c.campaign(1);
  assert.is(c.raft(1).role, Role.Leader);
  assert.is(c.queue.length, 0);
});

test('5.2: a member votes at most once per term, and the vote is persisted before the answer leaves', () => {
  const c = TestCluster.bootstrap(3, { preVote: false });
  const r3 = c.raft(3);
  r3.step(makeMessage({ type: MessageType.Vote, from: 1n, to: 3n, term: 5, index: 1, logTerm: 1 }));
  let rd = r3.ready();
  assert.equal(rd.hardState, { term: 5, vote: 1n, commit: 1 });
  assert.is(rd.messages.length, 0, 'the grant is not sent before the vote is durable');
  assert.is(rd.messagesAfterPersist.length, 1);
  assert.is(rd.messagesAfterPersist[0]!.reject, false);
  r3.advance();
  r3.step(makeMessage({ type: MessageType.Vote, from: 2n, to: 3n, term: 5, index: 1, logTerm: 1 }));
  rd = r3.ready();
  assert.is(rd.messagesAfterPersist[0]!.type, MessageType.VoteResp);
  assert.is(rd.messagesAfterPersist[0]!.reject, true, 'second candidate of term 5 is refused');
  r3.advance();
  // The same candidate asking again (a duplicate) gets the same answer.
  r3.step(makeMessage({ type: MessageType.Vote, from: 1n, to: 3n, term: 5, index: 1, logTerm: 1 }));
  assert.is(r3.ready().messagesAfterPersist[0]!.reject, false);
});

test('5.2 mutation switch: grantTwoVotesPerTerm really grants a second vote', () => {
  const c = TestCluster.bootstrap(3, { preVote: false, bugs: { grantTwoVotesPerTerm: true } });
  const raft = c.raft(3);
  raft.step(makeMessage({ type: MessageType.Vote, from: 1n, to: 3n, term: 5, index: 3, logTerm: 1 }));
  raft.step(makeMessage({ type: MessageType.Vote, from: 2n, to: 3n, term: 5, index: 3, logTerm: 1 }));
  const answers = raft.ready().messagesAfterPersist.filter((m) => m.type === MessageType.VoteResp);
  assert.equal(answers.map((m) => m.reject), [false, false]);
});

test('5.4.1: a vote is refused to a candidate whose log is less up-to-date', () => {
  const c = TestCluster.bootstrap(3, { preVote: false, checkQuorum: false });
  c.elect(1);
  c.propose(1, 'x');
  c.stabilize();
  const r3 = c.raft(3);
  // Higher term, but last entry (1, term 1) is older than ours (3, term 2).
  r3.step(makeMessage({ type: MessageType.Vote, from: 2n, to: 3n, term: 9, index: 1, logTerm: 1 }));
  const rd = r3.ready();
  assert.is(rd.messagesAfterPersist[0]!.reject, true);
  assert.is(r3.term, 9, 'the higher term is still adopted');
  assert.is(r3.vote, 0n);
  // Same last term, shorter log: refused too.
  r3.advance();
  r3.step(makeMessage({ type: MessageType.Vote, from: 2n, to: 3n, term: 10, index: 2, logTerm: 2 }));
  assert.is(r3.ready().messagesAfterPersist[0]!.reject, true);
});

test('5.1: a stale leader learns the newer term from any answer and steps down', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.isolate(1);
  // Without check-quorum the isolated leader would not notice on its own; tick only the others.
  let newLeader = 0;
  for (let i = 0; i < 100 && newLeader === 0; i++) {
    c.tick(2);
    c.tick(3);
    c.stabilize();
    newLeader = [2, 3].find((id) => c.raft(id).role === Role.Leader) ?? 0;
  }
  assert.ok(newLeader !== 0);
  const newTerm = c.raft(newLeader).term;
  assert.ok(newTerm > 2);
  assert.is(c.raft(1).role, Role.Leader, 'the isolated leader does not know yet');
  c.heal();
  c.tick(1); // heartbeat at term 2
  c.stabilize();
  assert.is(c.raft(1).role, Role.Follower);
  assert.is(c.raft(1).term, newTerm);
  c.tick(newLeader); // the new leader's heartbeat tells it who leads
  c.stabilize();
  assert.is(c.raft(1).leader, BigInt(newLeader));
});

test('5.1: messages of an older term are ignored', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  const r2 = c.raft(2);
  const before = { term: r2.term, commit: r2.log.committed, last: r2.log.lastIndex() };
  r2.step(makeMessage({ type: MessageType.Heartbeat, from: 3n, to: 2n, term: 1, commit: 99 }));
  r2.step(makeMessage({ type: MessageType.App, from: 3n, to: 2n, term: 1, index: 1, logTerm: 1, commit: 99 }));
  assert.equal({ term: r2.term, commit: r2.log.committed, last: r2.log.lastIndex() }, before);
  assert.is(r2.leader, 1n);
});

test('Figure 2: a stale RequestVote is refused with the current term, so the candidate catches up', () => {
  const c = TestCluster.bootstrap(3, { preVote: false });
  c.elect(1);
  const r2 = c.raft(2);
  r2.step(makeMessage({ type: MessageType.Vote, from: 3n, to: 2n, term: 1, index: 99, logTerm: 9 }));
  const rd = r2.ready();
  assert.is(rd.messagesAfterPersist.length, 1);
  const answer = rd.messagesAfterPersist[0]!;
  assert.is(answer.type, MessageType.VoteResp);
  assert.is(answer.reject, true);
  assert.is(answer.term, 2);
  r2.advance();
  assert.is(r2.vote, 1n, 'our vote is unchanged');
});

test('pre-vote (dissertation 9.6): a partitioned member does not raise its term, and does not disrupt on return', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.isolate(3);
  c.run(50);
  assert.is(c.raft(3).term, 2, 'pre-votes failed: no term increase');
  assert.is(c.raft(3).role, Role.PreCandidate);
  c.heal();
  c.run(3);
  assert.is(c.raft(1).role, Role.Leader);
  assert.is(c.raft(1).term, 2);
  assert.is(c.raft(3).leader, 1n);
});

test('without pre-vote the same partition disrupts the leader (the problem pre-vote solves)', () => {
  const c = TestCluster.bootstrap(3, { preVote: false, checkQuorum: false });
  c.elect(1);
  c.isolate(3);
  c.run(50);
  assert.ok(c.raft(3).term > 2);
  c.heal();
  c.run(30);
  assert.ok(c.raft(1).term > 2, 'the leader was deposed by the higher term');
});

test('check-quorum (dissertation 6.2): a leader cut off from a quorum steps down within an election timeout', () => {
  const c = TestCluster.bootstrap(5);
  c.elect(1);
  c.partition([1, 2], [3, 4, 5]);
  c.run(60); // room for a split vote or two on the majority side
  assert.is.not(c.raft(1).role, Role.Leader, 'minority leader stepped down');
  assert.is(c.raft(1).term, 2, 'and, pre-voting without a quorum, never raised its term');
  const leaders = [3, 4, 5].filter((id) => c.raft(id).role === Role.Leader);
  assert.is(leaders.length, 1, 'the majority side elected a leader');
  c.heal();
  c.run(5);
  assert.is([1, 2, 3, 4, 5].filter((id) => c.raft(id).role === Role.Leader).length, 1);
});

test('check-quorum lease (dissertation 4.2.3): a member that hears from its leader ignores higher-term votes', () => {
  const c = TestCluster.bootstrap(3, { preVote: false });
  c.elect(1);
  const r2 = c.raft(2);
  r2.step(makeMessage({ type: MessageType.Vote, from: 3n, to: 2n, term: 7, index: 100, logTerm: 7 }));
  assert.is(r2.term, 2, 'in lease: the request is ignored entirely');
  assert.is(r2.hasReady(), false);
});

test('3.10: leadership transfer hands over to an up-to-date voter with TimeoutNow', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.propose(1, 'a');
  c.stabilize();
  c.raft(1).transferLeadership(2n);
  c.process(1n);
  c.stabilize();
  assert.is(c.raft(2).role, Role.Leader);
  assert.is(c.raft(2).term, 3);
  assert.is(c.raft(1).role, Role.Follower);
  c.propose(2, 'b');
  c.stabilize();
  assert.equal(c.appliedData(3), ['a', 'b']);
});

test('3.10: proposals are refused while a transfer is in progress; the transfer aborts after an election timeout', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.isolate(2);
  c.propose(1, 'a');
  c.stabilize();
  c.raft(1).transferLeadership(2n); // 2 lags: the leader must catch it up first
  c.process(1n);
  assert.throws(() => c.raft(1).propose(new Uint8Array([1])), (err: unknown) => isRaftError(err, 'transfer-in-progress'));
  for (let i = 0; i < 10; i++) {
    c.tick(1);
    c.tick(3);
    c.stabilize();
  }
  assert.is(c.raft(1).role, Role.Leader);
  assert.is(c.raft(1).leadTransferee, 0n);
  c.propose(1, 'b');
});

test('proposals and reads are refused with no-leader when no leader is known', () => {
  const c = TestCluster.bootstrap(3);
  assert.throws(() => c.raft(2).propose(new Uint8Array([1])), (err: unknown) => isRaftError(err, 'no-leader'));
  assert.throws(() => c.raft(2).readIndex(new Uint8Array([1])), (err: unknown) => isRaftError(err, 'no-leader'));
});

test('a follower forwards a proposal to the leader', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  assert.is(c.raft(2).propose(new TextEncoder().encode('via-2')), 0);
  c.stabilize();
  assert.equal(c.appliedData(1), ['via-2']);
  assert.equal(c.appliedData(3), ['via-2']);
});

test('randomized timeouts: the same seed gives the same election, another seed may differ', () => {
  const run = (seed: number) => {
    const c = TestCluster.bootstrap(5, { seed });
    let ticks = 0;
    while (![1, 2, 3, 4, 5].some((id) => c.raft(id).role === Role.Leader)) {
      c.run(1);
      ticks++;
    }
    return { ticks, leader: [1, 2, 3, 4, 5].find((id) => c.raft(id).role === Role.Leader) };
  };
  assert.equal(run(7), run(7));
  const outcomes = new Set([1, 2, 3, 4, 5, 6, 7, 8].map((s) => JSON.stringify(run(s))));
  assert.ok(outcomes.size > 1, 'different seeds give different timeouts');
});

test.run();
