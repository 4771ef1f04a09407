/**
 * etcd's gRPC services on @grpc/grpc-js, with service definitions built from our protobufjs root
 * (serialize = codec encode, deserialize = codec decode), no proto-loader.
 *
 * Served: KV (Range, Put, DeleteRange, Txn, Compact), Cluster.MemberList, Maintenance.Status.
 * Every other method, of these services or any other, is not registered: grpc-js answers an
 * unregistered path with UNIMPLEMENTED as soon as the request headers arrive, for unary and
 * streaming calls alike (Watch, LeaseKeepAlive, Snapshot), so a client never hangs on them.
 */
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { decode, encode, messageType } from '../proto/codec.js';
import type { Logger } from '../platform/logger.js';
import type { ApiMetrics } from './api-metrics.js';
import { toApiFailure, toGrpcStatus } from './error-mapping.js';
import type { KvService } from './kv-service.js';

/** Where the deserializer leaves the wire size of a request, for the proposal size check. */
const REQUEST_BYTES = Symbol('requestBytes');

type Sized = { [REQUEST_BYTES]?: number };

function method(
  service: string, name: string, requestType: string, responseType: string,
): grpc.MethodDefinition<any, any> {
  const req: protobuf.Type = messageType(requestType);
  const res: protobuf.Type = messageType(responseType);
  return {
    path: `/etcdserverpb.${service}/${name}`,
    requestStream: false,
    responseStream: false,
    originalName: name[0]!.toLowerCase() + name.slice(1),
    requestSerialize: (value: object) => Buffer.from(encode(req, value)),
    requestDeserialize: (bytes: Buffer) => {
      const value = decode<Sized>(req, bytes);
      value[REQUEST_BYTES] = bytes.length;
      return value;
    },
    responseSerialize: (value: object) => {
      const bytes = encode(res, value);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    responseDeserialize: (bytes: Buffer) => decode(res, bytes),
  };
}

export const kvServiceDefinition: grpc.ServiceDefinition = {
  Range: method('KV', 'Range', 'etcdserverpb.RangeRequest', 'etcdserverpb.RangeResponse'),
  Put: method('KV', 'Put', 'etcdserverpb.PutRequest', 'etcdserverpb.PutResponse'),
  DeleteRange: method('KV', 'DeleteRange', 'etcdserverpb.DeleteRangeRequest', 'etcdserverpb.DeleteRangeResponse'),
  Txn: method('KV', 'Txn', 'etcdserverpb.TxnRequest', 'etcdserverpb.TxnResponse'),
  Compact: method('KV', 'Compact', 'etcdserverpb.CompactionRequest', 'etcdserverpb.CompactionResponse'),
};

export const clusterServiceDefinition: grpc.ServiceDefinition = {
  MemberList: method('Cluster', 'MemberList', 'etcdserverpb.MemberListRequest', 'etcdserverpb.MemberListResponse'),
};

export const maintenanceServiceDefinition: grpc.ServiceDefinition = {
  Status: method('Maintenance', 'Status', 'etcdserverpb.StatusRequest', 'etcdserverpb.StatusResponse'),
};

type Call = grpc.ServerUnaryCall<any, any>;
type Callback = grpc.sendUnaryData<any>;

/** What a handler needs to answer one method: where to log and count it. */
interface MethodContext {
  service: string;
  method: string;
  logger: Logger;
  metrics: ApiMetrics;
}

/**
 * Runs one unary call: `run` may throw synchronously (validation) or reject (the member); both
 * become the status etcd would send.
 */
function answer(ctx: MethodContext, callback: Callback, run: () => Promise<unknown>): void {
  ctx.metrics.start(ctx.service, ctx.method);
  let pending: Promise<unknown>;
  try {
    pending = run();
  } catch (err) {
    fail(ctx, callback, err);
    return;
  }
  pending.then(
    (response) => {
      ctx.metrics.handle(ctx.service, ctx.method, 0);
      callback(null, response);
    },
    (err: unknown) => fail(ctx, callback, err),
  );
}

function fail(ctx: MethodContext, callback: Callback, err: unknown): void {
  const failure = toApiFailure(err, ctx.logger, `${ctx.service}/${ctx.method}`);
  ctx.metrics.handle(ctx.service, ctx.method, failure.grpcCode);
  callback(toGrpcStatus(failure) as grpc.ServiceError);
}

function sizeOf(call: Call): number {
  return (call.request as Sized)[REQUEST_BYTES] ?? 0;
}

/** Registers etcd's served methods on `server`, answering through `kv`. */
export function addEtcdServices(server: grpc.Server, kv: KvService, logger: Logger, metrics: ApiMetrics): void {
  const ctx = (service: string, method: string): MethodContext => ({ service: `etcdserverpb.${service}`, method, logger, metrics });
  const range = ctx('KV', 'Range');
  const put = ctx('KV', 'Put');
  const deleteRange = ctx('KV', 'DeleteRange');
  const txn = ctx('KV', 'Txn');
  const compact = ctx('KV', 'Compact');
  const memberList = ctx('Cluster', 'MemberList');
  const status = ctx('Maintenance', 'Status');
  server.addService(kvServiceDefinition, {
    Range: (call: Call, cb: Callback) => answer(range, cb, () => kv.range(call.request)),
    Put: (call: Call, cb: Callback) => answer(put, cb, () => kv.put(call.request, sizeOf(call))),
    DeleteRange: (call: Call, cb: Callback) => answer(deleteRange, cb, () => kv.deleteRange(call.request, sizeOf(call))),
    Txn: (call: Call, cb: Callback) => answer(txn, cb, () => kv.txn(call.request, sizeOf(call))),
    Compact: (call: Call, cb: Callback) => answer(compact, cb, () => kv.compact(call.request, sizeOf(call))),
  });
  server.addService(clusterServiceDefinition, {
    MemberList: (_call: Call, cb: Callback) => answer(memberList, cb, () => kv.memberList()),
  });
  server.addService(maintenanceServiceDefinition, {
    Status: (_call: Call, cb: Callback) => answer(status, cb, () => kv.status()),
  });
}
