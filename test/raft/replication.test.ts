// Log replication and commitment: Raft paper 5.3 and 5.4.2 (Figure 8), batching, pipelining and
// flow control, and the Ready contract's ordering for a leader's own writes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Raft } from '../../src/raft/raft.js';
import { isRaftError } from '../../src/raft/raft-errors.js';
import { MessageType, Role, type Message } from '../../src/raft/raft-types.js';
import { SeededRandom } from '../../src/raft/seeded-random.js';
import { TestCluster } from './test-cluster.js';

const enc = (s: string) => new TextEncoder().encode(s);

test('5.3: entries proposed at the leader are replicated, committed and applied everywhere in order', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  for (const v of ['a', 'b', 'c']) c.propose(1, v);
  c.stabilize();
  for (const id of [1, 2, 3]) assert.equal(c.appliedData(id), ['a', 'b', 'c']);
  assert.is(c.logOf(2), c.logOf(1));
});

test('5.3: a follower\'s conflicting uncommitted entries are overwritten by the leader\'s log', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.propose(1, 'kept');
  c.stabilize();
  c.isolate(1);
  c.propose(1, 'lost-1');
  c.propose(1, 'lost-2');
  c.stabilize();
  const leader = (() => {
    for (let i = 0; i < 100; i++) {
      c.tick(2);
      c.tick(3);
      c.stabilize();
      const l = [2, 3].find((id) => c.raft(id).role === Role.Leader);
      if (l !== undefined) return l;
    }
    throw new Error('no new leader');
  })();
  c.propose(leader, 'won');
  c.stabilize();
  c.heal();
  c.run(15);
  assert.is(c.logOf(1), c.logOf(leader));
  assert.equal(c.appliedData(1), ['kept', 'won']);
  assert.equal(c.appliedData(2), ['kept', 'won']);
});

test('5.3: a follower that missed 50 entries catches up with at most one rejection', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.isolate(3);
  for (let i = 0; i < 50; i++) c.propose(1, `e${i}`);
  c.stabilize();
  c.heal();
  c.recorded = [];
  c.run(3);
  const rejections = c.recorded.filter((l) => l.includes('AppResp') && l.includes('reject'));
  assert.ok(rejections.length <= 1, `at most one rejection to find the match point, got ${rejections.length}`);
  assert.is(c.logOf(3), c.logOf(1));
});

test('5.3 fast backtracking: a follower with a stale tail of an old term is repaired after one rejection', () => {
  // 1 (term 2) appends 10 stale entries alone; 2 (term 3) replicates 11 entries to 3; 3 leads term 4
  // and first guesses 1 has all of its log. Without the conflict-term hint this takes 11 rejections.
  const c = TestCluster.bootstrap(3, { checkQuorum: false, preVote: false });
  c.elect(1);
  c.isolate(1);
  for (let i = 0; i < 10; i++) c.propose(1, `stale${i}`);
  c.elect(2);
  for (let i = 0; i < 10; i++) c.propose(2, `new${i}`);
  c.stabilize();
  c.heal();
  c.isolate(2);
  c.queue.length = 0;
  c.recorded = [];
  c.elect(3);
  const rejections = c.recorded.filter((l) => l.startsWith('1->3 AppResp') && l.includes('reject'));
  assert.is(rejections.length, 1, c.recorded.join('\n'));
  assert.is(c.logOf(1), c.logOf(3));
  assert.equal(c.appliedData(1), [...Array.from({ length: 10 }, (_, i) => `new${i}`)]);
});

/**
 * Figure 8 (Raft paper 5.4.2): leader 1 of term 4 gets its term-2 entry onto a majority, which
 * must not commit it; only an entry of term 4 on a majority commits (and everything before it).
 * One entry per MsgApp makes the intermediate state observable.
 */
