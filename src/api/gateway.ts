/**
 * The JSON gateway: etcd 3.4's grpc-gateway paths on HTTP/1.1, answered directly (etcd's gateway
 * re-sends each request to itself over gRPC; we parse once and build the JSON reply as a string).
 *
 *   POST /v3/kv/range | put | deleterange | txn | compaction
 *   POST /v3/cluster/member/list     POST /v3/maintenance/status
 *   GET  /v3/kv/range?key=k[&range_end=e][&prefix=true][&limit=n][&revision=r]   (keyraft only)
 *
 * Requests reach it two ways: the HTTP/1.1 fast path (http1-fast-path.ts) hands over complete POST
 * bodies for these routes (serveBody), and node:http brings everything else (handle).
 *
 * Mapping and error texts: gateway-json.ts. Limits, in etcd's order: the body must fit the gRPC
 * receive limit once encoded (else 429, grpc-go's text), then the request's own checks, then the
 * proposal size for writes (kv-service.ts). A body larger than any acceptable request is refused
 * while it streams in (413) so a hostile client cannot make us buffer without bound.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type protobuf from 'protobufjs';
import type { Logger } from '../platform/logger.js';
import type { RangeRequest } from '../proto/etcd-types.js';
import { GrpcCode, KeyraftError } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import type { ApiMetrics } from './api-metrics.js';
import { MessageTooLargeError, toApiFailure, httpStatusOfFailure } from './error-mapping.js';
import {
  GatewayDecodeError, compactionResponseJson, deleteRangeResponseJson, errorJson, memberListResponseJson, memberAddResponseJson, moveLeaderResponseJson, parseBody,
  putResponseJson, rangeResponseJson, requestTypes, statusResponseJson, txnResponseJson,
} from './gateway-json.js';
import type { HttpEndpoints } from './http-endpoints.js';
import { corsHeaders, sendJson, sendPlainError } from './http-reply.js';
import type { Http1RequestHandler, ReplySink } from '../http/http1-fast-path.js';
import type { KvService } from './kv-service.js';
import { protoSizeOf } from './proto-size.js';


/** A node:http response as a ReplySink. */
class NodeReply implements ReplySink {
  constructor(private readonly res: ServerResponse) {}

  replyJson(status: number, json: string): void {
    sendJson(this.res, status, json);
  }
}

type RouteKind = 'range' | 'put' | 'deleteRange' | 'txn' | 'compaction' | 'memberList' | 'status'
  | 'memberAdd' | 'memberRemove' | 'memberUpdate' | 'memberPromote' | 'moveLeader';

export interface Route {
  kind: RouteKind;
  type: protobuf.Type;
  /** The gRPC method this path stands for, for metrics. */
  service: string;
  method: string;
}

const routes = new Map<string, Route>([
  ['/v3/kv/range', { kind: 'range', type: requestTypes.range, service: 'etcdserverpb.KV', method: 'Range' }],
  ['/v3/kv/put', { kind: 'put', type: requestTypes.put, service: 'etcdserverpb.KV', method: 'Put' }],
  ['/v3/kv/deleterange', { kind: 'deleteRange', type: requestTypes.deleteRange, service: 'etcdserverpb.KV', method: 'DeleteRange' }],
  ['/v3/kv/txn', { kind: 'txn', type: requestTypes.txn, service: 'etcdserverpb.KV', method: 'Txn' }],
  ['/v3/kv/compaction', { kind: 'compaction', type: requestTypes.compaction, service: 'etcdserverpb.KV', method: 'Compact' }],
  ['/v3/cluster/member/list', { kind: 'memberList', type: requestTypes.memberList, service: 'etcdserverpb.Cluster', method: 'MemberList' }],
  ['/v3/maintenance/status', { kind: 'status', type: requestTypes.status, service: 'etcdserverpb.Maintenance', method: 'Status' }],
  ['/v3/cluster/member/add', { kind: 'memberAdd', type: requestTypes.memberAdd, service: 'etcdserverpb.Cluster', method: 'MemberAdd' }],
  ['/v3/cluster/member/remove', { kind: 'memberRemove', type: requestTypes.memberRemove, service: 'etcdserverpb.Cluster', method: 'MemberRemove' }],
  ['/v3/cluster/member/update', { kind: 'memberUpdate', type: requestTypes.memberUpdate, service: 'etcdserverpb.Cluster', method: 'MemberUpdate' }],
  ['/v3/cluster/member/promote', { kind: 'memberPromote', type: requestTypes.memberPromote, service: 'etcdserverpb.Cluster', method: 'MemberPromote' }],
  ['/v3/maintenance/transfer-leadership', { kind: 'moveLeader', type: requestTypes.moveLeader, service: 'etcdserverpb.Maintenance', method: 'MoveLeader' }],
]);

