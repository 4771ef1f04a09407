/**
 * etcd's RPCs, one row each: the one table that gRPC registration (client-server.ts), the JSON
 * gateway's routes (gateway.ts), the metrics labels (api-metrics.ts) and the UNIMPLEMENTED answers
 * read. A new RPC is one row here and one handler; a row without `serve` is known but not served
 * yet: gRPC answers it UNIMPLEMENTED (grpc-go's "unknown method M for service S" where the service
 * has served methods, else "unknown service S") and its gateway paths answer HTTP 501 with the
 * same text, so a client can tell "not implemented" from "no such API".
 *
 * Rows carry the names of their protobuf messages (package etcdserverpb unless the row brings its
 * own codec); a served row's types are resolved at registration, so a typo fails at start-up.
 * Handlers reach the member only through the interfaces of server/raft-kv.ts (MemberApi) and the
 * request checks of kv-service.ts; later issues add interfaces there and rows here.
 *
 * Gateway paths are etcd 3.4's grpc-gateway paths (POST, body "*"); each also answers under the
 * deprecated /v3beta/ prefix, as etcd 3.4 does (gateway.ts). etcd declares Hash and HashKV both at
 * /v3/maintenance/hash; the path is listed once, under HashKV.
 */
import type protobuf from 'protobufjs';
import { KeyraftError } from '../platform/errors.js';
import { decode, encode, messageType } from '../proto/codec.js';
import type { MemberApi } from '../server/raft-kv.js';
import type { GrpcMethod, ServerStreamCall, StreamHandler, StreamingKind } from '../grpc/grpc-method.js';
import {
  alarmResponseJson, defragmentResponseJson, hashKVResponseJson, hashResponseJson,
  compactionResponseJson, deleteRangeResponseJson, leaseGrantResponseJson, leaseKeepAliveResponseJson, leaseLeasesResponseJson,
  leaseRevokeResponseJson, leaseTimeToLiveResponseJson, memberAddResponseJson, memberListResponseJson, moveLeaderResponseJson,
  campaignResponseJson, headerOnlyResponseJson, leaderResponseJson, lockResponseJson, putResponseJson, rangeResponseJson, statusResponseJson, txnResponseJson, watchResponseJson,
} from './gateway-json.js';
import { watchService } from './watch-service.js';
import { openObserve } from './election-observe.js';
import { healthRequestService, HealthStatus } from './health-service.js';
import type { KvService } from './kv-service.js';
import { openKeepAlive } from './lease-keep-alive.js';
import { openSnapshotStream, snapshotResponseJson } from './maintenance-snapshot.js';

/** What handlers are built from: the member's interfaces and the API's checked front of them. */
export interface MethodDeps {
  member: MemberApi;
  kv: KvService;
}

export type UnaryHandler<Req = any, Res = any> = (request: Req, requestBytes: number, signal?: AbortSignal) => Promise<Res>;
export type StreamOpener<Req = any, Res = any> = (call: ServerStreamCall<Res>) => StreamHandler<Req>;

/** A row's codec when its messages are not in our protocol/ protos (the gRPC health service). */
export interface RowCodec {
  decode(bytes: Buffer): unknown;
  encode(response: any): Uint8Array;
}

interface RowBase {
  /** Short service name in etcdserverpb (KV), or a full name (v3lockpb.Lock: has a dot) for other packages or when `codec` is given. */
  service: string;
  method: string;
  /** etcd 3.4's grpc-gateway POST paths (under /v3/); none for gRPC-only methods. */
  gatewayPaths: readonly string[];
  requestType: string;
  responseType: string;
  codec?: RowCodec;
  /** The gateway's JSON for a response (etcd's jsonpb shape); absent for gRPC-only rows. */
  jsonEncoder?: (response: any) => string;
}

