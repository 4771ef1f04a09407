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

/** A transport and state machine that log, in one list, what was sent, flushed and applied. */
function recordingNode(core: ScriptedRaft, save: (entries: readonly Entry[]) => Promise<void> | null, persistedLastIndex: number) {
  const events: string[] = [];
  const node = new RaftNode(core as unknown as Raft, { save: (_snapshot, entries) => save(entries) }, {
    send: (messages) => { for (const m of messages) events.push(`send ${(m as unknown as { name: string }).name}`); },
    flush: () => { events.push('flush'); },
  }, {
    onSoftState: () => {},
    installSnapshot: () => null,
    applyEntries: (entries) => { events.push(`apply ${entries.map((e) => e.index).join(',')}`); },
    onReadStates: () => {},
  }, (err) => { throw err; }, null, persistedLastIndex, 4);
  return { node, events };
}

/** The events up to and including the first apply, without flushes of nothing (no-ops). */
function untilApply(events: string[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    if (e === 'flush' && (out.length === 0 || out[out.length - 1] === 'flush')) continue;
    out.push(e);
    if (e.startsWith('apply')) break;
  }
  return out;
}

test('a follower\'s acks are put on the wire before it applies: the leader\'s commit waits for the ack, not for our apply', async () => {
  // The write of entry 2 becomes durable; the same Ready commits entry 2 (known committed from
  // the leader's append), so the apply of 2 runs right after the write completes.
  const core = new ScriptedRaft([
    { name: 'A', ready: ready({ entries: [entry(2)], committedEntries: [entry(2)], mustSync: true, messagesAfterPersist: [message('ack of 2')] }) },
  ]);
  let finish!: () => void;
  const { node, events } = recordingNode(core, () => new Promise<void>((resolve) => { finish = resolve; }), 1);
  node.process();
  events.length = 0;
  finish();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(untilApply(events), ['send ack of 2', 'flush', 'apply 2']);
});

test('a leader\'s appends are put on the wire before it applies what was already durable', () => {
  // Entry 1 is durable here (persistedLastIndex 1) and committed: it is applied while the write of
  // entry 2 runs. The append of entry 2 to the followers must not wait for that apply.
  const core = new ScriptedRaft([
    { name: 'A', ready: ready({ entries: [entry(2)], committedEntries: [entry(1)], mustSync: true, messages: [message('append 2')] }) },
  ]);
  const { node, events } = recordingNode(core, () => new Promise<void>(() => {}), 1);
  node.process();
  assert.equal(untilApply(events), ['send append 2', 'flush', 'apply 1']);
});

test('acks of writes completed by one fdatasync go out together, before the apply', async () => {
  const core = new ScriptedRaft([
    { name: 'A', ready: ready({ entries: [entry(2)], mustSync: true, messagesAfterPersist: [message('ack of 2')] }) },
    { name: 'B', ready: ready({ entries: [entry(3)], committedEntries: [entry(2)], mustSync: true, messagesAfterPersist: [message('ack of 3')] }) },
  ]);
  const finishers: (() => void)[] = [];
  const { node, events } = recordingNode(core, () => new Promise<void>((resolve) => { finishers.push(resolve); }), 1);
  node.process();
  assert.equal(finishers.length, 2, 'both writes in flight');
  events.length = 0;
  // Storage reports B durable first, then A (one fdatasync covered both): completion in order.
  finishers[1]!();
  finishers[0]!();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(untilApply(events), ['send ack of 2', 'send ack of 3', 'flush', 'apply 2']);
  assert.equal(core.persistedOrder, ['A', 'B']);
});

test.run();