/**
 * etcd 3.4's other gateway paths, with the gRPC method each stands for. keyraft does not serve
 * them yet; they answer UNIMPLEMENTED (HTTP 501) in grpc-go's words rather than 404, so a client
 * can tell "not implemented" from "no such API".
 */
const unservedRoutes = new Map<string, string>([
  ['/v3/watch', 'etcdserverpb.Watch/Watch'],
  ['/v3/lease/grant', 'etcdserverpb.Lease/LeaseGrant'],
  ['/v3/lease/revoke', 'etcdserverpb.Lease/LeaseRevoke'],
  ['/v3/kv/lease/revoke', 'etcdserverpb.Lease/LeaseRevoke'],
  ['/v3/lease/keepalive', 'etcdserverpb.Lease/LeaseKeepAlive'],
  ['/v3/lease/timetolive', 'etcdserverpb.Lease/LeaseTimeToLive'],
  ['/v3/kv/lease/timetolive', 'etcdserverpb.Lease/LeaseTimeToLive'],
  ['/v3/lease/leases', 'etcdserverpb.Lease/LeaseLeases'],
  ['/v3/kv/lease/leases', 'etcdserverpb.Lease/LeaseLeases'],
  ['/v3/maintenance/alarm', 'etcdserverpb.Maintenance/Alarm'],
  ['/v3/maintenance/defragment', 'etcdserverpb.Maintenance/Defragment'],
  ['/v3/maintenance/hash', 'etcdserverpb.Maintenance/HashKV'],
  ['/v3/maintenance/snapshot', 'etcdserverpb.Maintenance/Snapshot'],
  ['/v3/auth/enable', 'etcdserverpb.Auth/AuthEnable'],
  ['/v3/auth/disable', 'etcdserverpb.Auth/AuthDisable'],
  ['/v3/auth/authenticate', 'etcdserverpb.Auth/Authenticate'],
  ...[['add', 'UserAdd'], ['get', 'UserGet'], ['list', 'UserList'], ['delete', 'UserDelete'], ['changepw', 'UserChangePassword'], ['grant', 'UserGrantRole'], ['revoke', 'UserRevokeRole']]
    .map(([p, m]): [string, string] => [`/v3/auth/user/${p}`, `etcdserverpb.Auth/${m}`]),
  ...[['add', 'RoleAdd'], ['get', 'RoleGet'], ['list', 'RoleList'], ['delete', 'RoleDelete'], ['grant', 'RoleGrantPermission'], ['revoke', 'RoleRevokePermission']]
    .map(([p, m]): [string, string] => [`/v3/auth/role/${p}`, `etcdserverpb.Auth/${m}`]),
]);

/**
 * etcd 3.4 still serves its gateway under the deprecated /v3beta/ prefix as well; /v3alpha/ is gone.
 * Every path above answers there too.
 */