export interface UnaryRow extends RowBase {
  kind: 'unary';
  /** Builds the handler; absent: not served yet. */
  serve?: (deps: MethodDeps) => UnaryHandler;
  /** The handler blocks (Lock): give it an AbortSignal for the call's end (grpc-method.ts). */
  wantsSignal?: boolean;
}

export interface StreamingRow extends RowBase {
  kind: 'server-stream' | 'bidi';
  serve?: (deps: MethodDeps) => StreamOpener;
}

export type MethodRow = UnaryRow | StreamingRow;

const unserved = (kind: StreamingKind, service: string, method: string, requestType: string, responseType: string, gatewayPaths: string[] = []): MethodRow =>
  ({ kind, service, method, requestType, responseType, gatewayPaths }) as MethodRow;

const auth = (method: string, path: string | undefined, type = `Auth${method}`): MethodRow =>
  unserved('unary', 'Auth', method, `${type}Request`, `${type}Response`, path === undefined ? [] : [path]);

export const methodTable: readonly MethodRow[] = [
  // KV
  { kind: 'unary', service: 'KV', method: 'Range', gatewayPaths: ['/v3/kv/range'], requestType: 'RangeRequest', responseType: 'RangeResponse', jsonEncoder: rangeResponseJson, serve: ({ kv }) => (r) => kv.range(r) },
  { kind: 'unary', service: 'KV', method: 'Put', gatewayPaths: ['/v3/kv/put'], requestType: 'PutRequest', responseType: 'PutResponse', jsonEncoder: putResponseJson, serve: ({ kv }) => (r, n) => kv.put(r, n) },
  { kind: 'unary', service: 'KV', method: 'DeleteRange', gatewayPaths: ['/v3/kv/deleterange'], requestType: 'DeleteRangeRequest', responseType: 'DeleteRangeResponse', jsonEncoder: deleteRangeResponseJson, serve: ({ kv }) => (r, n) => kv.deleteRange(r, n) },
  { kind: 'unary', service: 'KV', method: 'Txn', gatewayPaths: ['/v3/kv/txn'], requestType: 'TxnRequest', responseType: 'TxnResponse', jsonEncoder: txnResponseJson, serve: ({ kv }) => (r, n) => kv.txn(r, n) },
  { kind: 'unary', service: 'KV', method: 'Compact', gatewayPaths: ['/v3/kv/compaction'], requestType: 'CompactionRequest', responseType: 'CompactionResponse', jsonEncoder: compactionResponseJson, serve: ({ kv }) => (r, n) => kv.compact(r, n) },
  // Watch
  { kind: 'bidi', service: 'Watch', method: 'Watch', gatewayPaths: ['/v3/watch'], requestType: 'WatchRequest', responseType: 'WatchResponse', jsonEncoder: watchResponseJson, serve: ({ member }) => watchService(member) },
  // Lease
  { kind: 'unary', service: 'Lease', method: 'LeaseGrant', gatewayPaths: ['/v3/lease/grant'], requestType: 'LeaseGrantRequest', responseType: 'LeaseGrantResponse', jsonEncoder: leaseGrantResponseJson, serve: ({ member }) => (r) => member.leaseGrant(r) },
  { kind: 'unary', service: 'Lease', method: 'LeaseRevoke', gatewayPaths: ['/v3/lease/revoke', '/v3/kv/lease/revoke'], requestType: 'LeaseRevokeRequest', responseType: 'LeaseRevokeResponse', jsonEncoder: leaseRevokeResponseJson, serve: ({ member }) => (r) => member.leaseRevoke(r) },
  { kind: 'bidi', service: 'Lease', method: 'LeaseKeepAlive', gatewayPaths: ['/v3/lease/keepalive'], requestType: 'LeaseKeepAliveRequest', responseType: 'LeaseKeepAliveResponse', jsonEncoder: leaseKeepAliveResponseJson, serve: ({ member }) => (call) => openKeepAlive(member, call) },
  { kind: 'unary', service: 'Lease', method: 'LeaseTimeToLive', gatewayPaths: ['/v3/lease/timetolive', '/v3/kv/lease/timetolive'], requestType: 'LeaseTimeToLiveRequest', responseType: 'LeaseTimeToLiveResponse', jsonEncoder: leaseTimeToLiveResponseJson, serve: ({ member }) => (r) => member.leaseTimeToLive(r) },
  { kind: 'unary', service: 'Lease', method: 'LeaseLeases', gatewayPaths: ['/v3/lease/leases', '/v3/kv/lease/leases'], requestType: 'LeaseLeasesRequest', responseType: 'LeaseLeasesResponse', jsonEncoder: leaseLeasesResponseJson, serve: ({ member }) => () => member.leaseLeases() },
  // Cluster. MemberRemove, MemberUpdate and MemberPromote answer {header, members}: MemberList's JSON shape.
  { kind: 'unary', service: 'Cluster', method: 'MemberAdd', gatewayPaths: ['/v3/cluster/member/add'], requestType: 'MemberAddRequest', responseType: 'MemberAddResponse', jsonEncoder: memberAddResponseJson, serve: ({ member }) => (r) => member.memberAdd(r) },
  { kind: 'unary', service: 'Cluster', method: 'MemberRemove', gatewayPaths: ['/v3/cluster/member/remove'], requestType: 'MemberRemoveRequest', responseType: 'MemberRemoveResponse', jsonEncoder: memberListResponseJson, serve: ({ member }) => (r) => member.memberRemove(r) },
  { kind: 'unary', service: 'Cluster', method: 'MemberUpdate', gatewayPaths: ['/v3/cluster/member/update'], requestType: 'MemberUpdateRequest', responseType: 'MemberUpdateResponse', jsonEncoder: memberListResponseJson, serve: ({ member }) => (r) => member.memberUpdate(r) },
  { kind: 'unary', service: 'Cluster', method: 'MemberList', gatewayPaths: ['/v3/cluster/member/list'], requestType: 'MemberListRequest', responseType: 'MemberListResponse', jsonEncoder: memberListResponseJson, serve: ({ kv }) => () => kv.memberList() },
  { kind: 'unary', service: 'Cluster', method: 'MemberPromote', gatewayPaths: ['/v3/cluster/member/promote'], requestType: 'MemberPromoteRequest', responseType: 'MemberPromoteResponse', jsonEncoder: memberListResponseJson, serve: ({ member }) => (r) => member.memberPromote(r) },
  // Maintenance
  { kind: 'unary', service: 'Maintenance', method: 'Alarm', gatewayPaths: ['/v3/maintenance/alarm'], requestType: 'AlarmRequest', responseType: 'AlarmResponse', jsonEncoder: alarmResponseJson, serve: ({ member }) => (r) => member.alarm(r) },
  { kind: 'unary', service: 'Maintenance', method: 'Status', gatewayPaths: ['/v3/maintenance/status'], requestType: 'StatusRequest', responseType: 'StatusResponse', jsonEncoder: statusResponseJson, serve: ({ kv }) => () => kv.status() },
  { kind: 'unary', service: 'Maintenance', method: 'Defragment', gatewayPaths: ['/v3/maintenance/defragment'], requestType: 'DefragmentRequest', responseType: 'DefragmentResponse', jsonEncoder: defragmentResponseJson, serve: ({ member }) => () => member.defragment() },
  { kind: 'unary', service: 'Maintenance', method: 'Hash', gatewayPaths: [], requestType: 'HashRequest', responseType: 'HashResponse', jsonEncoder: hashResponseJson, serve: ({ member }) => () => member.hash() },
  { kind: 'unary', service: 'Maintenance', method: 'HashKV', gatewayPaths: ['/v3/maintenance/hash'], requestType: 'HashKVRequest', responseType: 'HashKVResponse', jsonEncoder: hashKVResponseJson, serve: ({ member }) => (r) => member.hashKV(r) },
  { kind: 'server-stream', service: 'Maintenance', method: 'Snapshot', gatewayPaths: ['/v3/maintenance/snapshot'], requestType: 'SnapshotRequest', responseType: 'SnapshotResponse', jsonEncoder: snapshotResponseJson, serve: ({ member }) => (call) => openSnapshotStream(member, call) },
  { kind: 'unary', service: 'Maintenance', method: 'MoveLeader', gatewayPaths: ['/v3/maintenance/transfer-leadership'], requestType: 'MoveLeaderRequest', responseType: 'MoveLeaderResponse', jsonEncoder: moveLeaderResponseJson, serve: ({ member }) => (r) => member.moveLeader(r) },
  // Lock (etcd's v3lockpb; server/lock-service.ts). Lock blocks until held: it takes the call's signal to give up its place.
  { kind: 'unary', service: 'v3lockpb.Lock', method: 'Lock', gatewayPaths: ['/v3/lock/lock'], requestType: 'v3lockpb.LockRequest', responseType: 'v3lockpb.LockResponse', jsonEncoder: lockResponseJson, wantsSignal: true, serve: ({ member }) => (r, _n, signal) => member.lock(r, signal) },
  { kind: 'unary', service: 'v3lockpb.Lock', method: 'Unlock', gatewayPaths: ['/v3/lock/unlock'], requestType: 'v3lockpb.UnlockRequest', responseType: 'v3lockpb.UnlockResponse', jsonEncoder: headerOnlyResponseJson, serve: ({ member }) => (r) => member.unlock(r) },
  // Election (etcd's v3electionpb; server/election-service.ts). Campaign blocks until elected: it takes the call's signal to resign.
  { kind: 'unary', service: 'v3electionpb.Election', method: 'Campaign', gatewayPaths: ['/v3/election/campaign'], requestType: 'v3electionpb.CampaignRequest', responseType: 'v3electionpb.CampaignResponse', jsonEncoder: campaignResponseJson, wantsSignal: true, serve: ({ member }) => (r, _n, signal) => member.campaign(r, signal) },
  { kind: 'unary', service: 'v3electionpb.Election', method: 'Proclaim', gatewayPaths: ['/v3/election/proclaim'], requestType: 'v3electionpb.ProclaimRequest', responseType: 'v3electionpb.ProclaimResponse', jsonEncoder: headerOnlyResponseJson, serve: ({ member }) => (r) => member.proclaim(r) },
  { kind: 'unary', service: 'v3electionpb.Election', method: 'Leader', gatewayPaths: ['/v3/election/leader'], requestType: 'v3electionpb.LeaderRequest', responseType: 'v3electionpb.LeaderResponse', jsonEncoder: leaderResponseJson, serve: ({ member }) => (r) => member.electionLeader(r) },
  { kind: 'server-stream', service: 'v3electionpb.Election', method: 'Observe', gatewayPaths: ['/v3/election/observe'], requestType: 'v3electionpb.LeaderRequest', responseType: 'v3electionpb.LeaderResponse', jsonEncoder: leaderResponseJson, serve: ({ member }) => (call) => openObserve(member, call) },
  { kind: 'unary', service: 'v3electionpb.Election', method: 'Resign', gatewayPaths: ['/v3/election/resign'], requestType: 'v3electionpb.ResignRequest', responseType: 'v3electionpb.ResignResponse', jsonEncoder: headerOnlyResponseJson, serve: ({ member }) => (r) => member.resign(r) },
  // Auth
  auth('AuthEnable', '/v3/auth/enable', 'AuthEnable'),
  auth('AuthDisable', '/v3/auth/disable', 'AuthDisable'),
  auth('AuthStatus', undefined, 'AuthStatus'),
  auth('Authenticate', '/v3/auth/authenticate', 'Authenticate'),
  auth('UserAdd', '/v3/auth/user/add'),
  auth('UserGet', '/v3/auth/user/get'),
  auth('UserList', '/v3/auth/user/list'),
  auth('UserDelete', '/v3/auth/user/delete'),
  auth('UserChangePassword', '/v3/auth/user/changepw'),
  auth('UserGrantRole', '/v3/auth/user/grant'),
  auth('UserRevokeRole', '/v3/auth/user/revoke'),
  auth('RoleAdd', '/v3/auth/role/add'),
  auth('RoleGet', '/v3/auth/role/get'),
  auth('RoleList', '/v3/auth/role/list'),
  auth('RoleDelete', '/v3/auth/role/delete'),
  auth('RoleGrantPermission', '/v3/auth/role/grant'),
  auth('RoleRevokePermission', '/v3/auth/role/revoke'),
  // The standard gRPC health service, which etcd 3.4 registers on its client port (health-service.ts).
  {
    kind: 'unary', service: 'grpc.health.v1.Health', method: 'Check', gatewayPaths: [], requestType: 'HealthCheckRequest', responseType: 'HealthCheckResponse',
    codec: { decode: healthRequestService, encode: (status: number) => Uint8Array.of(0x08, status) },
    serve: ({ member }) => async (service: string) => {
      // grpc-go's health server says exactly this for a service it does not know.
      if (service !== '') throw new KeyraftError('NotFoundPath', 'unknown service');
      return member.isHealthy() ? HealthStatus.SERVING : HealthStatus.NOT_SERVING;
    },
  },
];

