/**
 * A test double for MemberApi: a single-revision-history key-value map with etcd's response
 * shapes, enough to drive the API layer in unit tests. The real member is tested end to end
 * elsewhere. Keys are compared as bytes (latin1 strings keep one char per byte).
 */
import { KeyraftError } from '../../src/platform/errors.js';
import type {
  CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse, KeyValue, MemberListResponse,
  PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp, StatusResponse, TxnRequest,
  TxnResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesResponse,
  LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
} from '../../src/proto/etcd-types.js';
import type { ApiLimits, MemberApi, WatchStreamHandle } from '../../src/server/raft-kv.js';
import type { EtcdSnapshotStream } from '../../src/server/etcd-snapshots.js';

export class MemoryMember implements MemberApi {
  readonly clusterId = 0xcafef00d12345678n;
  readonly memberId = 0xfeedbeef87654321n;
  readonly limits: ApiLimits;
  healthy = true;
  revision = 1;
  compacted = 0;
  readonly data = new Map<string, KeyValue>();
  /** Requests as the member received them, for asserting what the API layer passed on. */
  readonly received: Array<{ method: string; request: unknown }> = [];
  /** When set, the next call fails with this error (for error mapping tests). */
  failNext: Error | undefined;

  constructor(limits: Partial<ApiLimits> = {}) {
    this.limits = { maxRequestBytes: 1.5 * 1024 * 1024, maxTxnOps: 128, ...limits };
  }

  /** This double keeps no history: the watch tests run against real members (test/watch, test/integration). */
  openWatchStream(): WatchStreamHandle {
    throw new KeyraftError('Unimplemented', 'unknown service etcdserverpb.Watch');
  }

  /** Lock needs a watch: the lock tests run against real members (test/lock). */
  lock(): Promise<never> {
    return Promise.reject(new KeyraftError('Unimplemented', 'unknown service v3lockpb.Lock'));
  }

  unlock(): Promise<never> {
    return Promise.reject(new KeyraftError('Unimplemented', 'unknown service v3lockpb.Lock'));
  }

  /** Elections need a watch too: the election tests run against real members (test/election). */
  campaign(): Promise<never> {
    return Promise.reject(new KeyraftError('Unimplemented', 'unknown service v3electionpb.Election'));
  }

  proclaim(): Promise<never> {
    return this.campaign();
  }

  electionLeader(): Promise<never> {
    return this.campaign();
  }

  observe(): Promise<never> {
    return this.campaign();
  }

  resign(): Promise<never> {
    return this.campaign();
  }

  isHealthy(): boolean {
    return this.healthy;
  }

  hasLeader(): boolean {
    return this.healthy;
  }

  private header(): ResponseHeader {
    return { cluster_id: this.clusterId, member_id: this.memberId, revision: this.revision, raft_term: 2 };
  }

  private enter(method: string, request: unknown): void {
    this.received.push({ method, request });
    const fail = this.failNext;
    if (fail) {
      this.failNext = undefined;
      throw fail;
    }
  }

  private matching(key: Buffer, rangeEnd: Buffer | undefined): KeyValue[] {
    const start = key.toString('latin1');
    const all = [...this.data.entries()].sort((a, b) => Buffer.compare(Buffer.from(a[0], 'latin1'), Buffer.from(b[0], 'latin1')));
    if (!rangeEnd || rangeEnd.length === 0) return all.filter(([k]) => k === start).map(([, v]) => v);
    const fromKey = rangeEnd.length === 1 && rangeEnd[0] === 0;
    return all
      .filter(([k]) => {
        const kb = Buffer.from(k, 'latin1');
        return Buffer.compare(kb, key) >= 0 && (fromKey || Buffer.compare(kb, rangeEnd) < 0);
      })
      .map(([, v]) => v);
  }

  private doRange(r: RangeRequest): RangeResponse {
    const found = this.matching(r.key!, r.range_end);
    const limited = r.limit ? found.slice(0, r.limit) : found;
    const kvs = r.count_only ? [] : limited.map((kv) => (r.keys_only ? { ...kv, value: Buffer.alloc(0) } : kv));
    return { header: this.header(), kvs, more: limited.length < found.length, count: found.length };
  }