function figure8(bugs?: { commitPreviousTermByCount: boolean }): { commitAfterOldEntry: number; final: number; oldIndex: number } {
  const c = TestCluster.bootstrap(3, { preVote: false, checkQuorum: false, maxMessageBytes: 1, bugs });
  c.elect(1); // term 2
  c.partition([1], [2, 3]);
  const oldIndex = c.propose(1, 'x'); // (5, term 2) only on 1
  c.stabilize();
  c.campaign(2); // term 3: 3 votes for 2, which appends a no-op (5, term 3) that reaches no one
  c.deliverAllWhere((m) => m.type === MessageType.Vote || m.type === MessageType.VoteResp);
  assert.is(c.raft(2).role, Role.Leader);
  c.queue.length = 0;
  c.heal();
  c.isolate(2);
  c.restart(1); // 1 crashes and comes back a follower of term 2, with (5, term 2) persisted
  c.campaign(1); // term 3: 3 already voted in term 3
  c.stabilize();
  c.campaign(1); // term 4: 3 votes for 1 (its last entry (5, 2) beats 3's (4, 2))
  let commitAfterOldEntry = -1;
  while (c.queue.length > 0) {
    const m: Message = c.queue.shift()!;
    c.deliver(m);
    if (m.type === MessageType.AppResp && m.from === 3n && !m.reject && m.index === oldIndex) {
      commitAfterOldEntry = c.raft(1).log.committed;
    }
  }
  assert.is(c.raft(1).role, Role.Leader);
  assert.is(c.raft(1).term, 4);
  return { commitAfterOldEntry, final: c.raft(1).log.committed, oldIndex };
}

test('5.4.2 Figure 8: an entry of a previous term on a majority is not committed by counting replicas', () => {
  const r = figure8();
  assert.is(r.commitAfterOldEntry, r.oldIndex - 1, 'old-term entry on a majority, commit unchanged');
  assert.is(r.final, r.oldIndex + 1, 'committed together with the new term\'s entry');
});

test('5.4.2 Figure 8 mutation switch: commitPreviousTermByCount commits it (the bug the simulator must catch)', () => {
  const r = figure8({ commitPreviousTermByCount: true });
  assert.is(r.commitAfterOldEntry, r.oldIndex);
});

test('the commit index reaches followers on heartbeats when the MsgApp carrying it is lost', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.propose(1, 'a');
  // Deliver the appends and acks, then drop the round that would carry the new commit.
  c.deliverWhere((m) => m.type === MessageType.App);
  c.deliverWhere((m) => m.type === MessageType.AppResp);
  assert.is(c.raft(1).log.committed, 3);
  c.dropWhere((m) => m.type === MessageType.App);
  assert.is(c.raft(2).log.committed, 2);
  c.tick(1); // heartbeat
  c.stabilize();
  assert.is(c.raft(2).log.committed, 3);
  assert.equal(c.appliedData(2), ['a']);
});

test('batching: proposeBatch sends many entries in one MsgApp, bounded by maxMessageBytes', () => {
  const c = TestCluster.bootstrap(3, { maxMessageBytes: 1024 * 1024 });
  c.elect(1);
  c.raft(1).proposeBatch(Array.from({ length: 100 }, (_, i) => enc(`v${i}`)));
  c.process(1n);
  const apps = c.queue.filter((m) => m.type === MessageType.App && m.to === 2n);
  assert.is(apps.length, 1);
  assert.is(apps[0]!.entries.length, 100);
  c.stabilize();
  assert.is(c.appliedData(3).length, 100);

  const small = TestCluster.bootstrap(3, { maxMessageBytes: 100 });
  small.elect(1);
  small.raft(1).proposeBatch(Array.from({ length: 100 }, (_, i) => enc(`v${i}`)));
  small.process(1n);
  for (const m of small.queue.filter((x) => x.type === MessageType.App)) {
    assert.ok(m.entries.length >= 1 && m.entries.length <= 6, `entries per message ${m.entries.length}`);
  }
  small.stabilize();
  assert.is(small.appliedData(3).length, 100);
});

test('flow control: at most inflightMessagesMax unacknowledged MsgApps per follower in replicate state', () => {
  const c = TestCluster.bootstrap(3, { maxMessageBytes: 1, inflightMessagesMax: 3 });
  c.elect(1);
  for (let i = 0; i < 10; i++) c.propose(1, `p${i}`);
  const toTwo = c.queue.filter((m) => m.type === MessageType.App && m.to === 2n && m.entries.length > 0);
  assert.is(toTwo.length, 3, 'window of three');
  const pr = c.raft(1).progressOf(2n)!;
  assert.is(pr.state, 'replicate');
  assert.is(pr.isPaused(), true);
  c.stabilize();
  assert.is(c.appliedData(2).length, 10, 'acks reopen the window until everything is through');
});

test('probe state: one MsgApp at a time until the follower answers', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.isolate(3);
  c.run(12); // the leader's view of 3 falls back to probe after a rejection-free silence
  c.raft(1).reportUnreachable(3n);
  assert.is(c.raft(1).progressOf(3n)!.state, 'probe');
  c.queue.length = 0;
  for (let i = 0; i < 5; i++) c.propose(1, `p${i}`);
  const toThree = c.queue.filter((m) => m.type === MessageType.App && m.to === 3n);
  assert.is(toThree.length, 1, 'probe sends one');
  c.heal();
  c.stabilize();
  c.run(2);
  assert.equal(c.appliedData(3), ['p0', 'p1', 'p2', 'p3', 'p4']);
});

