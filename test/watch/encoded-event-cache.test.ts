import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { KeyValue } from '../../src/proto/etcd-types.js';
import { EncodedEventCache } from '../../src/watch/encoded-event-cache.js';
import { encodeEvent } from '../../src/watch/watch-response-encoder.js';

/** The catch-up path's shared encodings: the same bytes as encoding anew, shared per KeyValue, bounded. */

const kv = (key: string, rev: number, value = 'v'.repeat(10)): KeyValue => ({
  key: Buffer.from(key), value: Buffer.from(value), create_revision: 1, mod_revision: rev, version: rev, lease: 0n,
});

test('an event is encoded once per KeyValue (with and without prev_kv apart), to the bytes encodeEvent gives', () => {
  const cache = new EncodedEventCache(100, 1 << 20);
  const a = kv('a', 5);
  const prev = kv('a', 4, 'old');
  const first = cache.encode(a, undefined);
  assert.ok(cache.encode(a, undefined) === first, 'a second watcher should get the same bytes');
  assert.equal(Buffer.from(first), Buffer.from(encodeEvent(a, undefined)));
  const withPrev = cache.encode(a, prev);
  assert.ok(withPrev !== first);
  assert.equal(Buffer.from(withPrev), Buffer.from(encodeEvent(a, prev)));
  assert.ok(cache.encode(a, prev) === withPrev);
  // An equal but distinct KeyValue (a history read that built fresh objects) is a miss, not a wrong hit.
  const b = kv('b', 5);
  assert.equal(Buffer.from(cache.encode(b, undefined)), Buffer.from(encodeEvent(b, undefined)));
  assert.is(cache.size, 3);
});

test('bounded in entries and in bytes: the oldest go first', () => {
  const byEntries = new EncodedEventCache(10, 1 << 20);
  const kvs = Array.from({ length: 50 }, (_, i) => kv(`k${i}`, i + 1));
  for (const x of kvs) byEntries.encode(x, undefined);
  assert.is(byEntries.size, 10);
  const last = byEntries.encode(kvs[49]!, undefined);
  assert.ok(byEntries.encode(kvs[49]!, undefined) === last);
  const size = encodeEvent(kvs[0]!, undefined).length;
  const byBytes = new EncodedEventCache(1000, size * 5);
  for (const x of kvs) byBytes.encode(x, undefined);
  assert.ok(byBytes.sizeBytes <= size * 5, `${byBytes.sizeBytes} bytes kept, bound ${size * 5}`);
  assert.ok(byBytes.size <= 5 && byBytes.size > 0);
});

test.run();
