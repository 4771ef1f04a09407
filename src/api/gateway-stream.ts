/**
 * The JSON gateway's form of a streaming RPC, as etcd 3.4's grpc-gateway serves it (checked with
 * curl against etcd 3.4.23's /v3/watch and /v3/lease/keepalive):
 *
 * - The request body is a sequence of JSON request objects arriving over time (a chunked or long
 *   body; white space between them, or none): each one is handed to the same StreamHandler as a
 *   gRPC message would be (json-sequence.ts splits them, gateway-json.ts parses each). A
 *   server-stream method reads one request from the body. The body's end is the client's
 *   half-close.
 * - The reply is 200 with Transfer-Encoding chunked, and each response one line:
 *   `{"result":{...}}\n` (the method's JSON encoder inside). An error ends the reply with
 *   `{"error":{"grpc_code":N,"http_code":H,"message":"...","http_status":"..."}}` (grpc-gateway's
 *   StreamError, no delimiter after it); an error before any response also sets the HTTP status.
 * - The first request failing to parse is grpc-gateway's plain error (HTTP 500 and
 *   {"error","message","code"}, as etcd answers `{bad` on /v3/watch); a later one ends the request
 *   side (grpc-gateway logs it and half-closes), the reply goes on until the call ends.
 * - The reply stays open until the call ends or the client goes away; a client that goes away
 *   cancels the call (onCancel).
 *
 * Bounds as on gRPC: each request value at most the gateway's body limit; queued reply bytes per
 * call: `send` says false at Limits.grpcStreamReplyBytesHighWater, onDrain once the socket has
 * drained, and a producer that ignores it is cut off at Limits.grpcStreamReplyBytesQueuedMax (the
 * connection is destroyed: an HTTP/1.1 reply cannot be ended early any other way).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type protobuf from 'protobufjs';
import { GrpcCode } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import type { Logger } from '../platform/logger.js';
import { decode } from '../proto/codec.js';
import type { ServerStreamCall, StreamHandler } from '../grpc/grpc-method.js';
import type { ApiMetrics } from './api-metrics.js';
import { toApiFailure, httpStatusOfFailure } from './error-mapping.js';
import { errorJson, parseBody } from './gateway-json.js';
import { corsHeaders } from './http-reply.js';
import { JsonSequenceReader } from './json-sequence.js';

/** What a streaming gateway path needs of its route. */
export interface StreamRoute {
  service: string;
  method: string;
  kind: 'server-stream' | 'bidi';
  requestType: protobuf.Type;
  responseType: protobuf.Type;
  open: (call: ServerStreamCall<any>) => StreamHandler<any>;
  json: (response: any) => string;
}

/** Go's http.StatusText for the statuses a gRPC code maps to. */
const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 408: 'Request Timeout',
  409: 'Conflict', 412: 'Precondition Failed', 429: 'Too Many Requests', 499: '', 500: 'Internal Server Error', 501: 'Not Implemented',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/** grpc-gateway's StreamError line (jsonpb, OrigName, zero fields omitted as etcd's marshaler does). */
export function streamErrorJson(grpcCode: number, httpCode: number, message: string): string {
  const parts: string[] = [];
  if (grpcCode !== 0) parts.push(`"grpc_code":${grpcCode}`);
  if (httpCode !== 0) parts.push(`"http_code":${httpCode}`);
  if (message !== '') parts.push(`"message":${JSON.stringify(message)}`);
  const statusText = STATUS_TEXT[httpCode] ?? '';
  if (statusText !== '') parts.push(`"http_status":${JSON.stringify(statusText)}`);
  return `{"error":{${parts.join(',')}}}`;
}

/** Request metadata as grpc-gateway forwards it: Grpc-Metadata-* headers (prefix removed) and Authorization. */
function metadataOf(req: IncomingMessage): Map<string, string> {
  const metadata = new Map<string, string>();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value[0] ?? '' : value;
    if (name.startsWith('grpc-metadata-')) metadata.set(name.slice('grpc-metadata-'.length), text);
    else if (name === 'authorization') metadata.set(name, text);
  }
  return metadata;
}

