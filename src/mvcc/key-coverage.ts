/**
 * Which of a fixed set of keys lie inside the key ranges added so far, for the duplicate-write
 * checks of a txn (server/txn-write-checks.ts). Ranges come and go (add with +1, take back with
 * -1) and a key is covered while its count is above zero; each operation is O(log n).
 *
 * Why not a list of ranges scanned per key: a txn of 20,000 puts and 20,000 deletes made that
 * 4 * 10^8 comparisons (33 s with the event loop held). The keys to ask about are known before
 * the first range arrives, so they are sorted once and a range becomes the index interval
 * [lowerBound(start), lowerBound(end)) over them: a difference array in a Fenwick tree, whose
 * prefix sum at a key's index is the number of ranges covering it.
 *
 * Keys are latin1 strings (one char per byte), so JavaScript's string order is byte order.
 * Example: keys [a, b, m]; add [a, c) -> a and b covered; add the point m; remove [a, c) -> only
 * m covered. A range whose end is at or before its start covers nothing.
 */
export class KeyCoverage {
  /** The keys, sorted, without duplicates. */
  private readonly keys: string[];
  /** Fenwick tree over the difference array, 1-based: tree[i] holds a partial sum. */
  private readonly tree: Int32Array;

  constructor(keys: Iterable<string>) {
    this.keys = [...new Set(keys)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    this.tree = new Int32Array(this.keys.length + 1);
  }

  /**
   * Adds `delta` (+1 or -1) to the count of every key in [start, end); `end` null means the single
   * key `start`, `end` undefined means every key from `start` on.
   */
  add(start: string, end: string | null | undefined, delta: number): void {
    const from = this.lowerBound(start);
    let to: number;
    if (end === null) to = from < this.keys.length && this.keys[from] === start ? from + 1 : from;
    else to = end === undefined ? this.keys.length : this.lowerBound(end);
    if (to <= from) return;
    this.addAt(from, delta);
    this.addAt(to, -delta);
  }

  /** Whether some added range covers `key`, which must be one of the constructor's keys. */
  covers(key: string): boolean {
    const at = this.lowerBound(key);
    if (at >= this.keys.length || this.keys[at] !== key) return false;
    let sum = 0;
    for (let i = at + 1; i > 0; i -= i & -i) sum += this.tree[i]!;
    return sum > 0;
  }

  private addAt(index: number, delta: number): void {
    for (let i = index + 1; i < this.tree.length; i += i & -i) this.tree[i]! += delta;
  }

  /** The first index whose key is >= `key`. */
  private lowerBound(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
