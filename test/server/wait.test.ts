/** Waiters for proposals (src/server/wait.ts): trigger, fail, timeouts, failAll, capacity, ids. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KeyraftError } from '../../src/platform/errors.js';
import { Wait } from '../../src/server/wait.js';

/** Settles to the KeyraftError code it rejected with, or 'resolved:<value>'. */
function outcome<T>(p: Promise<T>): Promise<string> {
  return p.then((v) => `resolved:${String(v)}`, (err: unknown) => (err instanceof KeyraftError ? err.code : `other:${String(err)}`));
}

test('ids are unique and start at startMs x 1024 (a later run starts above an earlier one)', () => {
  const w = new Wait<number>(10, 1000, 5);
  assert.is(w.newId(), 5 * 1024);
  assert.is(w.newId(), 5 * 1024 + 1);
  assert.ok(new Wait<number>(10, 1000, 6).newId() > 5 * 1024 + 1023);
});

test('trigger resolves once; a second trigger or fail finds nothing', async () => {
  const w = new Wait<string>(10, 60_000);
  const id = w.newId();
  const p = outcome(w.register(id));
  assert.ok(w.has(id));
  assert.ok(w.trigger(id, 'done'));
  assert.not.ok(w.trigger(id, 'again'));
  assert.not.ok(w.fail(id, new KeyraftError('Timeout')));
  assert.is(await p, 'resolved:done');
  assert.is(w.size, 0);
});

test('a waiter times out with Timeout (small timeout, swept by the shared timer)', async () => {
  const w = new Wait<string>(10, 5);
  const late = outcome(w.register(w.newId()));
  // The sweep timer is unref'd (it must not hold a member's process open): keep the test alive.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    assert.is(await late, 'Timeout');
  } finally {
    clearInterval(keepAlive);
  }
  assert.is(w.size, 0);
});

test('failAll rejects every waiter with its own error and empties the table', async () => {
  const w = new Wait<string>(10, 60_000);
  const ps = [0, 1, 2].map(() => outcome(w.register(w.newId())));
  assert.is(w.failAll(() => new KeyraftError('Timeout')), 3);
  assert.equal(await Promise.all(ps), ['Timeout', 'Timeout', 'Timeout']);
  assert.is(w.size, 0);
  assert.is(w.failAll(() => new KeyraftError('Timeout')), 0);
});

test('capacity: a full table refuses with TooManyRequests, and has room again once one settles', async () => {
  const w = new Wait<string>(2, 60_000);
  const a = w.newId();
  const pa = outcome(w.register(a));
  const pb = outcome(w.register(w.newId()));
  assert.throws(() => w.register(w.newId()), (err: unknown) => err instanceof KeyraftError && err.code === 'TooManyRequests');
  w.trigger(a, 'x');
  const pc = outcome(w.register(w.newId()));
  w.failAll(() => new KeyraftError('Timeout'));
  assert.equal(await Promise.all([pa, pb, pc]), ['resolved:x', 'Timeout', 'Timeout']);
});

test.run();
