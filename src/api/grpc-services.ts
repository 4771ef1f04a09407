/**
 * etcd's served gRPC methods, with our protobufjs codecs (codec.ts: decode and encode, etcd-types
 * shapes) and the KvService behind them: KV (Range, Put, DeleteRange, Txn, Compact), Cluster
 * (MemberList, MemberAdd, MemberRemove, MemberUpdate, MemberPromote), Maintenance (Status,
 * MoveLeader). Everything else of etcdserverpb (Watch, Lease, Auth, the
 * other Cluster and Maintenance methods, streaming or not) is not registered, and the gRPC server
 * answers it UNIMPLEMENTED at once (grpc-server.ts).
 */
import type protobuf from 'protobufjs';
import { decode, encode, messageType } from '../proto/codec.js';
import type { GrpcServer, UnaryMethod } from '../grpc/grpc-server.js';
import type { KvService } from './kv-service.js';

/** The gRPC methods keyraft serves: [service, method, request type, response type]. */
export const servedMethods = [
  ['KV', 'Range', 'RangeRequest', 'RangeResponse'],
  ['KV', 'Put', 'PutRequest', 'PutResponse'],
  ['KV', 'DeleteRange', 'DeleteRangeRequest', 'DeleteRangeResponse'],
  ['KV', 'Txn', 'TxnRequest', 'TxnResponse'],
  ['KV', 'Compact', 'CompactionRequest', 'CompactionResponse'],
  ['Cluster', 'MemberList', 'MemberListRequest', 'MemberListResponse'],
  ['Cluster', 'MemberAdd', 'MemberAddRequest', 'MemberAddResponse'],
  ['Cluster', 'MemberRemove', 'MemberRemoveRequest', 'MemberRemoveResponse'],
  ['Cluster', 'MemberUpdate', 'MemberUpdateRequest', 'MemberUpdateResponse'],
  ['Cluster', 'MemberPromote', 'MemberPromoteRequest', 'MemberPromoteResponse'],
  ['Maintenance', 'Status', 'StatusRequest', 'StatusResponse'],
  ['Maintenance', 'MoveLeader', 'MoveLeaderRequest', 'MoveLeaderResponse'],
] as const;

type MethodName = (typeof servedMethods)[number][1];

function handlerFor(kv: KvService, name: MethodName): (request: any, requestBytes: number) => Promise<unknown> {
  switch (name) {
    case 'Range': return (r) => kv.range(r);
    case 'Put': return (r, n) => kv.put(r, n);
    case 'DeleteRange': return (r, n) => kv.deleteRange(r, n);
    case 'Txn': return (r, n) => kv.txn(r, n);
    case 'Compact': return (r, n) => kv.compact(r, n);
    case 'MemberList': return () => kv.memberList();
    case 'MemberAdd': return (r) => kv.member.memberAdd(r);
    case 'MemberRemove': return (r) => kv.member.memberRemove(r);
    case 'MemberUpdate': return (r) => kv.member.memberUpdate(r);
    case 'MemberPromote': return (r) => kv.member.memberPromote(r);
    case 'Status': return () => kv.status();
    case 'MoveLeader': return (r) => kv.member.moveLeader(r);
  }
}

/** Registers etcd's served methods on `server`, answering through `kv`. */
export function addEtcdServices(server: GrpcServer, kv: KvService): void {
  for (const [service, name, requestName, responseName] of servedMethods) {
    const requestType: protobuf.Type = messageType(`etcdserverpb.${requestName}`);
    const responseType: protobuf.Type = messageType(`etcdserverpb.${responseName}`);
    const method: UnaryMethod = {
      service: `etcdserverpb.${service}`,
      method: name,
      decode: (bytes) => decode(requestType, bytes),
      encode: (response) => encode(responseType, response),
      handle: handlerFor(kv, name),
    };
    server.addMethod(method);
  }
}
