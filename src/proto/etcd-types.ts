/**
 * TypeScript shapes of the etcd v3 messages keyraft handles, as the codec (codec.ts) hands them
 * to the server and takes them back. Field names are the .proto names (protocol/etcd/*.proto,
 * snake_case as etcd's JSON gateway prints them). Bytes are Buffers. 64-bit integers are
 * converted once, in the codec: revisions, counts, versions and terms become `number`; member,
 * cluster and lease ids become `bigint` (they use all 64 bits). Absent fields are undefined or
 * the proto3 default.
 */

export interface ResponseHeader {
  cluster_id: bigint;
  member_id: bigint;
  revision: number;
  raft_term: number;
}

export interface KeyValue {
  key: Buffer;
  create_revision: number;
  mod_revision: number;
  version: number;
  value: Buffer;
  lease: bigint;
}

export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export type SortOrder = (typeof SortOrder)[keyof typeof SortOrder];
export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;
export type SortTarget = (typeof SortTarget)[keyof typeof SortTarget];

export interface RangeRequest {
  key?: Buffer;
  range_end?: Buffer;
  limit?: number;
  revision?: number;
  sort_order?: SortOrder;
  sort_target?: SortTarget;
  serializable?: boolean;
  keys_only?: boolean;
  count_only?: boolean;
  min_mod_revision?: number;
  max_mod_revision?: number;
  min_create_revision?: number;
  max_create_revision?: number;
}