  private doPut(r: PutRequest, revision: number): PutResponse {
    const k = r.key!.toString('latin1');
    const prev = this.data.get(k);
    this.data.set(k, {
      key: Buffer.from(r.key!),
      create_revision: prev ? prev.create_revision : revision,
      mod_revision: revision,
      version: prev ? prev.version + 1 : 1,
      value: r.ignore_value && prev ? prev.value : Buffer.from(r.value ?? Buffer.alloc(0)),
      lease: r.lease ?? 0n,
    });
    return { header: this.header(), prev_kv: r.prev_kv ? prev : undefined };
  }

  private doDelete(r: DeleteRangeRequest): DeleteRangeResponse {
    const found = this.matching(r.key!, r.range_end);
    for (const kv of found) this.data.delete(kv.key.toString('latin1'));
    return { header: this.header(), deleted: found.length, prev_kvs: r.prev_kv ? found : [] };
  }

  private compare(c: Compare): boolean {
    const kv = this.data.get(c.key!.toString('latin1'));
    let actual: number | Buffer;
    let expected: number | Buffer;
    switch (c.target ?? 0) {
      case 0: actual = kv?.version ?? 0; expected = c.version ?? 0; break;
      case 1: actual = kv?.create_revision ?? 0; expected = c.create_revision ?? 0; break;
      case 2: actual = kv?.mod_revision ?? 0; expected = c.mod_revision ?? 0; break;
      case 3:
        if (!kv) return false;
        actual = kv.value; expected = c.value ?? Buffer.alloc(0); break;
      default: actual = Number(kv?.lease ?? 0n); expected = Number(c.lease ?? 0n);
    }
    const order = typeof actual === 'number' ? Math.sign(actual - (expected as number)) : Buffer.compare(actual, expected as Buffer);
    switch (c.result ?? 0) {
      case 0: return order === 0;
      case 1: return order > 0;
      case 2: return order < 0;
      default: return order !== 0;
    }
  }

  private doTxn(r: TxnRequest, revision: number): TxnResponse {
    const succeeded = (r.compare ?? []).every((c) => this.compare(c));
    const ops: RequestOp[] = (succeeded ? r.success : r.failure) ?? [];
    const responses: ResponseOp[] = ops.map((op) => {
      if (op.request_range) return { response_range: this.doRange(op.request_range) };
      if (op.request_put) return { response_put: this.doPut(op.request_put, revision) };
      if (op.request_delete_range) return { response_delete_range: this.doDelete(op.request_delete_range) };
      return { response_txn: this.doTxn(op.request_txn!, revision) };
    });
    return { header: this.header(), succeeded, responses };
  }

  private static writes(r: TxnRequest): boolean {
    return [...(r.success ?? []), ...(r.failure ?? [])].some((op) => op.request_put || op.request_delete_range || (op.request_txn && MemoryMember.writes(op.request_txn)));
  }

  async range(request: RangeRequest): Promise<RangeResponse> {
    this.enter('range', request);
    if (request.revision && request.revision > this.revision) throw new KeyraftError('FutureRevision');
    if (request.revision && request.revision <= this.compacted) throw new KeyraftError('Compacted');
    return this.doRange(request);
  }

  async put(request: PutRequest): Promise<PutResponse> {
    this.enter('put', request);
    this.revision++;
    return this.doPut(request, this.revision);
  }