for (const table of [routes, unservedRoutes] as Array<Map<string, unknown>>) {
  for (const [path, target] of [...table]) table.set(path.replace(/^\/v3\//, '/v3beta/'), target);
}

/**
 * etcd's two 404s: grpc-gateway's "Not Found" under its prefixes, Go's ServeMux's
 * "404 page not found" elsewhere.
 */
function notFoundText(path: string): string {
  return path.startsWith('/v3/') || path.startsWith('/v3beta/') ? 'Not Found' : '404 page not found';
}

/** Services of which keyraft serves some methods: grpc-go names a missing method there, not the service. */
const partlyServed = new Set(['etcdserverpb.Cluster', 'etcdserverpb.Maintenance']);

function unimplemented(fullMethod: string): KeyraftError {
  const [service, method] = fullMethod.split('/') as [string, string];
  return new KeyraftError('Unimplemented', partlyServed.has(service) ? `unknown method ${method} for service ${service}` : `unknown service ${service}`);
}

/**
 * The body cap: base64 makes 4 bytes of 3, so a request at the gRPC limit is about 4/3 of it in
 * JSON. We read up to twice that (plus room for JSON syntax) so that bodies somewhat over the
 * limit still get etcd's answer (429 with the encoded size); beyond it the body is refused while
 * it streams in (413), where etcd would buffer any size.
 */
const gatewayBodyLimitFactor = 2;
const gatewayJsonSlackBytes = 64 * 1024;

/** etcd's CORS headers as raw header lines, for the HTTP/1.1 fast path's replies. */
const CORS_LINES = `${corsHeaders[0]}: ${corsHeaders[1]}\r\n${corsHeaders[2]}: ${corsHeaders[3]}\r\n${corsHeaders[4]}: ${corsHeaders[5]}\r\n`;

export class Gateway implements Http1RequestHandler<Route> {
  readonly replyHeaderLines = CORS_LINES;
  private readonly bodyBytesMax: number;
  private readonly txnDepthMax: number;

  constructor(
    private readonly kv: KvService,
    private readonly endpoints: HttpEndpoints,
    private readonly logger: Logger,
    private readonly metrics: ApiMetrics,
  ) {
    this.bodyBytesMax = Math.ceil((kv.grpcMaxReceiveBytes * 4 * gatewayBodyLimitFactor) / 3) + gatewayJsonSlackBytes;
    // Nesting beyond max-txn-ops + 1 levels is always etcd's "too many operations" (Limits.txnDepthMax).
    this.txnDepthMax = Math.min(kv.member.limits.maxTxnOps + 1, Limits.txnDepthMax);
  }

  /** The node:http 'request' listener. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const route = routes.get(path);
    if (route !== undefined) {
      if (req.method === 'POST') {
        this.readBody(route, req, res);
      } else if (req.method === 'GET' && route.kind === 'range') {
        this.rangeFromQuery(q === -1 ? '' : url.slice(q + 1), req, res);
      } else if (req.method === 'OPTIONS') {
        this.preflight(req, res);
      } else {
        drain(req);
        sendPlainError(res, 405, 'Method Not Allowed');
      }
      return;
    }
    if (req.method === 'OPTIONS') {
      this.preflight(req, res);
      return;
    }
    const unserved = unservedRoutes.get(path);
    if (unserved !== undefined) {
      drain(req);
      if (req.method === 'POST') this.fail(new NodeReply(res), unimplemented(unserved));
      else sendPlainError(res, 405, 'Method Not Allowed');
      return;
    }
    if (this.endpoints.handle(path, req, res)) {
      drain(req);
      return;
    }
    drain(req);
    sendPlainError(res, 404, notFoundText(path));
  };

  private preflight(req: IncomingMessage, res: ServerResponse): void {
    drain(req);
    res.writeHead(200, [...corsHeaders, 'Content-Length', '0']);
    res.end();
  }

  private readBody(route: Route, req: IncomingMessage, res: ServerResponse): void {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.bodyBytesMax) {
      this.refuseBody(req, res);
      return;
    }
    let first: Buffer | undefined;
    let rest: Buffer[] | undefined;
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > this.bodyBytesMax) {
        this.refuseBody(req, res);
        return;
      }
      if (first === undefined) first = chunk;
      else (rest ??= [first]).push(chunk);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      this.serveBody(route, rest !== undefined ? Buffer.concat(rest) : first ?? Buffer.alloc(0), new NodeReply(res));
    });
  }

  /**
   * A body beyond any acceptable request: answered at once and the connection closed, since the
   * rest of the body will not be read.
   */
  private refuseBody(req: IncomingMessage, res: ServerResponse): void {
    if (res.headersSent) return;
    const body = errorJson(`request body larger than ${this.bodyBytesMax} bytes`, GrpcCode.RESOURCE_EXHAUSTED);
    res.writeHead(413, [...corsHeaders, 'Content-Type', 'application/json', 'Content-Length', String(body.length), 'Connection', 'close']);
    res.end(body);
    req.pause();
    res.once('finish', () => req.socket.destroySoon());
  }

  /** The largest body a gateway request may have; larger ones are refused unread (413). */
  get bodyLimitBytes(): number {
    return this.bodyBytesMax;
  }

  /** The route for a POST path, or undefined if the gateway does not serve it. */
  routeFor(path: string): Route | undefined {
    return routes.get(path);
  }

  /** Parses a complete request body and answers it through `sink`. */
  serveBody(route: Route, body: Buffer, sink: ReplySink): void {
    let request: any;
    try {
      request = parseBody(route.type, body, this.txnDepthMax);
    } catch (err) {
      this.fail(sink, err);
      return;
    }
    this.serve(route, request, sink);
  }

  /** Checks the encoded size against the gRPC limit, then runs the call and writes its answer. */
  private serve(route: Route, request: any, sink: ReplySink): void {
    let reply: Promise<string>;
    try {
      const size = protoSizeOf(route.type, request);
      // Over the gRPC limit, etcd's gRPC server refuses before counting the call as started.
      if (size > this.kv.grpcMaxReceiveBytes) throw new MessageTooLargeError(size, this.kv.grpcMaxReceiveBytes);
      this.metrics.start(route.service, route.method);
      reply = this.dispatch(route.kind, request, size);
    } catch (err) {
      this.fail(sink, err, route);
      return;
    }
    reply.then(
      (json) => {
        this.metrics.handle(route.service, route.method, 0);
        sink.replyJson(200, json);
      },
      (err: unknown) => this.fail(sink, err, route),
    );
  }

  private dispatch(kind: RouteKind, request: any, size: number): Promise<string> {
    switch (kind) {
      case 'range': return this.kv.range(request).then(rangeResponseJson);
      case 'put': return this.kv.put(request, size).then(putResponseJson);
      case 'deleteRange': return this.kv.deleteRange(request, size).then(deleteRangeResponseJson);
      case 'txn': return this.kv.txn(request, size).then(txnResponseJson);
      case 'compaction': return this.kv.compact(request, size).then(compactionResponseJson);
      case 'memberList': return this.kv.memberList().then(memberListResponseJson);
      case 'status': return this.kv.status().then(statusResponseJson);
      case 'memberAdd': return this.kv.member.memberAdd(request).then(memberAddResponseJson);
      // MemberRemove, MemberUpdate and MemberPromote answer {header, members}: MemberList's shape.
      case 'memberRemove': return this.kv.member.memberRemove(request).then(memberListResponseJson);
      case 'memberUpdate': return this.kv.member.memberUpdate(request).then(memberListResponseJson);
      case 'memberPromote': return this.kv.member.memberPromote(request).then(memberListResponseJson);
      case 'moveLeader': return this.kv.member.moveLeader(request).then(moveLeaderResponseJson);
    }
  }

  private fail(sink: ReplySink, err: unknown, route?: Route): void {
    const failure = toApiFailure(err, this.logger, 'gateway');
    if (route !== undefined && !(err instanceof MessageTooLargeError)) this.metrics.handle(route.service, route.method, failure.grpcCode);
    sink.replyJson(httpStatusOfFailure(failure), errorJson(failure.message, failure.grpcCode));
  }

  /**
   * GET /v3/kv/range?key=...: keys and range ends are plain text (UTF-8), not base64; prefix=true
   * sets range_end to the prefix's end as etcdctl --prefix does. Answers exactly as the POST would.
   */
  private rangeFromQuery(query: string, req: IncomingMessage, res: ServerResponse): void {
    drain(req);
    let request: RangeRequest;
    try {
      request = rangeRequestFromQuery(new URLSearchParams(query));
    } catch (err) {
      this.fail(new NodeReply(res), err);
      return;
    }
    this.serve(routes.get('/v3/kv/range')!, request, new NodeReply(res));
  }
}

function drain(req: IncomingMessage): void {
  if (!req.complete) req.resume();
}

const BOOLEAN_PARAMS = ['serializable', 'keys_only', 'count_only'] as const;
const INTEGER_PARAMS = ['limit', 'revision', 'min_mod_revision', 'max_mod_revision', 'min_create_revision', 'max_create_revision'] as const;

export function rangeRequestFromQuery(params: URLSearchParams): RangeRequest {
  const request: RangeRequest = {};
  const key = params.get('key');
  if (key !== null) request.key = Buffer.from(key, 'utf8');
  const rangeEnd = params.get('range_end');
  if (rangeEnd !== null) request.range_end = Buffer.from(rangeEnd, 'utf8');
  const prefix = params.get('prefix');
  if (prefix !== null) {
    if (prefix !== 'true' && prefix !== 'false') throw new GatewayDecodeError(`invalid value for prefix: ${JSON.stringify(prefix)}`);
    if (prefix === 'true') request.range_end = prefixEnd(request.key ?? Buffer.alloc(0));
  }
  for (const name of INTEGER_PARAMS) {
    const text = params.get(name);
    if (text === null) continue;
    if (!/^(0|[1-9][0-9]{0,15})$/.test(text)) throw new GatewayDecodeError(`invalid value for ${name}: ${JSON.stringify(text)}`);
    request[name] = Number(text);
  }
  for (const name of BOOLEAN_PARAMS) {
    const text = params.get(name);
    if (text === null) continue;
    if (text !== 'true' && text !== 'false') throw new GatewayDecodeError(`invalid value for ${name}: ${JSON.stringify(text)}`);
    request[name] = text === 'true';
  }
  return request;
}

/**
 * The end of the range holding every key that starts with `key` (etcd's GetPrefixRangeEnd): the
 * key with its last byte below 0xff incremented and what follows dropped; "\0" (to the end of
 * the keyspace) when every byte is 0xff or the key is empty.
 * Example: "plain/" -> "plain0"; "a\xff" -> "b".
 */
export function prefixEnd(key: Buffer): Buffer {
  for (let i = key.length - 1; i >= 0; i--) {
    if (key[i]! < 0xff) {
      const end = Buffer.from(key.subarray(0, i + 1));
      end[i] = end[i]! + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}
