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
import { GatewayDecodeError, errorJson, parseBody } from './gateway-json.js';
import type { HttpEndpoints } from './http-endpoints.js';
import { corsHeaders, sendJson, sendPlainError } from './http-reply.js';
import type { Http1RequestHandler, ReplySink } from '../http/http1-fast-path.js';
import { assert } from '../platform/assert.js';
import { messageType } from '../proto/codec.js';
import { prefixEnd } from '../proto/key-range.js';
import { GatewayStreamCall, type StreamRoute } from './gateway-stream.js';
import type { KvService } from './kv-service.js';
import { protoSizeOf } from './proto-size.js';
import {
  fullServiceName, methodTable, requestTypeOf, responseTypeOf, servedServices, unimplementedError,
  type MethodDeps, type MethodRow, type StreamOpener, type UnaryHandler,
} from './methods.js';


/** A node:http response as a ReplySink. */
class NodeReply implements ReplySink {
  constructor(private readonly res: ServerResponse) {}

  replyJson(status: number, json: string): void {
    sendJson(this.res, status, json);
  }

  /** node:http closes the response early when its connection closes; a finished one does not count. */
  onGone(listener: () => void): void {
    const res = this.res;
    if (res.destroyed && !res.writableEnded) {
      listener();
      return;
    }
    let called = false;
    const gone = (): void => {
      if (called || res.writableEnded) return;
      called = true;
      listener();
    };
    // The client's FIN (its read side ended) while we still owe the answer: gone, as in Go.
    const socket = res.req.socket;
    socket.once('end', gone);
    res.once('close', () => {
      socket.off('end', gone);
      gone();
    });
  }
}

/** A gateway path of a served method, built from its row of the method table. */
export interface Route {
  row: MethodRow;
  /** The request's protobuf type (the JSON body is read against it). */
  type: protobuf.Type;
  /** The gRPC method this path stands for, for metrics. */
  service: string;
  method: string;
  /** A unary row's handler, or a streaming row's opener. */
  handle: UnaryHandler | undefined;
  open: StreamOpener | undefined;
  json: (response: any) => string;
}

/**
 * etcd 3.4 still serves its gateway under the deprecated /v3beta/ prefix as well; /v3alpha/ is gone.
 * Every path answers there too.
 */
function withBetaPaths(paths: readonly string[]): string[] {
  return paths.flatMap((path) => [path, path.replace(/^\/v3\//, '/v3beta/')]);
}

/**
 * etcd's two 404s: grpc-gateway's "Not Found" under its prefixes, Go's ServeMux's
 * "404 page not found" elsewhere.
 */
function notFoundText(path: string): string {
  return path.startsWith('/v3/') || path.startsWith('/v3beta/') ? 'Not Found' : '404 page not found';
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
  /** Paths of served methods, and of known but unserved ones with the UNIMPLEMENTED answer for each. */
  private readonly routes = new Map<string, Route>();
  private readonly unservedRoutes = new Map<string, KeyraftError>();

  constructor(
    private readonly kv: KvService,
    private readonly endpoints: HttpEndpoints,
    private readonly logger: Logger,
    private readonly metrics: ApiMetrics,
    rows: readonly MethodRow[] = methodTable,
    private readonly bodyIdleMs: number = Limits.httpBodyIdleTimeoutMs,
  ) {
    const deps: MethodDeps = { member: kv.member, kv };
    const served = servedServices(rows);
    for (const row of rows) {
      if (row.gatewayPaths.length === 0) continue;
      if (row.serve === undefined || row.jsonEncoder === undefined) {
        const refusal = unimplementedError(row, served);
        for (const path of withBetaPaths(row.gatewayPaths)) this.unservedRoutes.set(path, refusal);
        continue;
      }
      const route: Route = {
        row,
        type: requestTypeOf(row),
        service: fullServiceName(row),
        method: row.method,
        handle: row.kind === 'unary' ? row.serve(deps) : undefined,
        open: row.kind !== 'unary' ? row.serve(deps) : undefined,
        json: row.jsonEncoder,
      };
      for (const path of withBetaPaths(row.gatewayPaths)) this.routes.set(path, route);
    }
    this.bodyBytesMax = Math.ceil((kv.grpcMaxReceiveBytes * 4 * gatewayBodyLimitFactor) / 3) + gatewayJsonSlackBytes;
    // Nesting beyond max-txn-ops + 1 levels is always etcd's "too many operations" (Limits.txnDepthMax).
    this.txnDepthMax = Math.min(kv.member.limits.maxTxnOps + 1, Limits.txnDepthMax);
  }

  /** The node:http 'request' listener. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const route = this.routes.get(path);
    if (route !== undefined) {
      if (req.method === 'POST') {
        if (route.open !== undefined) this.serveStream(route, req, res);
        else this.readBody(route, req, res);
      } else if (req.method === 'GET' && route.service === 'etcdserverpb.KV' && route.method === 'Range') {
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
    const unserved = this.unservedRoutes.get(path);
    if (unserved !== undefined) {
      drain(req);
      if (req.method === 'POST') this.fail(new NodeReply(res), unserved);
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

  /** A streaming method: requests and responses as JSON over one long request and reply (gateway-stream.ts). */
  private serveStream(route: Route, req: IncomingMessage, res: ServerResponse): void {
    const row = route.row;
    assert(row.kind !== 'unary' && route.open !== undefined, () => `${route.service}/${route.method} is not a streaming route`);
    const streamRoute: StreamRoute = {
      service: route.service,
      method: route.method,
      kind: row.kind,
      requestType: route.type,
      responseType: responseTypeOf(row),
      open: route.open,
      json: route.json,
    };
    new GatewayStreamCall(streamRoute, req, res, this.bodyBytesMax, this.txnDepthMax, this.logger, this.metrics).start();
  }

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
    // node:http's requestTimeout is off (streaming bodies last as long as their calls): a body
    // here may not stall longer than the fast path allows (408, then close).
    req.setTimeout(this.bodyIdleMs, () => {
      if (res.headersSent) return;
      res.writeHead(408, ['Connection', 'close', 'Content-Length', '0']);
      res.end();
      res.once('finish', () => req.socket.destroy());
    });
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
      req.setTimeout(0);
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

  /** The route for a POST path answered with one reply to one body (a unary method); undefined otherwise. */
  routeFor(path: string): Route | undefined {
    const route = this.routes.get(path);
    return route?.handle !== undefined ? route : undefined;
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
      reply = route.handle!(request, size, route.row.kind === 'unary' && route.row.wantsSignal === true ? goneSignal(sink) : undefined).then(route.json);
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
    this.serve(this.routes.get('/v3/kv/range')!, request, new NodeReply(res));
  }
}

/** A signal that aborts when the client of `sink` goes away: only for handlers that block (wantsSignal). */
function goneSignal(sink: ReplySink): AbortSignal {
  const abort = new AbortController();
  sink.onGone(() => abort.abort());
  return abort.signal;
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
