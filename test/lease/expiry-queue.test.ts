import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ExpiryQueue, type QueueItem } from '../../src/lease/expiry-queue.js';
import { rng } from '../seeded-random.js';

interface Item extends QueueItem {
  name: number;
}

const item = (name: number): Item => ({ name, dueMs: 0, slot: -1 });

test('pop order is due order; update moves an item both ways; remove takes it out', () => {
  const q = new ExpiryQueue<Item>();
  const a = item(1), b = item(2), c = item(3);
  q.push(a, 5);
  q.push(b, 3);
  q.push(c, 9);
  assert.is(q.peek(), b);
  q.update(b, 10);
  assert.is(q.peek(), a);
  q.update(c, 1);
  assert.is(q.pop(), c);
  q.remove(a);
  assert.is(q.has(a), false);
  assert.is(q.pop(), b);
  assert.is(q.pop(), undefined);
  assert.is(q.size, 0);
});

// Reference model: a plain array scanned for its minimum. Seeded random pushes, updates, removes
// and pops; after each, the heap's invariant holds and its top has the model's smallest due time.
test('reference model: 20 seeds x 2,000 random operations agree with a naive queue', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const random = rng(seed);
    const q = new ExpiryQueue<Item>();
    const model = new Map<number, number>(); // name -> due
    const items: Item[] = [];
    for (let i = 0; i < 2000; i++) {
      const op = random();
      if (op < 0.35 || items.length === 0) {
        const it = item(items.length);
        items.push(it);
        const due = Math.floor(random() * 1000);
        q.push(it, due);
        model.set(it.name, due);
      } else if (op < 0.7) {
        const it = items[Math.floor(random() * items.length)]!;
        const due = Math.floor(random() * 1000);
        q.update(it, due);
        model.set(it.name, due);
      } else if (op < 0.85) {
        const it = items[Math.floor(random() * items.length)]!;
        q.remove(it);
        model.delete(it.name);
      } else {
        const top = q.pop();
        if (model.size === 0) {
          assert.is(top, undefined);
        } else {
          const min = Math.min(...model.values());
          assert.ok(top !== undefined, `seed ${seed} op ${i}: pop of a non-empty queue gave nothing`);
          assert.is(model.get(top!.name), min, `seed ${seed} op ${i}: popped due ${model.get(top!.name)}, model min ${min}`);
          model.delete(top!.name);
        }
      }
      q.checkInvariant();
      assert.is(q.size, model.size, `seed ${seed} op ${i}: size`);
      for (const it of items) assert.is(q.has(it), model.has(it.name), `seed ${seed} op ${i}: membership of ${it.name}`);
    }
  }
});

test.run();