export class GatewayStreamCall<Res = unknown> implements ServerStreamCall<Res> {
  readonly metadata: ReadonlyMap<string, string>;
  private done = false;
  private cancelledByClient = false;
  private headersWritten = false;
  private handler: StreamHandler<unknown> | undefined;
  private readonly reader: JsonSequenceReader;
  private requestsSeen = 0;
  /** The request side is over (body ended, or a later request failed to parse). */
  private requestEnded = false;
  private cancelListeners: Array<() => void> = [];
  private drainListeners: Array<() => void> = [];
  private wantsDrain = false;

  constructor(
    private readonly route: StreamRoute,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    valueBytesMax: number,
    private readonly txnDepthMax: number,
    private readonly logger: Logger,
    private readonly metrics: ApiMetrics,
  ) {
    this.metadata = metadataOf(req);
    this.reader = new JsonSequenceReader(valueBytesMax);
  }

  /** Opens the handler and starts reading the body. */
  start(): void {
    const grpcType = this.grpcType;
    this.metrics.start(this.route.service, this.route.method, grpcType);
    this.res.on('close', () => {
      if (!this.done) this.cancel();
    });
    this.res.on('drain', () => this.checkDrain());
    try {
      this.handler = this.route.open(this);
    } catch (err) {
      this.end(err);
      return;
    }
    this.req.on('data', (chunk: Buffer) => this.onBody(chunk));
    this.req.on('end', () => this.onBodyEnd());
  }

  private get grpcType(): string {
    return this.route.kind === 'bidi' ? 'bidi_stream' : 'server_stream';
  }

  get cancelled(): boolean {
    return this.cancelledByClient;
  }

  get ended(): boolean {
    return this.done;
  }

  // ---- requests -----------------------------------------------------------------------------------

  private onBody(chunk: Buffer): void {
    if (this.done || this.requestEnded) return;
    let values: Buffer[];
    try {
      values = this.reader.push(chunk);
    } catch (err) {
      this.requestFailed(err);
      return;
    }
    for (const value of values) {
      if (this.done || this.requestEnded) return;
      this.deliver(value);
    }
  }

  private onBodyEnd(): void {
    if (this.done || this.requestEnded) return;
    let values: Buffer[];
    try {
      values = this.reader.end();
    } catch (err) {
      this.requestFailed(err);
      return;
    }
    for (const value of values) {
      if (this.done || this.requestEnded) return;
      this.deliver(value);
    }
    if (this.done || this.requestEnded) return;
    this.halfClose();
  }

  private deliver(value: Buffer): void {
    if (this.route.kind === 'server-stream' && this.requestsSeen === 1) return; // one request only
    let request: unknown;
    try {
      request = parseBody(this.route.requestType, value, this.txnDepthMax);
    } catch (err) {
      this.requestFailed(err);
      return;
    }
    this.requestsSeen++;
    try {
      this.handler!.onMessage(request, value.length);
    } catch (err) {
      this.end(err);
    }
  }

