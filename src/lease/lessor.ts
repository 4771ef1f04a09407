import { assert } from '../platform/assert.js';
import { KeyraftError } from '../platform/errors.js';
import type { KeyValue } from '../proto/etcd-types.js';
import { Bucket, type Backend } from '../storage/backend.js';
import { ExpiryQueue, type QueueItem } from './expiry-queue.js';
import type { LeaseMetrics } from './lease-metrics.js';
import { decodeLeaseRecord, encodeLeaseRecord, leaseKey } from './lease-record.js';

/**
 * The lessor (etcd's lease/lessor.go): every lease, the keys attached to each, and, on the
 * leader only, when each expires.
 *
 * Two kinds of calls, kept apart on purpose:
 *  - Applied (grant, revoke's removeLease, checkpoint, attachChanges): called by the applier for
 *    committed log entries, in index order, on every member. They depend only on the entries and
 *    the state before them, so every member holds the same leases and keys. Their writes are
 *    staged in the backend's lease bucket and reach disk in the same batch as the applied index.
 *  - Clock-driven (promote, demote, renew, findExpired, checkpointsDue, remainingMs): on the
 *    leader ("primary", as etcd says). Only the primary tracks expiry; a follower holds every
 *    lease forever. The primary decides a lease has expired and PROPOSES its revocation; the
 *    revocation happens when the entry is applied, at the same index everywhere.
 *
 * Expiry across a leader change (etcd's Promote): the new leader gives each lease
 * `extend` (one election timeout, time for clients to find it) plus its remaining TTL: the one
 * last checkpointed through the log if any, else its full TTL. So a lease nobody renews lives
 * at most TTL + one election timeout after the new leader took over. Checkpoints (etcd's
 * --experimental-enable-lease-checkpoint, on by default here) record the remaining TTL of
 * leases longer than the checkpoint interval, so a 1-hour lease left alone for 50 minutes does
 * not get a fresh hour on failover. A renewal of a checkpointed lease clears its checkpoint
 * through the log (renew() says so), or a restart would cut the renewed lease short.
 *
 * A restarted member loads its leases with no expiry (as a follower); if it becomes leader,
 * promote() gives them fresh TTLs: no mass expiry at start-up.
 *
 * Invariant: keyLease.get(k) === id iff leases.get(id).keys.has(k), for every live key k with a
 * lease; a key with lease 0 is in neither.
 * Invariant: on the primary every lease is queued exactly once (its item's slot >= 0); on a
 * follower the queue is empty and every expiryMs is Infinity.
 */

/** etcd's MaxLeaseTTL: 9,000,000,000 s; above it "too large lease TTL". */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

/** An expired lease whose revocation was proposed is checked again after this (etcd's expiredLeaseRetryInterval). */
const EXPIRED_RETRY_MS = 3000;

export interface Lease extends QueueItem {
  readonly id: bigint;
  /** Granted TTL, seconds (raised to the minimum at grant). */
  readonly ttlSeconds: number;
  /** Remaining TTL at the last applied checkpoint, seconds; 0 = none (the full TTL applies). */
  remainingTtlSeconds: number;
  /** When the lease expires on the primary's clock (ms); Infinity on a follower. */
  expiryMs: number;
  /** Attached keys (latin1 strings, the key index's form). */
  readonly keys: Set<string>;
}

export interface LessorOptions {
  /** Lowest TTL granted: etcd's ceil(1.5 x election timeout) in seconds. */
  minTtlSeconds: number;
  /** The member's monotonic clock, ms. */
  now?: () => number;
  metrics?: LeaseMetrics;
}

export interface LeaseCheckpoint {
  /** Absent when 0 (proto3; no lease has id 0). */
  ID?: bigint;
  /** Absent when 0 (proto3). */
  remaining_TTL?: number;
}

export class Lessor {
  private readonly leases = new Map<bigint, Lease>();
  /** Live key (latin1) -> its lease. Only keys with a lease are here. */
  private readonly keyLease = new Map<string, bigint>();
  private readonly queue = new ExpiryQueue<Lease>();
  private primary = false;
  private readonly now: () => number;
  readonly minTtlSeconds: number;

  constructor(private readonly backend: Backend | null, private readonly options: LessorOptions) {
    assert(Number.isSafeInteger(options.minTtlSeconds) && options.minTtlSeconds >= 1, () => `lease minimum TTL ${options.minTtlSeconds}`);
    this.now = options.now ?? (() => performance.now());
    this.minTtlSeconds = options.minTtlSeconds;
  }

