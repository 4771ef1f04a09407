import { assert } from '../platform/assert.js';

/**
 * An in-memory B+tree from string keys to values, ordered by JavaScript string comparison. The
 * key index stores user keys as latin1 strings (one char per byte), for which string order is
 * byte order: exactly etcd's bytes.Compare order.
 *
 * Shape: internal nodes hold `keys[i]` = a lower bound of every key under `children[i + 1]` (and
 * an upper bound, exclusive, of `children[i]`); leaves hold sorted keys and values and are linked
 * both ways for ordered scans. Lookups and inserts are O(log n) with LEAF_ENTRIES_MAX-way fan-out.
 *
 * Deletes remove empty nodes but do not merge underfull ones: the tree never gets taller than the
 * largest size it has held, and scans skip no empty leaves. A workload that deletes most keys
 * leaves sparse leaves behind until they refill; that costs memory, never correctness.
 *
 * Invariant: every leaf is non-empty, except the root leaf of an empty tree.
 * Invariant: keys strictly increase along the leaf chain.
 */

const LEAF_ENTRIES_MAX = 64;
const INTERNAL_CHILDREN_MAX = 64;

class Leaf<V> {
  keys: string[] = [];
  values: V[] = [];
  next: Leaf<V> | null = null;
  prev: Leaf<V> | null = null;
}

class Internal<V> {
  keys: string[] = [];
  children: Array<Node<V>> = [];
}

type Node<V> = Leaf<V> | Internal<V>;

/**
 * Inserts `item` at `index`, shifting the rest right: splice(index, 0, item) does the same but
 * allocates an array for its (empty) result at every insert, garbage that a start-up inserting
 * 1M keys paid for in GC. Appending, the common case of keys inserted in order, is a push.
 */
function insertAt<T>(array: T[], index: number, item: T): void {
  let i = array.length;
  array.push(item);
  for (; i > index; i--) array[i] = array[i - 1]!;
  array[index] = item;
}