test('Ready contract: a leader sends appends before its own write is durable, but counts itself only after advance()', () => {
  const raft = Raft.bootstrap({ id: 1n, electionTicks: 10, heartbeatTicks: 1, random: new SeededRandom(1) }, [1n, 2n, 3n]);
  raft.ready();
  raft.advance();
  raft.campaign();
  let rd = raft.ready();
  assert.is(rd.messages.length, 0, 'vote requests wait for the persisted term and vote');
  assert.is(rd.messagesAfterPersist.filter((m) => m.type === MessageType.PreVote).length, 2);
  raft.advance();
  raft.step({ ...rd.messagesAfterPersist[0]!, type: MessageType.PreVoteResp, from: 2n, to: 1n, reject: false });
  rd = raft.ready();
  raft.advance();
  raft.step({ ...rd.messagesAfterPersist[0]!, type: MessageType.VoteResp, from: 2n, to: 1n, term: raft.term, reject: false });
  assert.is(raft.role, Role.Leader);
  rd = raft.ready();
  assert.is(rd.messages.filter((m) => m.type === MessageType.App).length, 2, 'the no-op\'s appends leave with the write');
  raft.advance();
  const ack = (from: bigint, index: number) => raft.step({
    type: MessageType.AppResp, from, to: 1n, term: raft.term, logTerm: 0, index, entries: [], commit: 0, reject: false,
    rejectHint: 0, snapshot: null, context: null, transferee: 0n,
  });
  ack(2n, 2);
  ack(3n, 2);
  assert.is(raft.log.committed, 2);
  raft.ready();
  raft.advance();
  const index = raft.propose(enc('w'));
  rd = raft.ready();
  assert.is(rd.entries.length, 1);
  assert.is(rd.messages.filter((m) => m.type === MessageType.App).length, 2, 'appends may leave with the write');
  // Follower 2 acks before our own write completes: 1 of 3 durable copies (2's) plus ours not yet.
  ack(2n, index);
  assert.is(raft.log.committed, index - 1, 'not committed: the leader\'s own copy is not durable yet');
  raft.advance();
  assert.is(raft.log.committed, index, 'durable on the leader and on 2: a majority');
});

test('bounded: a leader without a quorum refuses proposals past uncommittedBytesMax, and accepts again after commit', () => {
  const c = TestCluster.bootstrap(3, { uncommittedBytesMax: 100 });
  c.elect(1);
  c.isolate(1);
  const big = new Uint8Array(60);
  c.raft(1).propose(big);
  assert.throws(() => c.raft(1).propose(big), (e: unknown) => isRaftError(e, 'queue-full'));
  c.raft(1).propose(new Uint8Array(30)); // still within the budget
  c.heal();
  c.run(3);
  assert.is(c.raft(1).role, Role.Leader);
  c.raft(1).propose(big);
  c.raft(1).propose(new Uint8Array(30));
});

test('bounded: ReadIndex rounds waiting for a quorum are capped (queue-full)', () => {
  const c = TestCluster.bootstrap(3, { checkQuorum: false, pendingReadIndexMax: 2 });
  c.elect(1);
  c.isolate(1);
  c.raft(1).readIndex(Uint8Array.of(1));
  c.raft(1).readIndex(Uint8Array.of(2));
  assert.throws(() => c.raft(1).readIndex(Uint8Array.of(3)), (e: unknown) => isRaftError(e, 'queue-full'));
});

test('a single-member cluster commits after its own write is durable', () => {
  const c = TestCluster.bootstrap(1);
  c.campaign(1);
  c.propose(1, 'solo');
  assert.equal(c.appliedData(1), ['solo']);
});

test('restart: a member restarts from its persisted hard state and log and catches up', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.propose(1, 'a');
  c.stabilize();
  c.restart(2);
  assert.is(c.raft(2).term, 2);
  assert.is(c.raft(2).vote, 1n);
  assert.is(c.raft(2).log.committed, 3);
  c.propose(1, 'b');
  c.stabilize();
  assert.equal(c.appliedData(2), ['a', 'b'], 'a restarted member re-applies from its applied index (0 here)');
});

test.run();
