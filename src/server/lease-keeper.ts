import { randomBytes } from 'node:crypto';
import type { Lessor } from '../lease/lessor.js';
import { MAX_LEASE_TTL_SECONDS } from '../lease/lessor.js';
import { KeyraftError, isKeyraftError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import type {
  InternalRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
  LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
  ResponseHeader,
} from '../proto/etcd-types.js';
import type { ApplyResponse } from './applier.js';
import type { LeaseApi } from './raft-kv.js';

/**
 * The member's side of leases (etcd's lease handling in etcdserver/v3_server.go and the
 * lessor's revoke and checkpoint loops): the Lease service's calls, and, on the leader, the
 * expiry and checkpoint rounds that turn the clock into log entries.
 *
 *  - Grant and Revoke are proposed; every member applies them (applier.ts, lease/lessor.ts).
 *    A grant asking for id 0 gets a random positive id here, before proposing, so every member
 *    applies the same id.
 *  - KeepAlive and TimeToLive need the expiry clock, which only the leader keeps: the leader
 *    answers them (once it has applied what earlier terms committed, so it knows every lease);
 *    a follower forwards each to the leader's client URL.
 *  - tick() (the member's heartbeat tick, on the leader): expired leases are revoked through the
 *    log, at most `revokeRate` per second (etcd's leaseRevokeRate), so a mass expiry cannot
 *    flood the log; every `checkpointIntervalMs` the remaining TTLs of long leases are
 *    checkpointed through the log (lessor.ts says why).
 */

/** Checkpoints per log entry (etcd's maxLeaseCheckpointBatchSize). */
const CHECKPOINT_BATCH_MAX = 1000;

export interface LeaseHost {
  /** The current lessor (the applier's; replaced when a state image is installed). */
  lessor(): Lessor;
  propose(request: InternalRequest): Promise<ApplyResponse>;
  /** Whether this member leads now (throws NoLeader / Stopped when it cannot serve). */
  isLeader(): boolean;
  /** Resolves once the leader has applied everything committed before its term. */
  leaderCaughtUp(): Promise<void>;
  /** A unary call of the Lease service on the leader (method name, request, its types' names). */
  forwardLease<T>(method: string, requestType: string, responseType: string, request: object): Promise<T>;
  header(): ResponseHeader;
}

export interface LeaseKeeperOptions {
  revokeRate: number;
  checkpointIntervalMs: number;
  heartbeatIntervalMs: number;
  logger: Logger;
}

export class LeaseKeeper implements LeaseApi {
  private readonly revokesPerTick: number;
  private nextCheckpointMs = 0;

  constructor(private readonly host: LeaseHost, private readonly options: LeaseKeeperOptions) {
    this.revokesPerTick = Math.max(1, Math.ceil((options.revokeRate * options.heartbeatIntervalMs) / 1000));
  }

  async leaseGrant(request: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    const ttl = request.TTL ?? 0;
    // etcd's v3rpc refuses this before proposing (the lessor checks again when applying).
    if (ttl > MAX_LEASE_TTL_SECONDS) throw new KeyraftError('LeaseTTLTooLarge');
    let id = request.ID ?? 0n;
    if (id === 0n) id = this.freshId();
    return (await this.host.propose({ id: 0, lease_grant: { ID: id, TTL: ttl } })) as LeaseGrantResponse;
  }

  async leaseRevoke(request: LeaseRevokeRequest): Promise<LeaseRevokeResponse> {
    return (await this.host.propose({ id: 0, lease_revoke: { ID: request.ID ?? 0n } })) as LeaseRevokeResponse;
  }

  async leaseKeepAlive(request: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse> {
    const id = request.ID ?? 0n;
    if (!this.host.isLeader()) {
      return this.host.forwardLease<LeaseKeepAliveResponse>('LeaseKeepAlive', 'LeaseKeepAliveRequest', 'LeaseKeepAliveResponse', request);
    }
    await this.host.leaderCaughtUp();
    const lessor = this.host.lessor();
    // Leadership may have moved while waiting: only the primary renews.
    if (!lessor.isPrimary) throw new KeyraftError('LeaderChanged');
    let ttl = 0;
    try {
      const renewed = lessor.renew(id);
      ttl = renewed.ttlSeconds;
      if (renewed.clearCheckpoint) this.proposeQuietly({ id: 0, lease_checkpoint: { checkpoints: [{ ID: id, remaining_TTL: 0 }] } }, 'clearing a lease checkpoint');
    } catch (err) {
      // etcd: a keep-alive of an unknown or expired lease answers TTL 0, not an error.
      if (!isKeyraftError(err) || err.code !== 'LeaseNotFound') throw err;
    }
    return { header: this.host.header(), ID: id, TTL: ttl };
  }

  async leaseTimeToLive(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    const id = request.ID ?? 0n;
    if (!this.host.isLeader()) {
      return this.host.forwardLease<LeaseTimeToLiveResponse>('LeaseTimeToLive', 'LeaseTimeToLiveRequest', 'LeaseTimeToLiveResponse', request);
    }
    await this.host.leaderCaughtUp();
    const lessor = this.host.lessor();
    if (!lessor.isPrimary) throw new KeyraftError('LeaderChanged');
    const lease = lessor.get(id);
    if (lease === undefined) return { header: this.host.header(), ID: id, TTL: -1, grantedTTL: 0, keys: [] };
    return {
      header: this.host.header(),
      ID: id,
      // etcd: int64(l.Remaining().Seconds()), truncated.
      TTL: Math.floor(lessor.remainingMs(lease) / 1000),
      grantedTTL: lease.ttlSeconds,
      keys: request.keys ? lessor.keysOf(id) : [],
    };
  }

  async leaseLeases(): Promise<LeaseLeasesResponse> {
    return { header: this.host.header(), leases: this.host.lessor().list().map((ID) => ({ ID })) };
  }

  /** Leadership changed: the new leader starts the expiry clock (etcd's Promote), anyone else stops it. */
  onLeadership(isLeader: boolean, electionTimeoutMs: number): void {
    const lessor = this.host.lessor();
    if (isLeader) {
      lessor.promote(electionTimeoutMs);
      this.nextCheckpointMs = performance.now() + this.options.checkpointIntervalMs;
    } else if (lessor.isPrimary) {
      lessor.demote();
    }
  }

  /** One heartbeat tick on the leader: propose the revocation of expired leases, and checkpoints when due. */
  tick(): void {
    const lessor = this.host.lessor();
    if (!lessor.isPrimary) return;
    for (const id of lessor.findExpired(this.revokesPerTick)) {
      this.proposeQuietly({ id: 0, lease_revoke: { ID: id } }, 'revoking an expired lease');
    }
    const interval = this.options.checkpointIntervalMs;
    if (interval > 0 && performance.now() >= this.nextCheckpointMs) {
      this.nextCheckpointMs = performance.now() + interval;
      for (const checkpoints of lessor.checkpointsDue(interval, CHECKPOINT_BATCH_MAX)) {
        this.proposeQuietly({ id: 0, lease_checkpoint: { checkpoints } }, 'checkpointing lease TTLs');
      }
    }
  }

  /** A proposal nobody waits on: a failure is logged (the expiry retry or the next round covers it). */
  private proposeQuietly(request: InternalRequest, what: string): void {
    this.host.propose(request).catch((err: Error) => {
      // A revocation that lost a race with a client's revoke: nothing to do.
      if (isKeyraftError(err) && err.code === 'LeaseNotFound') return;
      this.options.logger.debug({ err: err.message }, `${what} failed; retried later`);
    });
  }

  /** A random positive int64 not in use here (etcd takes its request id generator's next value). */
  private freshId(): bigint {
    const lessor = this.host.lessor();
    for (;;) {
      const id = randomBytes(8).readBigInt64BE(0) & 0x7fffffffffffffffn;
      if (id !== 0n && !lessor.exists(id)) return id;
    }
  }
}