/** First index i with keys[i] >= key. */
function lowerBound(keys: string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index i with keys[i] > key: the child of an internal node that may hold key. */
function upperBound(keys: string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class BPlusTree<V> {
  private root: Node<V> = new Leaf<V>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(key: string): V | undefined {
    let node = this.root;
    while (node instanceof Internal) node = node.children[upperBound(node.keys, key)]!;
    const i = lowerBound(node.keys, key);
    return i < node.keys.length && node.keys[i] === key ? node.values[i] : undefined;
  }

  /** Inserts or replaces. */
  set(key: string, value: V): void {
    const split = this.insertInto(this.root, key, value);
    if (split) {
      const root = new Internal<V>();
      root.keys.push(split.key);
      root.children.push(this.root, split.node);
      this.root = root;
    }
  }

  /** Removes key; returns whether it was present. */
  delete(key: string): boolean {
    const path: Array<{ node: Internal<V>; index: number }> = [];
    let node = this.root;
    while (node instanceof Internal) {
      const index = upperBound(node.keys, key);
      path.push({ node, index });
      node = node.children[index]!;
    }
    const leaf = node;
    const i = lowerBound(leaf.keys, key);
    if (i >= leaf.keys.length || leaf.keys[i] !== key) return false;
    leaf.keys.splice(i, 1);
    leaf.values.splice(i, 1);
    this.count--;
    if (leaf.keys.length > 0 || path.length === 0) return true;
    // Unlink the empty leaf, then remove empty ancestors.
    if (leaf.prev) leaf.prev.next = leaf.next;
    if (leaf.next) leaf.next.prev = leaf.prev;
    for (let level = path.length - 1; level >= 0; level--) {
      const { node: parent, index } = path[level]!;
      parent.children.splice(index, 1);
      parent.keys.splice(index > 0 ? index - 1 : 0, 1);
      if (parent.children.length > 0) break;
    }
    // Shrink the root while it has a single child.
    while (this.root instanceof Internal && this.root.children.length === 1) this.root = this.root.children[0]!;
    if (this.root instanceof Internal && this.root.children.length === 0) this.root = new Leaf<V>();
    return true;
  }

  /** A cursor at the first key >= start. */
  seek(start: string, cursor: BPlusTreeCursor<V> = new BPlusTreeCursor<V>()): BPlusTreeCursor<V> {
    let node = this.root;
    while (node instanceof Internal) node = node.children[upperBound(node.keys, start)]!;
    cursor.reset(node, lowerBound(node.keys, start));
    return cursor;
  }

  /** A cursor at the smallest key. */
  first(cursor: BPlusTreeCursor<V> = new BPlusTreeCursor<V>()): BPlusTreeCursor<V> {
    let node = this.root;
    while (node instanceof Internal) node = node.children[0]!;
    cursor.reset(node, 0);
    return cursor;
  }

  /** Checks the structural invariants; O(n), for tests. */
  checkInvariants(): void {
    let leaves = 0;
    let total = 0;
    const visit = (node: Node<V>, low: string | null, high: string | null, depth: number, depths: Set<number>): void => {
      if (node instanceof Leaf) {
        leaves++;
        depths.add(depth);
        total += node.keys.length;
        assert(node.keys.length === node.values.length, 'leaf keys and values differ in length');
        assert(node.keys.length > 0 || node === this.root, 'empty non-root leaf');
        for (let i = 0; i < node.keys.length; i++) {
          const k = node.keys[i]!;
          if (i > 0) assert(node.keys[i - 1]! < k, 'leaf keys out of order');
          assert(low === null || k >= low, 'leaf key below its separator');
          assert(high === null || k < high, 'leaf key at or above its separator');
        }
        return;
      }
      assert(node.children.length === node.keys.length + 1, 'internal node children/keys mismatch');
      for (let i = 0; i < node.children.length; i++) {
        visit(node.children[i]!, i === 0 ? low : node.keys[i - 1]!, i < node.keys.length ? node.keys[i]! : high, depth + 1, depths);
      }
    };
    const depths = new Set<number>();
    visit(this.root, null, null, 0, depths);
    assert(depths.size === 1, 'leaves at different depths');
    assert(total === this.count, `tree holds ${total} entries, count says ${this.count}`);
    let chained = 0;
    let last: string | null = null;
    for (const c = this.first(); c.valid; c.next()) {
      assert(last === null || last < c.key, 'leaf chain out of order');
      last = c.key;
      chained++;
    }
    assert(chained === this.count, `leaf chain holds ${chained}, count says ${this.count}`);
    void leaves;
  }

  private insertInto(node: Node<V>, key: string, value: V): { key: string; node: Node<V> } | null {
    if (node instanceof Leaf) {
      const i = lowerBound(node.keys, key);
      if (i < node.keys.length && node.keys[i] === key) {
        node.values[i] = value;
        return null;
      }
      insertAt(node.keys, i, key);
      insertAt(node.values, i, value);
      this.count++;
      if (node.keys.length <= LEAF_ENTRIES_MAX) return null;
      const right = new Leaf<V>();
      const half = node.keys.length >>> 1;
      right.keys = node.keys.splice(half);
      right.values = node.values.splice(half);
      right.next = node.next;
      right.prev = node;
      if (node.next) node.next.prev = right;
      node.next = right;
      return { key: right.keys[0]!, node: right };
    }
    const index = upperBound(node.keys, key);
    const split = this.insertInto(node.children[index]!, key, value);
    if (!split) return null;
    insertAt(node.keys, index, split.key);
    insertAt(node.children, index + 1, split.node);
    if (node.children.length <= INTERNAL_CHILDREN_MAX) return null;
    // Split: the middle separator moves up.
    const right = new Internal<V>();
    const half = node.children.length >>> 1;
    right.children = node.children.splice(half);
    right.keys = node.keys.splice(half);
    const up = node.keys.pop()!;
    return { key: up, node: right };
  }
}

/** A position in the leaf chain; invalid past the last key. Reusable across seeks. */
export class BPlusTreeCursor<V> {
  private leaf: Leaf<V> | null = null;
  private index = 0;

  /** @internal */
  reset(leaf: Leaf<V>, index: number): void {
    this.leaf = leaf;
    this.index = index;
    this.settle();
  }

  get valid(): boolean {
    return this.leaf !== null;
  }

  get key(): string {
    return this.leaf!.keys[this.index]!;
  }

  get value(): V {
    return this.leaf!.values[this.index]!;
  }

  /** Replaces the value at the cursor (the tree's shape and the cursor's position stay). */
  set value(value: V) {
    this.leaf!.values[this.index] = value;
  }

  next(): void {
    this.index++;
    this.settle();
  }

  private settle(): void {
    while (this.leaf !== null && this.index >= this.leaf.keys.length) {
      this.leaf = this.leaf.next;
      this.index = 0;
    }
  }
}