export interface RangeResponse {
  header?: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutRequest {
  key?: Buffer;
  value?: Buffer;
  lease?: bigint;
  prev_kv?: boolean;
  ignore_value?: boolean;
  ignore_lease?: boolean;
}

export interface PutResponse {
  header?: ResponseHeader;
  prev_kv?: KeyValue;
}

export interface DeleteRangeRequest {
  key?: Buffer;
  range_end?: Buffer;
  prev_kv?: boolean;
}

export interface DeleteRangeResponse {
  header?: ResponseHeader;
  deleted: number;
  prev_kvs: KeyValue[];
}

/** Exactly one of the four fields is set (the proto's oneof `request`). */
export interface RequestOp {
  request_range?: RangeRequest;
  request_put?: PutRequest;
  request_delete_range?: DeleteRangeRequest;
  request_txn?: TxnRequest;
}

/** Exactly one of the four fields is set (the proto's oneof `response`). */
export interface ResponseOp {
  response_range?: RangeResponse;
  response_put?: PutResponse;
  response_delete_range?: DeleteRangeResponse;
  response_txn?: TxnResponse;
}

export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export type CompareResult = (typeof CompareResult)[keyof typeof CompareResult];
export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;
export type CompareTarget = (typeof CompareTarget)[keyof typeof CompareTarget];

export interface Compare {
  result?: CompareResult;
  target?: CompareTarget;
  key?: Buffer;
  /** oneof target_union: the one matching `target` is read; an unset one counts as 0 / empty. */
  version?: number;
  create_revision?: number;
  mod_revision?: number;
  value?: Buffer;
  lease?: bigint;
  range_end?: Buffer;
}

export interface TxnRequest {
  compare?: Compare[];
  success?: RequestOp[];
  failure?: RequestOp[];
}

export interface TxnResponse {
  header?: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision?: number;
  physical?: boolean;
}

export interface CompactionResponse {
  header?: ResponseHeader;
}

export interface Member {
  ID: bigint;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface MemberAddRequest { peerURLs?: string[]; isLearner?: boolean }
export interface MemberAddResponse { header?: ResponseHeader; member?: Member; members: Member[] }
export interface MemberRemoveRequest { ID?: bigint }
export interface MemberUpdateRequest { ID?: bigint; peerURLs?: string[] }
export interface MemberPromoteRequest { ID?: bigint }
/** MemberRemove, MemberUpdate and MemberPromote answer with the same shape. */
export interface MembersResponse { header?: ResponseHeader; members: Member[] }
export interface MoveLeaderRequest { targetID?: bigint }
export interface MoveLeaderResponse { header?: ResponseHeader }

export interface MemberListResponse {
  header?: ResponseHeader;
  members: Member[];
}

export interface StatusResponse {
  header?: ResponseHeader;
  version: string;
  dbSize: number;
  leader: bigint;
  raftIndex: number;
  raftTerm: number;
  raftAppliedIndex: number;
  errors: string[];
  dbSizeInUse: number;
  isLearner: boolean;
}

/** What a mutating client request becomes: the payload of one log entry (keyraftpb.InternalRequest). */
export interface InternalRequest {
  /** Unique per proposing member; finds the waiter for the entry when it is applied. */
  id: number;
  /** The proposing member (0n in entries written before clustering). */
  member_id?: bigint;
  put?: PutRequest;
  delete_range?: DeleteRangeRequest;
  txn?: TxnRequest;
  compaction?: CompactionRequest;
  publish?: MemberAttributes;
  member_update?: MemberPeerUpdate;
  alarm?: AlarmRequest;
  lease_grant?: LeaseGrantRequest;
  lease_revoke?: LeaseRevokeRequest;
  lease_checkpoint?: LeaseCheckpointRequest;
}

// ---- Lease service (etcdserverpb) ----------------------------------------------------------------

export interface LeaseGrantRequest {
  TTL?: number;
  ID?: bigint;
}

export interface LeaseGrantResponse {
  header?: ResponseHeader;
  ID?: bigint;
  TTL?: number;
  error?: string;
}

export interface LeaseRevokeRequest {
  ID?: bigint;
}

export interface LeaseRevokeResponse {
  header?: ResponseHeader;
}

export interface LeaseCheckpointRequest {
  checkpoints?: Array<{ ID?: bigint; remaining_TTL?: number }>;
}

export interface LeaseCheckpointResponse {
  header?: ResponseHeader;
}

export interface LeaseKeepAliveRequest {
  ID?: bigint;
}

export interface LeaseKeepAliveResponse {
  header?: ResponseHeader;
  ID?: bigint;
  TTL?: number;
}

export interface LeaseTimeToLiveRequest {
  ID?: bigint;
  keys?: boolean;
}

export interface LeaseTimeToLiveResponse {
  header?: ResponseHeader;
  ID?: bigint;
  TTL?: number;
  grantedTTL?: number;
  keys?: Buffer[];
}

export interface LeaseLeasesResponse {
  header?: ResponseHeader;
  leases: Array<{ ID: bigint }>;
}

/** etcdserverpb.AlarmType. */
export const AlarmType = { NONE: 0, NOSPACE: 1, CORRUPT: 2 } as const;
export type AlarmType = (typeof AlarmType)[keyof typeof AlarmType];
/** etcdserverpb.AlarmRequest.AlarmAction. */
export const AlarmAction = { GET: 0, ACTIVATE: 1, DEACTIVATE: 2 } as const;
export type AlarmAction = (typeof AlarmAction)[keyof typeof AlarmAction];

export interface AlarmRequest { action?: AlarmAction; memberID?: bigint; alarm?: AlarmType }
export interface AlarmMember { memberID: bigint; alarm: AlarmType }
export interface AlarmResponse { header?: ResponseHeader; alarms: AlarmMember[] }
export interface DefragmentResponse { header?: ResponseHeader }
export interface HashRequest {}
export interface HashResponse { header?: ResponseHeader; hash: number }
export interface HashKVRequest { revision?: number }
export interface HashKVResponse { header?: ResponseHeader; hash: number; compact_revision: number }

/** keyraftpb.MemberPeerUpdate: MemberUpdate's new peer URLs (not a Raft configuration change). */
export interface MemberPeerUpdate {
  member_id: bigint;
  peer_urls: string[];
}

/** keyraftpb.MemberAttributes: what a member publishes about itself through the log. */
export interface MemberAttributes {
  member_id: bigint;
  name: string;
  client_urls: string[];
}

// ---- Watch (etcdserverpb.Watch/Watch, mvccpb.Event) ---------------------------------------------

export const EventType = { PUT: 0, DELETE: 1 } as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

export interface Event {
  type: EventType;
  kv: KeyValue;
  prev_kv?: KeyValue;
}

export const WatchFilterType = { NOPUT: 0, NODELETE: 1 } as const;
export type WatchFilterType = (typeof WatchFilterType)[keyof typeof WatchFilterType];

export interface WatchCreateRequest {
  key?: Buffer;
  range_end?: Buffer;
  start_revision?: number;
  progress_notify?: boolean;
  filters?: number[];
  prev_kv?: boolean;
  watch_id?: number;
  fragment?: boolean;
}

export interface WatchCancelRequest {
  watch_id?: number;
}

/** Exactly one of the three is set (the proto's oneof `request_union`); none = ignored, as etcd. */
export interface WatchRequest {
  create_request?: WatchCreateRequest;
  cancel_request?: WatchCancelRequest;
  progress_request?: Record<string, never>;
}

export interface WatchResponse {
  header?: ResponseHeader;
  watch_id: number;
  created: boolean;
  canceled: boolean;
  compact_revision: number;
  cancel_reason: string;
  fragment: boolean;
  events: Event[];
}

/** v3lockpb (protocol/etcd/v3lock.proto): etcd's Lock service. */
export interface LockRequest {
  name?: Buffer;
  lease?: bigint;
}

export interface LockResponse {
  header?: ResponseHeader;
  key: Buffer;
}

export interface UnlockRequest {
  key?: Buffer;
}

export interface UnlockResponse {
  header?: ResponseHeader;
}

/** v3electionpb (protocol/etcd/v3election.proto): etcd's Election service. */
export interface LeaderKey {
  name?: Buffer;
  key?: Buffer;
  rev?: number;
  lease?: bigint;
}

export interface CampaignRequest {
  name?: Buffer;
  lease?: bigint;
  value?: Buffer;
}

export interface CampaignResponse {
  header?: ResponseHeader;
  leader?: LeaderKey;
}

export interface ProclaimRequest {
  leader?: LeaderKey;
  value?: Buffer;
}

export interface ProclaimResponse {
  header?: ResponseHeader;
}

export interface LeaderRequest {
  name?: Buffer;
}

export interface LeaderResponse {
  header?: ResponseHeader;
  kv?: KeyValue;
}

export interface ResignRequest {
  leader?: LeaderKey;
}

export interface ResignResponse {
  header?: ResponseHeader;
}
