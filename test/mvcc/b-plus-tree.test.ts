import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BPlusTree } from '../../src/mvcc/b-plus-tree.js';
import { rng } from './helpers.js';

function keyOf(n: number): string {
  // Binary-ish keys, including \0 and high bytes, of varying length.
  return String.fromCharCode(n % 7 === 0 ? 0 : 97 + (n % 26)) + String.fromCharCode(n % 256) + (n % 3 === 0 ? '' : String.fromCharCode((n * 31) % 256));
}

test('random inserts, deletes and seeks match a sorted reference model', () => {
  for (const seed of [1, 2, 3]) {
    const random = rng(seed);
    const tree = new BPlusTree<number>();
    const model = new Map<string, number>();
    for (let step = 0; step < 20_000; step++) {
      const key = keyOf(Math.floor(random() * 3000));
      const action = random();
      if (action < 0.55) {
        tree.set(key, step);
        model.set(key, step);
      } else if (action < 0.9) {
        assert.is(tree.delete(key), model.delete(key), `delete ${JSON.stringify(key)} at step ${step}`);
      } else {
        assert.is(tree.get(key), model.get(key));
      }
      if (step % 2000 === 0) tree.checkInvariants();
    }
    tree.checkInvariants();
    assert.is(tree.size, model.size);
    const sorted = [...model.keys()].sort();
    const scanned: string[] = [];
    for (const c = tree.first(); c.valid; c.next()) scanned.push(c.key);
    assert.equal(scanned, sorted);
    for (let i = 0; i < 200; i++) {
      const start = keyOf(Math.floor(random() * 3000)) + (random() < 0.5 ? '\u0000' : '');
      const c = tree.seek(start);
      const expected = sorted.find((k) => k >= start);
      assert.is(c.valid ? c.key : undefined, expected, `seek ${JSON.stringify(start)}`);
      if (c.valid) assert.is(c.value, model.get(c.key));
    }
  }
});

test('deleting every key empties the tree and it is usable again', () => {
  const tree = new BPlusTree<number>();
  for (let i = 0; i < 5000; i++) tree.set(`k${String(i).padStart(5, '0')}`, i);
  tree.checkInvariants();
  for (let i = 0; i < 5000; i += 2) tree.delete(`k${String(i).padStart(5, '0')}`);
  tree.checkInvariants();
  for (let i = 1; i < 5000; i += 2) tree.delete(`k${String(i).padStart(5, '0')}`);
  tree.checkInvariants();
  assert.is(tree.size, 0);
  assert.not.ok(tree.first().valid);
  tree.set('a', 1);
  assert.is(tree.get('a'), 1);
  tree.checkInvariants();
});

test('string order is byte order for latin1 keys', () => {
  const tree = new BPlusTree<number>();
  const keys = [Buffer.from([0xff]), Buffer.from([0x00]), Buffer.from([0x61, 0x00]), Buffer.from([0x61]), Buffer.from([0x80, 0x01])];
  for (const k of keys) tree.set(k.toString('latin1'), 0);
  const scanned: Buffer[] = [];
  for (const c = tree.first(); c.valid; c.next()) scanned.push(Buffer.from(c.key, 'latin1'));
  assert.equal(scanned.map((x) => x.toString('hex')), [...keys].sort(Buffer.compare).map((x) => x.toString('hex')));
});

test.run();
