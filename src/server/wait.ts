import { assert } from '../platform/assert.js';
import { KeyraftError } from '../platform/errors.js';

/**
 * Waiters for proposals, keyed by request id (etcd's pkg/wait). A proposal's entry carries
 * (proposer member id, request id); when any member applies it, only the proposer finds a waiter,
 * so ids need to be unique per member only, and across its restarts: the first id of a run is
 * the start time in ms x 1024, so a later run starts above every id of an earlier one (unless an
 * earlier run made more than 1024 proposals per ms on average, as etcd's generator assumes).
 *
 * Bounded (a full table refuses with TooManyRequests), each waiter with a timeout, and all of
 * them failed at once when leadership changes (their entries may still commit: the client gets
 * etcd's "leader changed" and must treat the write as unknown, as with etcd).
 *
 * Invariant: every registered waiter settles exactly once (trigger, timeout, failAll).
 */
export interface Waiter<T> {
  resolve(value: T): void;
  reject(err: Error): void;
}

interface Entry<T> extends Waiter<T> {
  deadlineMs: number;
}

/** How often expired waiters are swept (one timer for all, not one per request). */
const sweepIntervalMs = 250;

export class Wait<T> {
  private readonly waiters = new Map<number, Entry<T>>();
  private nextId: number;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(
    private readonly capacity: number,
    private readonly timeoutMs: number,
    startMs: number = Date.now(),
  ) {
    this.nextId = startMs * 1024;
    assert(Number.isSafeInteger(this.nextId), () => `wait: start id ${this.nextId} is not a safe integer`);
  }

  get size(): number {
    return this.waiters.size;
  }

  /** Reserves the next request id (ids are never reused within a run). */
  newId(): number {
    return this.nextId++;
  }

  /** Registers a waiter for id; throws TooManyRequests when the table is full. */
  register(id: number): Promise<T> {
    if (this.waiters.size >= this.capacity) throw new KeyraftError('TooManyRequests');
    assert(!this.waiters.has(id), () => `wait: id ${id} registered twice`);
    if (this.sweeper === null) {
      this.sweeper = setInterval(() => this.sweep(), sweepIntervalMs);
      this.sweeper.unref();
    }
    return new Promise<T>((resolve, reject) => {
      this.waiters.set(id, { resolve, reject, deadlineMs: performance.now() + this.timeoutMs });
    });
  }

  /**
   * Times out expired waiters. Every waiter has the same timeout, so the map's insertion order is
   * deadline order and the sweep stops at the first one still in time.
   */
  private sweep(): void {
    const now = performance.now();
    for (const [id, w] of this.waiters) {
      if (w.deadlineMs > now) break;
      this.waiters.delete(id);
      w.reject(new KeyraftError('Timeout'));
    }
    if (this.waiters.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  /** Whether a waiter for id is registered (the applier skips building a response otherwise). */
  has(id: number): boolean {
    return this.waiters.has(id);
  }

  trigger(id: number, value: T): boolean {
    const w = this.waiters.get(id);
    if (w === undefined) return false;
    this.waiters.delete(id);
    w.resolve(value);
    return true;
  }

  fail(id: number, err: Error): boolean {
    const w = this.waiters.get(id);
    if (w === undefined) return false;
    this.waiters.delete(id);
    w.reject(err);
    return true;
  }

  /** Fails every waiter (leadership change, stop). */
  failAll(err: () => Error): number {
    const n = this.waiters.size;
    for (const w of this.waiters.values()) w.reject(err());
    this.waiters.clear();
    return n;
  }
}
