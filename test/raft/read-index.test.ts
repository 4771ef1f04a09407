// ReadIndex (dissertation 6.4): linearizable reads without writing to the log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MessageType, Role } from '../../src/raft/raft-types.js';
import { TestCluster } from './test-cluster.js';

const ctx = (n: number) => Uint8Array.of(0xaa, n);

test('6.4: the leader answers with its commit index after a quorum acknowledges a heartbeat round', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.propose(1, 'a');
  c.stabilize();
  c.raft(1).readIndex(ctx(1));
  c.process(1n);
  assert.equal(c.node(1).readStates, [], 'not before the quorum answers');
  c.stabilize();
  assert.equal(c.node(1).readStates, [{ index: 3, context: ctx(1) }]);
});

test('6.4: reads at a follower are forwarded; the answer arrives as a ReadState on the follower', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.raft(3).readIndex(ctx(7));
  c.process(3n);
  c.stabilize();
  assert.equal(c.node(3).readStates, [{ index: c.raft(1).log.committed, context: ctx(7) }]);
});

test('6.4: a leader cut off from its quorum never answers (a newer leader may have committed more)', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.isolate(1);
  c.raft(1).readIndex(ctx(2));
  c.process(1n);
  c.stabilize();
  assert.equal(c.node(1).readStates, []);
});

test('6.4: one heartbeat round confirms every read queued before it (batching)', () => {
  const c = TestCluster.bootstrap(3);
  c.elect(1);
  c.raft(1).readIndex(ctx(1));
  c.raft(1).readIndex(ctx(2));
  c.process(1n);
  // Lose the answers to the first round: the second round's quorum confirms both.
  c.dropWhere((m) => m.type === MessageType.Heartbeat && m.context !== null && m.context[1] === 1);
  c.stabilize();
  assert.equal(c.node(1).readStates.map((r) => r.context[1]), [1, 2]);
});

test('6.4: a new leader holds reads until it has committed an entry of its own term', () => {
  const c = TestCluster.bootstrap(3);
  c.campaign(1);
  c.deliverAllWhere((m) => m.type === MessageType.PreVote || m.type === MessageType.PreVoteResp
    || m.type === MessageType.Vote || m.type === MessageType.VoteResp);
  assert.is(c.raft(1).role, Role.Leader);
  c.raft(1).readIndex(ctx(3));
  c.process(1n);
  assert.is(c.queue.filter((m) => m.type === MessageType.Heartbeat).length, 0, 'no round before the no-op commits');
  c.stabilize();
  assert.equal(c.node(1).readStates, [{ index: 2, context: ctx(3) }], 'answered with the no-op\'s index');
});

test('6.4: a lone leader answers at once', () => {
  const c = TestCluster.bootstrap(1);
  c.campaign(1);
  c.raft(1).readIndex(ctx(9));
  c.process(1n);
  assert.equal(c.node(1).readStates, [{ index: 2, context: ctx(9) }]);
});

test.run();