/** The full gRPC service name of a row (etcdserverpb.KV). */
export function fullServiceName(row: MethodRow): string {
  return row.codec !== undefined || row.service.includes('.') ? row.service : `etcdserverpb.${row.service}`;
}

/** A row's message name in full: etcdserverpb unless the row names its package (v3lockpb.LockRequest). */
function fullTypeName(name: string): string {
  return name.includes('.') ? name : `etcdserverpb.${name}`;
}

/** The protobuf type of a row's request (rows with their own codec have none). */
export function requestTypeOf(row: MethodRow): protobuf.Type {
  return messageType(fullTypeName(row.requestType));
}

/** The protobuf type of a row's response. */
export function responseTypeOf(row: MethodRow): protobuf.Type {
  return messageType(fullTypeName(row.responseType));
}

/** The gRPC method for a served row, its handler built from `deps`; undefined for an unserved row. */
export function grpcMethodOf(row: MethodRow, deps: MethodDeps): GrpcMethod | undefined {
  if (row.serve === undefined) return undefined;
  let decodeRequest: (bytes: Buffer) => unknown;
  let encodeResponse: (response: any) => Uint8Array;
  if (row.codec !== undefined) {
    decodeRequest = row.codec.decode;
    encodeResponse = row.codec.encode;
  } else {
    const requestType = requestTypeOf(row);
    const responseType = responseTypeOf(row);
    decodeRequest = (bytes) => decode(requestType, bytes);
    encodeResponse = (response) => encode(responseType, response);
  }
  const service = fullServiceName(row);
  if (row.kind === 'unary') return { kind: 'unary', service, method: row.method, decode: decodeRequest, encode: encodeResponse, handle: row.serve(deps), wantsSignal: row.wantsSignal };
  return { kind: row.kind, service, method: row.method, decode: decodeRequest, encode: encodeResponse, open: row.serve(deps) };
}

/** Services with at least one served method: grpc-go names a missing method there, not the service. */
export function servedServices(rows: readonly MethodRow[] = methodTable): Set<string> {
  return new Set(rows.filter((row) => row.serve !== undefined).map(fullServiceName));
}

/** grpc-go's UNIMPLEMENTED text for an unserved row, as the gateway relays it. */
export function unimplementedError(row: MethodRow, served: Set<string>): KeyraftError {
  const service = fullServiceName(row);
  return new KeyraftError('Unimplemented', served.has(service) ? `unknown method ${row.method} for service ${service}` : `unknown service ${service}`);
}
