/**
 * etcd 3.4's Election service (v3election), which is a thin server-side wrapper over clientv3's
 * concurrency.Election; this is the same recipe run against the member's own KV, leases and
 * watch, on the queue of ownership keys it shares with the Lock service (ownership-queue.ts):
 *
 *   - Campaign(name, lease, value): the campaigner's key is `<name>/<lease in hex>` holding
 *     `value` under the lease (lease 0: a fresh lease of 60 s is granted, as etcd's server opens a
 *     default clientv3 Session, and nothing keeps it alive). The same lease campaigning again keeps
 *     its place and proclaims the new value. It returns once no older key is left under `<name>/`,
 *     with the header of its first txn (clientv3 keeps that one) and the LeaderKey {name, key,
 *     rev = the key's create revision, lease}. A Campaign whose call ends while it waits resigns.
 *   - Proclaim(leader, value): puts the new value only if the key's create revision is still
 *     leader.rev, else "election: not leader".
 *   - Resign(leader): deletes the key if its create revision is still leader.rev; either way it
 *     answers the header (etcd does not say whether it held anything).
 *   - Leader(name): the key under `<name>/` with the smallest create revision, or "election: no
 *     leader".
 *   - Observe(name): the current leader's kv, then every new value it proclaims, and, once its key
 *     is deleted, the next leader's, and so on (election.go's observe loop); with no leader it
 *     waits for the first put under the prefix.
 *
 * Worked example: lease 0x1a campaigns "e" with "a" and gets e/1a at rev 5 at once; 0x2b
 * campaigns with "b", creates e/2b at rev 6 and waits. An observer sees {e/1a, "a"}. 0x1a
 * proclaims "a2" (rev 7): the observer sees {e/1a, "a2"}. 0x1a's lease is revoked (rev 8,
 * e/1a deleted): 0x2b's Campaign returns (header rev 6, leader rev 6) and the observer sees
 * {e/2b, "b"} with the header of its range at rev 8.
 *
 * Errors reach the caller as etcd's embedded client gives them: code Unknown with etcd's text
 * (asEmbeddedClientError), so a Campaign under a missing lease is Unknown "etcdserver: requested
 * lease not found".
 */
import { KeyraftError } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import type { Logger } from '../platform/logger.js';
import { prefixEnd } from '../proto/key-range.js';
import {
  CompareResult, CompareTarget, EventType, SortOrder, SortTarget,
  type CampaignRequest, type CampaignResponse, type KeyValue, type LeaderKey, type LeaderRequest, type LeaderResponse,
  type ProclaimRequest, type ProclaimResponse, type ResignRequest, type ResignResponse, type ResponseHeader,
} from '../proto/etcd-types.js';
import { asEmbeddedClientError, joinQueue, ownerKey, waitForOlderDeletes, watchUntil, type QueueKV } from './ownership-queue.js';
import type { LeaderSink, LeaseApi } from './raft-kv.js';

export class ElectionService {
  constructor(
    private readonly kv: QueueKV & Pick<LeaseApi, 'leaseGrant'>,
    private readonly logger: Logger,
  ) {}

  /** Blocks until elected; `signal` is the call's end (cancel or deadline): then it resigns. */
  async campaign(request: CampaignRequest, signal?: AbortSignal): Promise<CampaignResponse> {
    try {
      return await this.runCampaign(request, signal);
    } catch (err) {
      throw asEmbeddedClientError(err);
    }
  }

  async proclaim(request: ProclaimRequest): Promise<ProclaimResponse> {
    try {
      const leader = leaderKeyOf(request.leader);
      const header = await this.proclaimAt(leader.key, leader.rev, leader.lease, request.value ?? Buffer.alloc(0));
      return { header };
    } catch (err) {
      throw asEmbeddedClientError(err);
    }
  }