  /**
   * Loads the leases in the backend's lease bucket and attaches the live keys that name them
   * (`liveKvs`: every live key). A key naming a lease the bucket lacks cannot happen (revocation
   * deletes the keys and the lease in one batch); it is left unattached, as etcd does.
   */
  static async load(backend: Backend, liveKvs: () => Iterable<KeyValue>, options: LessorOptions): Promise<Lessor> {
    const lessor = new Lessor(backend, options);
    await backend.scan(Bucket.lease, (key, value) => {
      const r = decodeLeaseRecord(key, value);
      lessor.leases.set(r.id, newLease(r.id, r.ttlSeconds, r.remainingTtlSeconds));
    });
    if (lessor.leases.size > 0) {
      for (const kv of liveKvs()) {
        if (kv.lease === 0n) continue;
        const lease = lessor.leases.get(kv.lease);
        if (lease === undefined) continue;
        const k = kv.key.toString('latin1');
        lease.keys.add(k);
        lessor.keyLease.set(k, kv.lease);
      }
    }
    return lessor;
  }

  get isPrimary(): boolean {
    return this.primary;
  }

  get size(): number {
    return this.leases.size;
  }

  exists(id: bigint): boolean {
    return this.leases.has(id);
  }

  get(id: bigint): Lease | undefined {
    return this.leases.get(id);
  }

  // ---- applied: every member, in log order ---------------------------------------------------

  /** etcd's Grant. Returns the lease (its TTL raised to the minimum). */
  grant(id: bigint, ttlSeconds: number): Lease {
    // etcd's lessor: id 0 is "no lease" (the proposer replaces a requested 0 with a fresh id).
    if (id === 0n) throw new KeyraftError('LeaseNotFound');
    if (ttlSeconds > MAX_LEASE_TTL_SECONDS) throw new KeyraftError('LeaseTTLTooLarge');
    if (this.leases.has(id)) throw new KeyraftError('LeaseExist');
    const ttl = Math.max(ttlSeconds, this.minTtlSeconds);
    const lease = newLease(id, ttl, 0);
    this.leases.set(id, lease);
    if (this.primary) {
      lease.expiryMs = this.now() + ttl * 1000;
      this.queue.push(lease, lease.expiryMs);
    }
    this.persist(lease);
    this.options.metrics?.granted.inc();
    this.options.metrics?.ttl.observe(ttl);
    return lease;
  }

  /** The keys attached to a lease, sorted (revocation deletes them in this order, as etcd). */
  keysOf(id: bigint): Buffer[] {
    const lease = this.leases.get(id);
    if (lease === undefined) throw new KeyraftError('LeaseNotFound');
    return [...lease.keys].sort().map((k) => Buffer.from(k, 'latin1'));
  }

  /**
   * Forgets a lease once its keys are deleted (revocation is: delete keysOf(id) in one write
   * transaction, attachChanges, then this).
   */
  removeLease(id: bigint): void {
    const lease = this.leases.get(id);
    if (lease === undefined) throw new KeyraftError('LeaseNotFound');
    assert(lease.keys.size === 0, () => `lease ${id.toString(16)} removed with ${lease.keys.size} keys still attached`);
    this.leases.delete(id);
    this.queue.remove(lease);
    this.backend?.del(Bucket.lease, leaseKey(id));
    this.options.metrics?.revoked.inc();
  }

  /** etcd's Checkpoint: records the remaining TTL the leader saw (0 clears it). Unknown ids are skipped. */
  checkpoint(checkpoints: readonly LeaseCheckpoint[]): void {
    for (const c of checkpoints) {
      const lease = this.leases.get(c.ID ?? 0n);
      if (lease === undefined) continue;
      // proto3 leaves a 0 out on the wire: a decoded "clear" checkpoint has no remaining_TTL.
      lease.remainingTtlSeconds = Math.max(0, c.remaining_TTL ?? 0);
      this.persist(lease);
    }
  }

  /**
   * Moves keys between leases after a write transaction, from its changes (puts carry their
   * lease, deletes are tombstones with create_revision 0): a put under another lease detaches the
   * key from the old one, a delete detaches it. Costs nothing while no key has a lease.
   */
  attachChanges(changes: readonly KeyValue[]): void {
    for (const kv of changes) {
      const lease = kv.create_revision === 0 ? 0n : kv.lease;
      if (lease === 0n && this.keyLease.size === 0) continue;
      const k = kv.key.toString('latin1');
      const old = this.keyLease.get(k);
      if (old === lease || (old === undefined && lease === 0n)) continue;
      if (old !== undefined) {
        this.leases.get(old)?.keys.delete(k);
        this.keyLease.delete(k);
      }
      if (lease !== 0n) {
        const target = this.leases.get(lease);
        assert(target !== undefined, () => `key attached to unknown lease ${lease.toString(16)} (the applier checks leases before writing)`);
        target.keys.add(k);
        this.keyLease.set(k, lease);
      }
    }
  }

  // ---- the primary's clock -------------------------------------------------------------------

