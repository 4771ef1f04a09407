import { assert } from '../platform/assert.js';

/**
 * The leader's expiry queue (etcd's LeaseQueue in lease/lease_queue.go): a binary min-heap of
 * leases by the time they are next due to be checked. Unlike etcd's, it is indexed: each item
 * knows its slot, so a renewal moves the lease's one entry (update) instead of pushing another
 * and leaving the old one behind. With 10,000 leases kept alive every second, a push-only heap
 * would carry TTL x 10,000 dead entries; this one holds exactly one entry per lease.
 *
 * Example: push a@5, b@3, c@9 -> peek() is b; update(b, 10) -> peek() is a; pop() -> a, then c.
 *
 * Invariant: for every slot i > 0, items[parent(i)].dueMs <= items[i].dueMs, and
 * items[i].slot === i for every item in the heap; an item not in the heap has slot -1.
 */
export interface QueueItem {
  /** When the item is next due (ms on the member's monotonic clock). */
  dueMs: number;
  /** The item's slot in the heap, -1 while it is not queued. Owned by the queue. */
  slot: number;
}

export class ExpiryQueue<T extends QueueItem> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  /** The item due first, without removing it. */
  peek(): T | undefined {
    return this.items[0];
  }

  has(item: T): boolean {
    return item.slot >= 0 && this.items[item.slot] === item;
  }

  push(item: T, dueMs: number): void {
    assert(item.slot === -1, () => `queue push of an item already at slot ${item.slot}`);
    item.dueMs = dueMs;
    item.slot = this.items.length;
    this.items.push(item);
    this.up(item.slot);
  }

  /** Moves a queued item to a new due time (or queues it if it was not). */
  update(item: T, dueMs: number): void {
    if (item.slot === -1) {
      this.push(item, dueMs);
      return;
    }
    assert(this.items[item.slot] === item, () => `queue item at slot ${item.slot} is not the one updated`);
    const before = item.dueMs;
    item.dueMs = dueMs;
    if (dueMs < before) this.up(item.slot);
    else this.down(item.slot);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top === undefined) return undefined;
    this.removeAt(0);
    return top;
  }

  remove(item: T): void {
    if (item.slot === -1) return;
    assert(this.items[item.slot] === item, () => `queue item at slot ${item.slot} is not the one removed`);
    this.removeAt(item.slot);
  }

  clear(): void {
    for (const item of this.items) item.slot = -1;
    this.items.length = 0;
  }

  private removeAt(slot: number): void {
    const item = this.items[slot]!;
    const last = this.items.pop()!;
    item.slot = -1;
    if (last === item) return;
    this.items[slot] = last;
    last.slot = slot;
    this.down(slot);
    this.up(last.slot);
  }

  private up(slot: number): void {
    const items = this.items;
    const item = items[slot]!;
    while (slot > 0) {
      const parentSlot = (slot - 1) >> 1;
      const parent = items[parentSlot]!;
      if (parent.dueMs <= item.dueMs) break;
      items[slot] = parent;
      parent.slot = slot;
      slot = parentSlot;
    }
    items[slot] = item;
    item.slot = slot;
  }

  private down(slot: number): void {
    const items = this.items;
    const n = items.length;
    const item = items[slot]!;
    for (;;) {
      let child = 2 * slot + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && items[right]!.dueMs < items[child]!.dueMs) child = right;
      const c = items[child]!;
      if (c.dueMs >= item.dueMs) break;
      items[slot] = c;
      c.slot = slot;
      slot = child;
    }
    items[slot] = item;
    item.slot = slot;
  }

  /** Checks the heap invariant (tests). */
  checkInvariant(): void {
    for (let i = 0; i < this.items.length; i++) {
      const item = this.items[i]!;
      assert(item.slot === i, () => `queue item at ${i} says slot ${item.slot}`);
      if (i > 0) {
        const parent = this.items[(i - 1) >> 1]!;
        assert(parent.dueMs <= item.dueMs, () => `queue parent due ${parent.dueMs} after child ${item.dueMs} at ${i}`);
      }
    }
  }
}