  async resign(request: ResignRequest): Promise<ResignResponse> {
    try {
      const leader = leaderKeyOf(request.leader);
      return { header: await this.resignAt(leader.key, leader.rev) };
    } catch (err) {
      throw asEmbeddedClientError(err);
    }
  }

  async leader(request: LeaderRequest): Promise<LeaderResponse> {
    try {
      const first = await this.firstCreated(prefixOf(request.name));
      if (first.kv === undefined) throw new KeyraftError('ElectionNoLeader');
      return { header: first.header, kv: first.kv };
    } catch (err) {
      throw asEmbeddedClientError(err);
    }
  }

  /**
   * Sends the leader and its proclamations to `sink` until `signal` aborts (rejects Canceled) or
   * the observation is lost (resolves): etcd's Observe ends its stream with OK when clientv3's
   * observe channel closes, which it does on any failed range or lost watch.
   */
  async observe(request: LeaderRequest, sink: LeaderSink, signal: AbortSignal): Promise<void> {
    const prefix = prefixOf(request.name);
    try {
      for (;;) {
        const current = await this.currentOrFirstPut(prefix, signal);
        if (current === undefined) return;
        if (!sink.send({ header: current.header, kv: current.kv })) await waitDrained(sink, signal);
        const outcome = await this.follow(current.kv, current.header.revision + 1, sink, signal);
        if (outcome === 'lost') return;
      }
    } catch (err) {
      if (signal.aborted) throw new KeyraftError('Canceled');
      // clientv3's observe closes its channel on any error and etcd's Observe then ends with OK.
      this.logger.warn({ err, name: prefix.toString() }, 'election observe ended by a failed read or watch');
    }
  }

  private async runCampaign(request: CampaignRequest, signal: AbortSignal | undefined): Promise<CampaignResponse> {
    const name = request.name ?? Buffer.alloc(0);
    const value = request.value ?? Buffer.alloc(0);
    let lease = request.lease ?? 0n;
    if (lease === 0n) {
      const granted = await this.kv.leaseGrant({ TTL: Limits.electionSessionTtlSeconds, ID: 0n });
      if (granted.ID === undefined || granted.ID === 0n) throw new KeyraftError('Internal', 'lease grant answered no lease id');
      lease = granted.ID;
    }
    const prefix = prefixOf(name);
    const key = ownerKey(prefix, lease);
    const place = await joinQueue(this.kv, key, value, lease);
    const rev = place.createRevision;
    if (place.existing !== undefined && !place.existing.value.equals(value)) {
      // Campaigning again with a new value proclaims it (election.go); failing that, resign.
      try {
        await this.proclaimAt(key, rev, lease, value);
      } catch (err) {
        await this.resignQuietly(key, rev);
        throw err;
      }
    }
    try {
      await waitForOlderDeletes(this.kv, prefix, rev, signal);
    } catch (err) {
      // Only a cancelled campaign resigns; on other failures clientv3 leaves the key to its lease.
      if (signal?.aborted) await this.resignQuietly(key, rev);
      throw err;
    }
    const leader: LeaderKey = { key, rev, lease };
    if (name.length > 0) leader.name = name;
    return { header: place.header, leader };
  }

  private async proclaimAt(key: Buffer, rev: number, lease: bigint, value: Buffer): Promise<ResponseHeader> {
    const txn = await this.kv.txn({
      compare: [{ key, target: CompareTarget.CREATE, result: CompareResult.EQUAL, create_revision: rev }],
      success: [{ request_put: { key, value, lease } }],
      failure: [],
    });
    if (!txn.succeeded) throw new KeyraftError('ElectionNotLeader');
    return txn.header!;
  }

  private async resignAt(key: Buffer, rev: number): Promise<ResponseHeader> {
    const txn = await this.kv.txn({
      compare: [{ key, target: CompareTarget.CREATE, result: CompareResult.EQUAL, create_revision: rev }],
      success: [{ request_delete_range: { key } }],
      failure: [],
    });
    return txn.header!;
  }