  async deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    this.enter('deleteRange', request);
    if (this.matching(request.key!, request.range_end).length > 0) this.revision++;
    return this.doDelete(request);
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    this.enter('txn', request);
    if (MemoryMember.writes(request)) this.revision++;
    return this.doTxn(request, this.revision);
  }

  async compact(request: CompactionRequest): Promise<CompactionResponse> {
    this.enter('compact', request);
    const rev = request.revision ?? 0;
    if (rev <= this.compacted) throw new KeyraftError('Compacted');
    if (rev > this.revision) throw new KeyraftError('FutureRevision');
    this.compacted = rev;
    return { header: this.header() };
  }

  async memberList(): Promise<MemberListResponse> {
    this.enter('memberList', {});
    return {
      header: { ...this.header(), revision: 0 },
      members: [{ ID: this.memberId, name: 'default', peerURLs: ['http://127.0.0.1:2380'], clientURLs: ['http://127.0.0.1:2379'], isLearner: false }],
    };
  }

  // Membership changes and MoveLeader need a real cluster: the cluster suites test them.
  async memberAdd(): Promise<never> {
    throw new KeyraftError('Unimplemented', 'the in-memory member has no cluster');
  }

  async memberRemove(): Promise<never> {
    throw new KeyraftError('Unimplemented', 'the in-memory member has no cluster');
  }

  async memberUpdate(): Promise<never> {
    throw new KeyraftError('Unimplemented', 'the in-memory member has no cluster');
  }

  async memberPromote(): Promise<never> {
    throw new KeyraftError('Unimplemented', 'the in-memory member has no cluster');
  }

  async moveLeader(): Promise<never> {
    throw new KeyraftError('Unimplemented', 'the in-memory member has no cluster');
  }

  /** Alarms the health endpoints see (tests set them). */
  alarms: Array<{ memberID: bigint; alarm: 0 | 1 | 2 }> = [];

  activeAlarms() {
    return this.alarms;
  }

  async alarm(): Promise<never> {
    throw new KeyraftError('Unimplemented', 'the in-memory member has no alarms');
  }

  async defragment(): Promise<never> {
    throw new KeyraftError('Unimplemented', 'the in-memory member has no backend');
  }

  async hashKV(): Promise<never> {
    throw new KeyraftError('Unimplemented', 'the in-memory member has no backend');
  }

  async hash(): Promise<never> {
    throw new KeyraftError('Unimplemented', 'the in-memory member has no backend');
  }

  /** The double has no backend to snapshot: Maintenance.Snapshot is tested against real members (test/integration). */
  async snapshot(): Promise<EtcdSnapshotStream> {
    this.enter('snapshot', {});
    throw new Error('MemoryMember keeps no backend: snapshot is tested on a real member');
  }

  async status(): Promise<StatusResponse> {
    this.enter('status', {});
    return {
      header: this.header(), version: '3.4.23', dbSize: 20480, leader: this.memberId, raftIndex: 12, raftTerm: 2,
      raftAppliedIndex: 12, errors: [], dbSizeInUse: 16384, isLearner: false,
    };
  }

  // ---- leases: granted TTLs only, no expiry (the real lessor is tested in test/lease and test/server) ----

  readonly leases = new Map<bigint, number>();
  private nextLease = 1n;

  async leaseGrant(r: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    this.enter('leaseGrant', r);
    const id = r.ID || this.nextLease++;
    if (this.leases.has(id)) throw new KeyraftError('LeaseExist');
    const ttl = Math.max(2, r.TTL ?? 0);
    this.leases.set(id, ttl);
    return { header: this.header(), ID: id, TTL: ttl, error: '' };
  }

  async leaseRevoke(r: LeaseRevokeRequest): Promise<LeaseRevokeResponse> {
    this.enter('leaseRevoke', r);
    if (!this.leases.delete(r.ID ?? 0n)) throw new KeyraftError('LeaseNotFound');
    return { header: this.header() };
  }

  async leaseKeepAlive(r: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse> {
    this.enter('leaseKeepAlive', r);
    return { header: this.header(), ID: r.ID ?? 0n, TTL: this.leases.get(r.ID ?? 0n) ?? 0 };
  }

  async leaseTimeToLive(r: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    this.enter('leaseTimeToLive', r);
    const ttl = this.leases.get(r.ID ?? 0n);
    return { header: this.header(), ID: r.ID ?? 0n, TTL: ttl ?? -1, grantedTTL: ttl ?? 0, keys: [] };
  }

  async leaseLeases(): Promise<LeaseLeasesResponse> {
    return { header: this.header(), leases: [...this.leases.keys()].map((ID) => ({ ID })) };
  }
}
