// Log compaction and InstallSnapshot (Raft paper 7): a follower behind the compacted log gets the
// leader's snapshot, installs it, then continues from the log; the configuration travels with it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfChangeType } from '../../src/raft/conf-change.js';
import { isRaftError } from '../../src/raft/raft-errors.js';
import { MessageType, makeMessage } from '../../src/raft/raft-types.js';
import { TestCluster } from './test-cluster.js';

const enc = (s: string) => new TextEncoder().encode(s);

test('7: a follower behind the compacted log receives the snapshot, installs it and catches up', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.propose(1, 'a');
  c.stabilize();
  c.isolate(3);
  for (const v of ['b', 'c', 'd']) c.propose(1, v);
  c.stabilize();
  const applied = c.raft(1).status().applied;
  const snap = c.raft(1).compact(applied, enc(`state@${applied}`));
  assert.is(snap.metadata.index, applied);
  assert.equal(snap.metadata.confState, { voters: [1n, 2n, 3n], learners: [] });
  assert.is(c.raft(1).log.firstIndex(), applied + 1, 'entries up to the snapshot are gone');
  c.heal();
  c.recorded = [];
  c.run(3);
  assert.ok(c.recorded.some((l) => l.startsWith('1->3 Snap')), 'the leader sent the snapshot');
  const n3 = c.node(3);
  assert.is(n3.snapshot.metadata.index, applied, 'the follower persisted it');
  assert.is(new TextDecoder().decode(n3.snapshot.data), `state@${applied}`);
  c.propose(1, 'e');
  c.stabilize();
  assert.equal(c.appliedData(3), ['a', 'e'], 'entries before the snapshot came from the log, after it from the log again');
  assert.is(c.raft(3).log.committed, c.raft(1).log.committed);
});

test('7: a restarted member rebuilds from its snapshot and the entries after it', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  for (const v of ['a', 'b']) c.propose(1, v);
  c.stabilize();
  const n2 = c.node(2);
  const applied = c.raft(2).status().applied;
  n2.snapshot = c.raft(2).compact(applied, enc('image'));
  n2.entries = n2.entries.filter((e) => e.index > applied);
  c.propose(1, 'c');
  c.stabilize();
  c.restart(2);
  assert.is(c.raft(2).log.firstIndex(), applied + 1);
  assert.is(c.raft(2).status().applied, c.raft(2).log.committed, 'then applies the committed entries after it');
  assert.equal(c.appliedData(2), ['c'], 'only entries after the snapshot are re-applied');
});

test('7: a snapshot at or below the follower\'s commit is ignored (answered with its commit index)', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.propose(1, 'a');
  c.stabilize();
  const r2 = c.raft(2);
  const commit = r2.log.committed;
  r2.step(makeMessage({
    type: MessageType.Snap, from: 1n, to: 2n, term: r2.term,
    snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1n, 2n, 3n], learners: [] } }, data: enc('old') },
  }));
  const rd = r2.ready();
  assert.is(rd.snapshot, null);
  assert.is(rd.messagesAfterPersist[0]!.type, MessageType.AppResp);
  assert.is(rd.messagesAfterPersist[0]!.index, commit);
  r2.advance();
});

test('7: a snapshot whose last entry the follower already has only advances its commit', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.propose(1, 'a');
  c.deliverWhere((m) => m.type === MessageType.App);
  c.queue.length = 0;
  const r2 = c.raft(2);
  assert.is(r2.log.lastIndex(), 3);
  assert.is(r2.log.committed, 2);
  r2.step(makeMessage({
    type: MessageType.Snap, from: 1n, to: 2n, term: r2.term,
    snapshot: { metadata: { index: 3, term: 2, confState: { voters: [1n, 2n, 3n], learners: [] } }, data: enc('s') },
  }));
  const rd = r2.ready();
  assert.is(rd.snapshot, null, 'no install: the log already matches');
  assert.is(rd.hardState?.commit, 3);
  r2.advance();
});

test('7: compact refuses an index not yet applied, or not newer than the current snapshot', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  const r = c.raft(1);
  assert.throws(() => r.compact(r.log.lastIndex() + 5, enc('x')), (e: unknown) => isRaftError(e, 'unavailable-index'));
  r.compact(2, enc('x'));
  assert.throws(() => r.compact(2, enc('y')), (e: unknown) => isRaftError(e, 'compacted'));
});

test('7: the snapshot carries the configuration as of its index, not the latest', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.stabilize();
  const before = c.raft(1).status().applied;
  c.raft(1).proposeConfChange({ type: ConfChangeType.AddLearner, memberId: 4n, context: new Uint8Array(0) });
  c.addEmptyNode(4n);
  c.stabilize();
  const r = c.raft(1);
  // A snapshot at an index before the change holds the old configuration.
  assert.equal(r.log.confAt(before), { voters: [1n, 2n, 3n], learners: [] });
  const snap = r.compact(r.status().applied, enc('x'));
  assert.equal(snap.metadata.confState, { voters: [1n, 2n, 3n], learners: [4n] });
});

test('7: a member added after compaction learns log and configuration from the snapshot', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  for (const v of ['a', 'b']) c.propose(1, v);
  c.stabilize();
  const r = c.raft(1);
  r.compact(r.status().applied, enc('image'));
  r.proposeConfChange({ type: ConfChangeType.AddLearner, memberId: 4n, context: new Uint8Array(0) });
  c.process(1n);
  c.addEmptyNode(4n);
  c.run(3);
  const n4 = c.node(4);
  assert.ok(n4.snapshot.metadata.index > 0, 'got a snapshot');
  assert.equal(c.raft(4).status().conf, { voters: [1n, 2n, 3n], learners: [4n] });
  assert.is(c.raft(4).log.committed, r.log.committed);
});

test.run();
