/**
 * Flow control for one follower in the replicate state: the MsgApps sent but not yet acknowledged,
 * as a ring of (last index, bytes). The leader stops sending when either the count or the byte
 * budget is used up, and frees every message at or below an acknowledged index.
 *
 * Invariant: indexes in the ring are strictly increasing from start to end.
 * Invariant: bytes equals the sum of the sizes in the ring.
 */
import { assert } from './raft-assert.js';

export class Inflights {
  private readonly indexes: Float64Array;
  private readonly sizes: Float64Array;
  private start = 0;
  count = 0;
  bytes = 0;

  constructor(readonly messagesMax: number, readonly bytesMax: number) {
    assert(messagesMax > 0, () => `inflight messages max must be > 0, got ${messagesMax}`);
    this.indexes = new Float64Array(messagesMax);
    this.sizes = new Float64Array(messagesMax);
  }

  add(index: number, bytes: number): void {
    assert(!this.full(), () => `inflights full (${this.count} messages, ${this.bytes} bytes)`);
    if (this.count > 0) {
      const lastIndex = this.indexes[(this.start + this.count - 1) % this.messagesMax]!;
      assert(index > lastIndex, () => `inflight index ${index} not after ${lastIndex}`);
    }
    const slot = (this.start + this.count) % this.messagesMax;
    this.indexes[slot] = index;
    this.sizes[slot] = bytes;
    this.count++;
    this.bytes += bytes;
  }

  /** Frees every message whose last index is <= index (they were all acknowledged). */
  freeLE(index: number): void {
    while (this.count > 0 && this.indexes[this.start]! <= index) {
      this.bytes -= this.sizes[this.start]!;
      this.start = (this.start + 1) % this.messagesMax;
      this.count--;
    }
    if (this.count === 0) this.start = 0;
  }

  /** Frees the oldest message: a heartbeat answered while full means the pipe is alive but a message was lost. */
  freeFirstOne(): void {
    if (this.count === 0) return;
    this.freeLE(this.indexes[this.start]!);
  }

  full(): boolean {
    return this.count === this.messagesMax || this.bytes >= this.bytesMax;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }
}
