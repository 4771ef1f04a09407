/** Batched linearizable reads (src/server/read-index-queue.ts), with explicit times in ms. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KeyraftError } from '../../src/platform/errors.js';
import { ReadIndexQueue } from '../../src/server/read-index-queue.js';

function outcome(p: Promise<void>): { state: string } {
  const o = { state: 'pending' };
  p.then(() => { o.state = 'resolved'; }, (err: unknown) => { o.state = err instanceof KeyraftError ? err.code : `other:${String(err)}`; });
  return o;
}

/** Lets promise callbacks run. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Records the contexts handed to the core. */
function asker(refusal: Error | null = null): { contexts: Uint8Array[]; ask: (c: Uint8Array) => Error | null } {
  const contexts: Uint8Array[] = [];
  return { contexts, ask: (c) => { contexts.push(c); return refusal; } };
}

test('reads of one turn share one round; answered after applied -> served at once', async () => {
  const q = new ReadIndexQueue(7n, 1000, 100, 10);
  const r1 = outcome(q.add());
  const r2 = outcome(q.add());
  const a = asker();
  q.startRound(0, a.ask);
  assert.is(a.contexts.length, 1);
  assert.is(a.contexts[0]!.length, 16);
  q.startRound(0, a.ask);
  assert.is(a.contexts.length, 1, 'no reads waiting: no new round');
  q.answered(a.contexts[0]!, 120, 120);
  await settle();
  assert.equal([r1.state, r2.state], ['resolved', 'resolved']);
});

test('answered before applied: the reads wait until apply reaches the read index, in order', async () => {
  const q = new ReadIndexQueue(7n, 1000, 100, 10);
  const a = asker();
  const r1 = outcome(q.add());
  q.startRound(0, a.ask);
  const r2 = outcome(q.add());
  q.startRound(1, a.ask);
  q.answered(a.contexts[0]!, 120, 118);
  q.answered(a.contexts[1]!, 125, 118);
  q.applied(119);
  await settle();
  assert.equal([r1.state, r2.state], ['pending', 'pending']);
  q.applied(120);
  await settle();
  assert.equal([r1.state, r2.state], ['resolved', 'pending']);
  q.applied(125);
  await settle();
  assert.is(r2.state, 'resolved');
});

test('an answer for another member, a stranger context or a second answer is ignored', async () => {
  const q = new ReadIndexQueue(7n, 1000, 100, 10);
  const a = asker();
  const r = outcome(q.add());
  q.startRound(0, a.ask);
  const other = Uint8Array.from(a.contexts[0]!);
  other[7] = 8; // member 8's round with the same number
  q.answered(other, 1, 10);
  q.answered(Uint8Array.of(1, 2, 3), 1, 10);
  await settle();
  assert.is(r.state, 'pending');
  q.answered(a.contexts[0]!, 5, 10);
  q.answered(a.contexts[0]!, 5, 10);
  await settle();
  assert.is(r.state, 'resolved');
});

test('an unanswered round is asked again with a new context after retryMs; the old context is then ignored', async () => {
  const q = new ReadIndexQueue(7n, 1000, 100, 10);
  const a = asker();
  const r = outcome(q.add());
  q.startRound(0, a.ask);
  q.retryDue(99, a.ask);
  assert.is(a.contexts.length, 1, 'not yet due');
  q.retryDue(100, a.ask);
  assert.is(a.contexts.length, 2);
  assert.is(q.slowRounds, 1);
  assert.not.equal([...a.contexts[1]!], [...a.contexts[0]!]);
  q.answered(a.contexts[0]!, 3, 10);
  await settle();
  assert.is(r.state, 'pending', 'the first context no longer names the round');
  q.answered(a.contexts[1]!, 3, 10);
  await settle();
  assert.is(r.state, 'resolved');
});

test('timeouts: unanswered and answered-but-not-applied rounds fail with Timeout after timeoutMs', async () => {
  const q = new ReadIndexQueue(7n, 50, 20, 10);
  const a = asker();
  const unanswered = outcome(q.add());
  q.startRound(0, a.ask);
  const notApplied = outcome(q.add());
  q.startRound(0, a.ask);
  q.answered(a.contexts[1]!, 100, 10);
  q.retryDue(49, a.ask);
  await settle();
  assert.equal([unanswered.state, notApplied.state], ['pending', 'pending']);
  q.retryDue(50, a.ask);
  await settle();
  assert.equal([unanswered.state, notApplied.state], ['Timeout', 'Timeout']);
  q.applied(100); // nothing left to serve
  assert.is(outcome(q.add()).state, 'pending', 'capacity returned');
});

test('a refused ask fails its reads with the refusal', async () => {
  const q = new ReadIndexQueue(7n, 1000, 100, 10);
  const r = outcome(q.add());
  q.startRound(0, asker(new KeyraftError('NoLeader')).ask);
  await settle();
  assert.is(r.state, 'NoLeader');
});

test('failAll fails waiting, asked and answered reads; capacity bounds waiting reads', async () => {
  const q = new ReadIndexQueue(7n, 1000, 100, 3);
  const a = asker();
  const asked = outcome(q.add());
  q.startRound(0, a.ask);
  const answered = outcome(q.add());
  q.startRound(0, a.ask);
  q.answered(a.contexts[1]!, 50, 0);
  const waiting = outcome(q.add());
  const refused = outcome(q.add());
  await settle();
  assert.is(refused.state, 'TooManyRequests');
  q.failAll(() => new KeyraftError('Timeout'));
  await settle();
  assert.equal([asked.state, answered.state, waiting.state], ['Timeout', 'Timeout', 'Timeout']);
  const again = [outcome(q.add()), outcome(q.add()), outcome(q.add())];
  await settle();
  assert.equal(again.map((o) => o.state), ['pending', 'pending', 'pending'], 'failAll gave the capacity back');
});

test.run();
