import type {
  CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, MemberAddRequest,
  MemberAddResponse, MemberListResponse, MemberPromoteRequest, MemberRemoveRequest, MembersResponse,
  MemberUpdateRequest, MoveLeaderRequest, MoveLeaderResponse, PutRequest, PutResponse, RangeRequest,
  RangeResponse, StatusResponse, TxnRequest, TxnResponse, WatchRequest,
} from '../proto/etcd-types.js';
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
  moveLeader(request: MoveLeaderRequest): Promise<MoveLeaderResponse>;
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

/** Limits the API layer enforces before a request reaches the member (from flags). */
export interface ApiLimits {
  maxRequestBytes: number;
  maxTxnOps: number;
}

/** Everything the client-facing API serves. The member implements it. */
export interface MemberApi extends RaftKV, ClusterInfo, MaintenanceInfo, WatchApi {
  readonly limits: ApiLimits;
  /** Cluster and member id and current term for headers built outside the member (errors, health). */
  readonly clusterId: bigint;
  readonly memberId: bigint;
  /** True while the member can serve (has a leader); /health reports it. */
  isHealthy(): boolean;
  /** Whether a leader is known (the `hasleader` gRPC metadata check: "etcdserver: no leader" without one). */
  hasLeader(): boolean;
}
