/** RecordArena: allocations never overlap, small ones share chunks, large ones stand alone. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RecordArena } from '../../src/mvcc/record-arena.js';
import { rng } from './helpers.js';

test('seeded allocations keep their own bytes: each filled with its own pattern, all intact afterwards', () => {
  const random = rng(42);
  const arena = new RecordArena();
  const held: Array<{ buf: Buffer; fill: number }> = [];
  for (let i = 0; i < 20_000; i++) {
    // Mostly record-sized, now and then one past half a chunk (its own allocation).
    const bytes = random() < 0.05 ? 4096 + Math.floor(random() * 20_000) : Math.floor(random() * 600);
    const buf = arena.alloc(bytes);
    assert.is(buf.length, bytes);
    const fill = i & 0xff;
    buf.fill(fill);
    held.push({ buf, fill });
  }
  for (const { buf, fill } of held) {
    for (let j = 0; j < buf.length; j++) {
      if (buf[j] !== fill) assert.unreachable(`byte ${j} of a ${buf.length}-byte allocation overwritten`);
    }
  }
});

test('small allocations share 8 KiB chunks, 8-byte aligned; large ones get their own memory', () => {
  const arena = new RecordArena();
  const a = arena.alloc(280);
  const b = arena.alloc(280);
  assert.is(a.buffer, b.buffer, 'one chunk');
  assert.is(b.byteOffset - a.byteOffset, 280);
  const c = arena.alloc(3);
  const d = arena.alloc(5);
  assert.is(d.byteOffset - c.byteOffset, 8, 'aligned to 8');
  const large = arena.alloc(5000);
  assert.is.not(large.buffer, a.buffer);
  assert.is(large.byteOffset, 0);
  assert.is(large.buffer.byteLength, 5000);
});

test('copy returns equal bytes in the arena, not a view of the source', () => {
  const arena = new RecordArena();
  const source = Buffer.from('a key from a request buffer');
  const copy = arena.copy(source);
  assert.equal(copy, source);
  source.fill(0);
  assert.is(copy.toString(), 'a key from a request buffer');
});

test.run();
