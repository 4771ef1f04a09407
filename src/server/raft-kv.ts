import type {
  AlarmMember, AlarmRequest, AlarmResponse, DefragmentResponse, HashKVRequest, HashKVResponse, HashResponse,
  CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, MemberAddRequest,
  MemberAddResponse, MemberListResponse, MemberPromoteRequest, MemberRemoveRequest, MembersResponse,
  LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesResponse,
  LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
  MemberUpdateRequest, MoveLeaderRequest, MoveLeaderResponse, PutRequest, PutResponse, RangeRequest,
  RangeResponse, StatusResponse, TxnRequest, TxnResponse, WatchRequest,
  LockRequest, LockResponse, UnlockRequest, UnlockResponse,
  CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest, ResignResponse,
} from '../proto/etcd-types.js';
import type { EtcdSnapshotStream } from './etcd-snapshots.js';
import type { WatchSink } from '../watch/watch.js';

export type { WatchSink } from '../watch/watch.js';

/**
 * What the API layer (gRPC services, JSON gateway) needs from a member, as etcd's v3rpc handlers
 * call a RaftKV interface rather than the concrete server. Requests arrive validated by the API
 * layer (non-empty key, txn op count and duplicate keys, size); every response carries a filled
 * header {cluster_id, member_id, revision, raft_term}. Failures are KeyraftError with a code from
 * platform/errors.ts.
 */
export interface RaftKV {
  range(request: RangeRequest): Promise<RangeResponse>;
  put(request: PutRequest): Promise<PutResponse>;
  deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse>;
  txn(request: TxnRequest): Promise<TxnResponse>;
  compact(request: CompactionRequest): Promise<CompactionResponse>;
}

/** etcd's Cluster service: membership changes go through the Raft log, one at a time. */
export interface ClusterInfo {
  memberList(): Promise<MemberListResponse>;
  memberAdd(request: MemberAddRequest): Promise<MemberAddResponse>;
  memberRemove(request: MemberRemoveRequest): Promise<MembersResponse>;
  memberUpdate(request: MemberUpdateRequest): Promise<MembersResponse>;
  memberPromote(request: MemberPromoteRequest): Promise<MembersResponse>;
}

export interface MaintenanceInfo {
  status(): Promise<StatusResponse>;
  /** The state at one revision in etcd's snapshot format (Maintenance.Snapshot); the caller closes it. */
  snapshot(): Promise<EtcdSnapshotStream>;
  moveLeader(request: MoveLeaderRequest): Promise<MoveLeaderResponse>;
  /** Alarm list / activate / deactivate, through the log (etcd 3.4). */
  alarm(request: AlarmRequest): Promise<AlarmResponse>;
  /** Reclaims this member's backend space; reads and writes go on meanwhile. */
  defragment(): Promise<DefragmentResponse>;
  /** HashKV at a revision (0 = current), from local state. */
  hashKV(request: HashKVRequest): Promise<HashKVResponse>;
  /** Hash of the whole backend, from local state. */
  hash(): Promise<HashResponse>;
  /** The active alarms as this member applied them (no log entry: /health, /readyz). */
  activeAlarms(): AlarmMember[];
}

/**
 * etcd's Lease service. Grants and revocations go through the log; keep-alives and time-to-live
 * are answered by the leader, which alone tracks expiry (a follower forwards them to it).
 */
export interface LeaseApi {
  leaseGrant(request: LeaseGrantRequest): Promise<LeaseGrantResponse>;
  leaseRevoke(request: LeaseRevokeRequest): Promise<LeaseRevokeResponse>;
  /** One keep-alive of a LeaseKeepAlive stream: TTL is the granted TTL, 0 for an unknown or expired lease. */
  leaseKeepAlive(request: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse>;
  /** TTL -1 for an unknown lease, as etcd. */
  leaseTimeToLive(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse>;
  leaseLeases(): Promise<LeaseLeasesResponse>;
}

/** One client Watch stream as the API layer drives it: decoded requests in, `close` when the call ends. */
export interface WatchStreamHandle {
  handle(request: WatchRequest): void;
  close(): void;
}

/**
 * etcd's Watch service: a stream of requests (create, cancel, progress) answered by encoded
 * etcdserverpb.WatchResponse messages written to `sink` in order (watch/watch-stream.ts has
 * etcd's semantics). Works on every member: each applies every entry and notifies its watchers.
 */
export interface WatchApi {
  openWatchStream(sink: WatchSink): WatchStreamHandle;
}

/** etcd's Lock service (v3lockpb), with clientv3 Mutex semantics (server/lock-service.ts). */
export interface LockApi {
  /** Resolves once held; `signal` aborting (the call ended) gives up the place in the queue. */
  lock(request: LockRequest, signal?: AbortSignal): Promise<LockResponse>;
  unlock(request: UnlockRequest): Promise<UnlockResponse>;
}

/** Where Election.Observe sends: `send` false means wait for `drained` before sending more. */
export interface LeaderSink {
  send(response: LeaderResponse): boolean;
  drained(): Promise<void>;
}

/** etcd's Election service (v3electionpb), with clientv3 concurrency.Election semantics (server/election-service.ts). */
export interface ElectionApi {
  /** Resolves once elected; `signal` aborting (the call ended) resigns the waiting campaign. */
  campaign(request: CampaignRequest, signal?: AbortSignal): Promise<CampaignResponse>;
  proclaim(request: ProclaimRequest): Promise<ProclaimResponse>;
  /** Election.Leader (named so beside the member's Raft leader). */
  electionLeader(request: LeaderRequest): Promise<LeaderResponse>;
  /** Election.Observe: sends to `sink` until `signal` aborts (rejects) or the observation is lost (resolves). */
  observe(request: LeaderRequest, sink: LeaderSink, signal: AbortSignal): Promise<void>;
  resign(request: ResignRequest): Promise<ResignResponse>;
}

/** Limits the API layer enforces before a request reaches the member (from flags). */
export interface ApiLimits {
  maxRequestBytes: number;
  maxTxnOps: number;
}

/** Everything the client-facing API serves. The member implements it. */
export interface MemberApi extends RaftKV, ClusterInfo, MaintenanceInfo, LeaseApi, WatchApi, LockApi, ElectionApi {
  readonly limits: ApiLimits;
  /** Cluster and member id and current term for headers built outside the member (errors, health). */
  readonly clusterId: bigint;
  readonly memberId: bigint;
  /** True while the member can serve (has a leader); /health reports it. */
  isHealthy(): boolean;
  /** Whether a leader is known (the `hasleader` gRPC metadata check: "etcdserver: no leader" without one). */
  hasLeader(): boolean;
}