  /**
   * A request did not parse. The first: grpc-gateway answers its plain error (the call never
   * really started). A later one: the request side ends (grpc-gateway half-closes the gRPC stream).
   */
  private requestFailed(err: unknown): void {
    if (this.requestsSeen === 0 && !this.headersWritten) {
      const failure = toApiFailure(err, this.logger, 'gateway');
      // grpc-gateway's decode errors are not gRPC statuses: code Unknown, HTTP 500.
      const code = failure.grpcCode === GrpcCode.INVALID_ARGUMENT ? GrpcCode.UNKNOWN : failure.grpcCode;
      this.finishWith(code);
      const body = errorJson(failure.message, code);
      this.res.writeHead(httpStatusOfFailure({ grpcCode: code, message: failure.message }), [...corsHeaders, 'Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(body))]);
      this.res.end(body);
      this.req.resume();
      return;
    }
    this.halfClose();
  }

  private halfClose(): void {
    this.requestEnded = true;
    this.req.resume(); // whatever else arrives is read and dropped
    if (this.route.kind === 'server-stream' && this.requestsSeen === 0) {
      // As over gRPC: the handler's one request never came (grpc-go's io.EOF status).
      this.end(new GatewayStreamEof());
      return;
    }
    try {
      this.handler?.onHalfClose?.();
    } catch (err) {
      this.end(err);
    }
  }

  // ---- responses ----------------------------------------------------------------------------------

  send(response: Res): boolean {
    if (this.done) return false;
    let json: string;
    try {
      json = this.route.json(response);
    } catch (err) {
      this.end(err);
      return false;
    }
    return this.writeLine(`{"result":${json}}\n`);
  }

  sendEncoded(message: Uint8Array): boolean {
    if (this.done) return false;
    let response: unknown;
    try {
      response = decode(this.route.responseType, message);
    } catch (err) {
      this.end(err);
      return false;
    }
    return this.send(response as Res);
  }

  private writeHead(status: number): void {
    this.headersWritten = true;
    this.res.writeHead(status, [
      ...corsHeaders,
      'Content-Type', 'application/json',
      'Grpc-Metadata-Content-Type', 'application/grpc',
      'Transfer-Encoding', 'chunked',
    ]);
  }

  private writeLine(line: string): boolean {
    if (!this.headersWritten) this.writeHead(200);
    if (this.res.writableLength >= Limits.grpcStreamReplyBytesQueuedMax) {
      // The producer went on long after `send` said false: cut the client off (a cancel to the handler).
      this.cancel();
      this.res.destroy();
      return false;
    }
    this.res.write(line);
    if (this.res.writableLength < Limits.grpcStreamReplyBytesHighWater) return true;
    this.wantsDrain = true;
    return false;
  }

  private checkDrain(): void {
    if (this.done || !this.wantsDrain || this.res.writableLength > Limits.grpcStreamReplyBytesLowWater) return;
    this.wantsDrain = false;
    for (const listener of this.drainListeners) {
      if (this.done || this.wantsDrain) break;
      try {
        listener();
      } catch (err) {
        this.end(err);
      }
    }
  }

  onDrain(listener: () => void): void {
    this.drainListeners.push(listener);
  }

  onCancel(listener: () => void): void {
    this.cancelListeners.push(listener);
  }

  end(error?: unknown): void {
    if (this.done) return;
    if (error === undefined) {
      this.finishWith(GrpcCode.OK);
      if (!this.headersWritten) this.writeHead(200);
      this.res.end();
      return;
    }
    const failure = error instanceof GatewayStreamEof
      ? { grpcCode: GrpcCode.UNKNOWN, message: 'EOF' }
      : toApiFailure(error, this.logger, `${this.route.service}/${this.route.method}`);
    this.finishWith(failure.grpcCode);
    const httpCode = httpStatusOfFailure(failure);
    if (!this.headersWritten) this.writeHead(httpCode);
    this.res.end(streamErrorJson(failure.grpcCode, httpCode, failure.message));
  }

  private finishWith(code: number): void {
    this.done = true;
    this.drainListeners = [];
    this.cancelListeners = [];
    this.metrics.handle(this.route.service, this.route.method, code, this.grpcType);
  }

  private cancel(): void {
    if (this.done) return;
    this.done = true;
    this.cancelledByClient = true;
    this.metrics.handle(this.route.service, this.route.method, GrpcCode.CANCELLED, this.grpcType);
    const listeners = this.cancelListeners;
    this.cancelListeners = [];
    this.drainListeners = [];
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        this.logger.error({ err, method: `${this.route.service}/${this.route.method}` }, 'a stream cancel listener threw');
      }
    }
  }
}

/** A server-stream call whose body held no request (grpc-go answers io.EOF's text). */
class GatewayStreamEof extends Error {}