  /** Becomes the primary: every lease expires `extendMs` plus its remaining (checkpointed or full) TTL from now. */
  promote(extendMs: number): void {
    this.primary = true;
    this.queue.clear();
    const now = this.now();
    for (const lease of this.leases.values()) {
      const remaining = lease.remainingTtlSeconds > 0 ? lease.remainingTtlSeconds : lease.ttlSeconds;
      lease.expiryMs = now + extendMs + remaining * 1000;
      this.queue.push(lease, lease.expiryMs);
    }
  }

  /** Stops being the primary: leases live forever here until this member leads again. */
  demote(): void {
    this.primary = false;
    this.queue.clear();
    for (const lease of this.leases.values()) lease.expiryMs = Infinity;
  }

  /**
   * etcd's Renew, on the primary: the lease expires a full TTL from now. Returns the granted TTL
   * and whether its checkpoint must be cleared through the log. LeaseNotFound for an unknown
   * lease or one already expired (its revocation is under way).
   */
  renew(id: bigint): { ttlSeconds: number; clearCheckpoint: boolean } {
    assert(this.primary, 'lease renewal on a member that is not the primary');
    const lease = this.leases.get(id);
    const now = this.now();
    if (lease === undefined || lease.expiryMs <= now) throw new KeyraftError('LeaseNotFound');
    lease.expiryMs = now + lease.ttlSeconds * 1000;
    this.queue.update(lease, lease.expiryMs);
    this.options.metrics?.renewed.inc();
    return { ttlSeconds: lease.ttlSeconds, clearCheckpoint: lease.remainingTtlSeconds > 0 };
  }

  /** Milliseconds left before the lease expires (primary), Infinity on a follower. */
  remainingMs(lease: Lease): number {
    return Math.max(0, lease.expiryMs - this.now());
  }

  /**
   * Up to `max` leases that have expired and are not already being revoked, for the primary to
   * propose their revocation. Each is checked again after EXPIRED_RETRY_MS in case the proposal
   * is lost (a leader change, a dropped message), as etcd's expiredLeaseRetryInterval.
   */
  findExpired(max: number): bigint[] {
    const out: bigint[] = [];
    if (!this.primary) return out;
    const now = this.now();
    while (out.length < max) {
      const top = this.queue.peek();
      if (top === undefined || top.dueMs > now) break;
      if (top.expiryMs <= now) {
        out.push(top.id);
        this.queue.update(top, now + EXPIRED_RETRY_MS);
      } else {
        this.queue.update(top, top.expiryMs);
      }
    }
    return out;
  }

  /**
   * The remaining TTL of every live lease whose TTL exceeds the checkpoint interval (shorter ones
   * gain nothing from a checkpoint: a new leader gives them at most their TTL anyway), in batches
   * of at most `batchMax` (etcd's maxLeaseCheckpointBatchSize).
   */
  checkpointsDue(intervalMs: number, batchMax: number): LeaseCheckpoint[][] {
    const batches: LeaseCheckpoint[][] = [];
    if (!this.primary) return batches;
    const now = this.now();
    let batch: LeaseCheckpoint[] = [];
    for (const lease of this.leases.values()) {
      if (lease.ttlSeconds * 1000 <= intervalMs || lease.expiryMs <= now) continue;
      batch.push({ ID: lease.id, remaining_TTL: Math.ceil((lease.expiryMs - now) / 1000) });
      if (batch.length === batchMax) {
        batches.push(batch);
        batch = [];
      }
    }
    if (batch.length > 0) batches.push(batch);
    return batches;
  }

  /** Every lease id, soonest expiry first (etcd's Leases). */
  list(): bigint[] {
    return [...this.leases.values()]
      .sort((a, b) => (a.expiryMs === b.expiryMs ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.expiryMs - b.expiryMs))
      .map((l) => l.id);
  }

  /** Checks the invariants (tests). */
  checkInvariants(): void {
    for (const [k, id] of this.keyLease) {
      assert(this.leases.get(id)?.keys.has(k) === true, () => `key ${k} maps to lease ${id.toString(16)} which does not hold it`);
    }
    for (const lease of this.leases.values()) {
      for (const k of lease.keys) assert(this.keyLease.get(k) === lease.id, () => `lease ${lease.id.toString(16)} holds key ${k} mapped elsewhere`);
      if (this.primary) assert(this.queue.has(lease), () => `lease ${lease.id.toString(16)} not queued on the primary`);
      else assert(lease.expiryMs === Infinity && lease.slot === -1, () => `lease ${lease.id.toString(16)} has an expiry on a follower`);
    }
    this.queue.checkInvariant();
  }

  private persist(lease: Lease): void {
    this.backend?.put(Bucket.lease, leaseKey(lease.id), encodeLeaseRecord(lease.ttlSeconds, lease.remainingTtlSeconds));
  }
}

function newLease(id: bigint, ttlSeconds: number, remainingTtlSeconds: number): Lease {
  return { id, ttlSeconds, remainingTtlSeconds, expiryMs: Infinity, keys: new Set(), dueMs: Infinity, slot: -1 };
}
