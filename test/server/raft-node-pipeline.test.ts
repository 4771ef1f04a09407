/**
 * RaftNode's pipelined mode (the member's): a write counts as durable only in hand-off order.
 * A Ready that storage finishes at once (a commit-only change writes nothing) must still wait for
 * the writes before it: its messagesAfterPersist may promise entries or a vote that an earlier,
 * still running write holds, and the core asserts persisted() comes in hand-off order (seen once
 * in the cluster fault test as "persisted() out of order: term 4 after 5").
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Raft, ReadyToken } from '../../src/raft/raft.js';
import type { Entry, Message, Ready } from '../../src/raft/raft-types.js';
import { RaftNode } from '../../src/server/raft-node.js';

/** A scripted core: hands out the given Readies in order and records what the driver reports. */
class ScriptedRaft {
  readonly persistedOrder: string[] = [];
  private readonly tokens = new Map<ReadyToken, string>();
  private next = 0;
  constructor(private readonly script: { name: string; ready: Ready }[]) {}
  hasReady(): boolean {
    return this.next < this.script.length;
  }
  ready(): Ready {
    return this.script[this.next]!.ready;
  }
  handOff(): ReadyToken {
    const step = this.script[this.next++]!;
    const last = step.ready.entries[step.ready.entries.length - 1];
    const token: ReadyToken = { lastEntryIndex: last?.index ?? 0, lastEntryTerm: last?.term ?? 0, snapshotIndex: 0, hardStateTerm: 1 };
    this.tokens.set(token, step.name);
    return token;
  }
  persisted(token: ReadyToken): void {
    this.persistedOrder.push(this.tokens.get(token)!);
  }
}

function ready(fields: Partial<Ready>): Ready {
  return {
    softState: null, hardState: null, snapshot: null, entries: [], messages: [], messagesAfterPersist: [],
    committedEntries: [], readStates: [], mustSync: false, ...fields,
  };
}

const entry = (index: number): Entry => ({ index, term: 1 } as unknown as Entry);
const message = (name: string): Message => ({ name } as unknown as Message);

test('a Ready finished at once waits for the running write before it: its acks leave and persisted() comes after', async () => {
  const core = new ScriptedRaft([
    { name: 'A', ready: ready({ entries: [entry(1)], hardState: { term: 1, vote: 0n, commit: 0 }, mustSync: true, messagesAfterPersist: [message('ack of 1')] }) },
    // A commit-only Ready whose ack repeats the promise of entry 1 (a follower answering a
    // duplicate append): storage has nothing to write and returns null at once.
    { name: 'B', ready: ready({ hardState: { term: 1, vote: 0n, commit: 1 }, messagesAfterPersist: [message('ack of 1 again')] }) },
  ]);
  const sent: string[] = [];
  const applied: number[] = [];
  let finishA!: () => void;
  const node = new RaftNode(core as unknown as Raft, {
    save: (_snapshot, entries) => (entries.length > 0 ? new Promise<void>((resolve) => { finishA = resolve; }) : null),
  }, {
    send: (messages) => { for (const m of messages) sent.push((m as unknown as { name: string }).name); },
  }, {
    onSoftState: () => {},
    installSnapshot: () => null,
    applyEntries: (entries) => { for (const e of entries) applied.push(e.index); },
    onReadStates: () => {},
  }, (err) => { throw err; }, null, 0, 4);

  node.process();
  assert.equal(sent, [], 'nothing promised before the write of entry 1 is durable');
  assert.equal(core.persistedOrder, []);
  finishA();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(core.persistedOrder, ['A', 'B']);
  assert.equal(sent, ['ack of 1', 'ack of 1 again']);
});

test.run();
