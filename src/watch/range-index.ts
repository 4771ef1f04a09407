import { assert } from '../platform/assert.js';

/**
 * Key ranges [start, end) and the values attached to them, answering "which ranges hold key k"
 * (a stabbing query), as etcd's watcherGroup uses its interval tree for range watchers. Keys are
 * latin1 strings, whose order is the byte order of etcd keys; `end` null = no upper bound.
 *
 * Layout: the ranges sorted by start, read as an implicit balanced binary tree (the middle of a
 * slice is its root), each node knowing the largest end in its subtree. A query descends only
 * into subtrees whose largest end is past k and whose starts can be <= k: O(log n + matches).
 * The array is rebuilt lazily, on the first query after a change, so creating many watchers in
 * a row costs one sort. Identical ranges share one entry (the watcher group keeps a set per
 * range): 10,000 watchers on one prefix are one entry.
 *
 * Worked example: ranges a=[b,d) b=[a,z) c=[c,∞). sorted by start: b, a, c; root a (index 1)
 * with maxEnd ∞; query "c": left subtree {b=[a,z)} holds c; a=[b,d) holds c; right {c=[c,∞)} holds c.
 * query "z": b ends at z (exclusive) no; a no; c yes.
 */
export class RangeIndex<V> {
  private readonly byId = new Map<string, Entry<V>>();
  private sorted: Entry<V>[] = [];
  /** maxEnd[i]: the largest end in the subtree rooted at sorted index i (null = unbounded). */
  private maxEnd: (string | null)[] = [];
  private dirty = false;

  get size(): number {
    return this.byId.size;
  }

  /** The value attached to [start, end), if any. */
  get(start: string, end: string | null): V | undefined {
    return this.byId.get(rangeId(start, end))?.value;
  }

  set(start: string, end: string | null, value: V): void {
    assert(end === null || start < end, () => `empty range [${JSON.stringify(start)}, ${JSON.stringify(end)})`);
    const id = rangeId(start, end);
    const existing = this.byId.get(id);
    if (existing !== undefined) {
      existing.value = value;
      return;
    }
    this.byId.set(id, { start, end, value });
    this.dirty = true;
  }

  delete(start: string, end: string | null): void {
    if (this.byId.delete(rangeId(start, end))) this.dirty = true;
  }

  /** Calls `visit` with the value of every range holding `key`. */
  forEachHolding(key: string, visit: (value: V) => void): void {
    if (this.byId.size === 0) return;
    if (this.dirty) this.rebuild();
    this.visit(0, this.sorted.length, key, visit);
  }

  private visit(lo: number, hi: number, key: string, visit: (value: V) => void): void {
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const maxEnd = this.maxEnd[mid]!;
      if (maxEnd !== null && maxEnd <= key) return; // every range below ends at or before key
      const e = this.sorted[mid]!;
      if (e.start > key) {
        hi = mid; // this start and all to its right begin after key
        continue;
      }
      this.visit(lo, mid, key, visit);
      if (e.end === null || key < e.end) visit(e.value);
      lo = mid + 1;
    }
  }

  private rebuild(): void {
    const sorted = [...this.byId.values()];
    sorted.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    this.sorted = sorted;
    this.maxEnd = new Array(sorted.length);
    this.fill(0, sorted.length);
    this.dirty = false;
  }

  private fill(lo: number, hi: number): string | null | undefined {
    if (lo >= hi) return undefined;
    const mid = (lo + hi) >>> 1;
    let max: string | null = this.sorted[mid]!.end;
    for (const child of [this.fill(lo, mid), this.fill(mid + 1, hi)]) {
      if (child === undefined || max === null) continue;
      if (child === null || child > max) max = child;
    }
    this.maxEnd[mid] = max;
    return max;
  }
}

interface Entry<V> {
  start: string;
  end: string | null;
  value: V;
}

/** A map key for a range: the start's length first, so no choice of bytes makes two ranges collide. */
function rangeId(start: string, end: string | null): string {
  return `${start.length}:${start}${end === null ? '\u0001' : '\u0000' + end}`;
}