  /** Resigns on a path that already fails: the caller's failure is what it sees; this one is logged. */
  private async resignQuietly(key: Buffer, rev: number): Promise<void> {
    try {
      await this.resignAt(key, rev);
    } catch (err) {
      this.logger.warn({ err, key: key.toString() }, 'could not resign an abandoned campaign (its key stays until its lease ends)');
    }
  }

  /** clientv3's Get(prefix, WithFirstCreate()): the oldest key under the prefix, if any. */
  private async firstCreated(prefix: Buffer): Promise<{ header: ResponseHeader; kv: KeyValue | undefined }> {
    const response = await this.kv.range({
      key: prefix, range_end: prefixEnd(prefix), sort_order: SortOrder.ASCEND, sort_target: SortTarget.CREATE, limit: 1,
    });
    return { header: response.header!, kv: response.kvs[0] };
  }

  /**
   * The leader now, or, with none, the first key put under the prefix after the range (its header's
   * revision set to that put's, as clientv3 does); undefined if that watch is lost.
   */
  private async currentOrFirstPut(prefix: Buffer, signal: AbortSignal): Promise<{ header: ResponseHeader; kv: KeyValue } | undefined> {
    const first = await this.firstCreated(prefix);
    if (first.kv !== undefined) return { header: first.header, kv: first.kv };
    let found: { header: ResponseHeader; kv: KeyValue } | undefined;
    const end = await watchUntil(this.kv, { key: prefix, range_end: prefixEnd(prefix), start_revision: first.header.revision }, signal, (response) => {
      // Only puts: a delete would make the loop spin (election.go). Decoded events omit type PUT (0, proto3's default).
      const put = response.events.find((e) => e.type !== EventType.DELETE);
      if (put?.kv === undefined) return false;
      found = { header: { ...response.header!, revision: put.kv.mod_revision }, kv: put.kv };
      return true;
    });
    return end === 'seen' ? found : undefined;
  }

  /**
   * Sends each new value of the leader's key from `fromRevision` until the key is deleted ('seen')
   * or the watch is lost. A full sink pauses it: once drained it resumes after the last value sent.
   */
  private async follow(leaderKv: KeyValue, fromRevision: number, sink: LeaderSink, signal: AbortSignal): Promise<'seen' | 'lost'> {
    let next = fromRevision;
    for (;;) {
      let paused = false;
      const end = await watchUntil(this.kv, { key: leaderKv.key, start_revision: next }, signal, (response) => {
        for (const event of response.events) {
          if (event.type === EventType.DELETE) return true;
          if (event.kv === undefined) continue;
          next = event.kv.mod_revision + 1;
          if (!sink.send({ header: response.header, kv: event.kv })) {
            paused = true;
            return true;
          }
        }
        return false;
      });
      if (!paused) return end;
      await waitDrained(sink, signal);
    }
  }
}

async function waitDrained(sink: LeaderSink, signal: AbortSignal): Promise<void> {
  await sink.drained();
  if (signal.aborted) throw new KeyraftError('Canceled');
}

/** clientv3's election prefix: the name and a slash. */
function prefixOf(name: Buffer | undefined): Buffer {
  return Buffer.concat([name ?? Buffer.alloc(0), Buffer.from('/')]);
}

/**
 * The LeaderKey Proclaim and Resign act on: missing is the service's own error; an empty key is
 * what etcd's txn check says of a compare on no key.
 */
function leaderKeyOf(leader: LeaderKey | undefined): { key: Buffer; rev: number; lease: bigint } {
  if (leader === undefined) throw new KeyraftError('ElectionMissingLeaderKey');
  const key = leader.key ?? Buffer.alloc(0);
  if (key.length === 0) throw new KeyraftError('EmptyKey');
  return { key, rev: leader.rev ?? 0, lease: leader.lease ?? 0n };
}
