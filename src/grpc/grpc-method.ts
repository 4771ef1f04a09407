/**
 * What a gRPC method is to the call layer (grpc-server.ts): its name, its codecs, and either a
 * unary handler (one request, one promised response) or a streaming one (a handler object per
 * call, fed request messages as they arrive, writing responses through a ServerStreamCall).
 * The API layer builds these from its method table (api/methods.ts); nothing here knows etcd.
 *
 * Streaming shapes follow grpc-go: 'server-stream' takes exactly one request message and the call
 * stays open until the handler ends it (Maintenance.Snapshot); 'bidi' takes any number of request
 * messages, and the call stays open after the client half-closes until the handler ends it (etcd's
 * Watch ends its stream when the client closes its side; LeaseKeepAlive the same).
 */

import type { PieceWriter } from '../http/http2-connection.js';

export type StreamingKind = 'unary' | 'server-stream' | 'bidi';

/** One open streaming call as its handler sees it. */
export interface ServerStreamCall<Res> {
  /**
   * Queue one response message (encoded with the method's encoder). Returns false once the call's
   * queued output is at/over its high-water mark: stop producing until onDrain fires.
   */
  send(response: Res): boolean;
  /**
   * Queue one response message already encoded as protobuf bytes (no gRPC 5-byte prefix); for
   * producers that encode once and share bytes. Same return as send.
   */
  sendEncoded(message: Uint8Array): boolean;
  /**
   * Queue several messages already framed with their gRPC 5-byte prefixes, back to back, written
   * as they are (one write for many). Optional: a call that is not gRPC on the wire (the gateway's)
   * lacks it. Same return as send.
   */
  sendFramed?(framed: Buffer, messages: number): boolean;
  /**
   * Several messages that `writer` frames itself (prefixes included, `bytes` in all, none over
   * `largestMessageBytes`), written into the connection's output without a buffer of their own
   * when the stream can send them now (StreamCall.sendPieces). Optional, as sendFramed.
   */
  sendPieces?(bytes: number, messages: number, largestMessageBytes: number, writer: PieceWriter): boolean;
  /** Called when queued output has drained below the low-water mark after send returned false. */
  onDrain(listener: () => void): void;
  /**
   * Ends the call: OK trailers, or the error mapped through the error table (KeyraftError ->
   * etcd's gRPC code and message). Idempotent.
   */
  end(error?: unknown): void;
  /** Called once if the client resets the stream, the connection closes, or the deadline passes; no more sends after it. */
  onCancel(listener: () => void): void;
  readonly cancelled: boolean;
  /** The call is over (ended by its handler, by a failure such as an output bound, or cancelled): sends are dropped. */
  readonly ended: boolean;
  /** Request metadata (lower-cased header names). */
  readonly metadata: ReadonlyMap<string, string>;
  /**
   * The client connection the call came on, an opaque key for bounds per connection (watch
   * streams). Absent where a connection carries one call at a time (the gateway's HTTP/1.1).
   */
  readonly connection?: object;
}

/** What a streaming method's handler returns for each call it opens. */
export interface StreamHandler<Req> {
  /** One request message of the stream (for server-stream: exactly one). */
  onMessage(request: Req, requestBytes: number): void;
  /** The client ended its side (END_STREAM). */
  onHalfClose?(): void;
}

/**
 * What the call layer counts (the API's metrics implement it): a call started, a call answered
 * with a gRPC code. Called on every call: must be cheap.
 */
export interface CallMetrics {
  /** `grpcType`: go-grpc-prometheus's label (grpcTypeLabel); 'unary' when absent. */
  start(service: string, method: string, grpcType?: string): void;
  handle(service: string, method: string, code: number, grpcType?: string): void;
}

/** A failure as a client sees it: gRPC code and message. */
export interface CallFailure {
  grpcCode: number;
  message: string;
}

/**
 * Turns what a handler threw or rejected with into its status (the API's error table); `context`
 * names the method, for a log line when the failure is a bug.
 */
export type FailureMapper = (err: unknown, context: string) => CallFailure;

interface MethodName {
  /** Full service name, e.g. etcdserverpb.KV. */
  service: string;
  method: string;
}

/** One unary method: how to read its request, run it and write its response. */
export interface UnaryMethod<Req = any, Res = any> extends MethodName {
  kind?: 'unary';
  decode(bytes: Buffer): Req;
  encode(response: Res): Uint8Array;
  /**
   * `requestBytes`: the wire size of the request message. May throw or reject with a failure.
   * `signal` (only when `wantsSignal`): aborts when the call ends before the handler settles
   * (client reset, connection gone, deadline), for handlers that block (Lock) and must clean up.
   */
  handle(request: Req, requestBytes: number, signal?: AbortSignal): Promise<Res>;
  /** Give the handler an AbortSignal; off for the rest, so the hot path makes no controller per call. */
  wantsSignal?: boolean;
}

/** One streaming method: a handler object per call. */
export interface StreamingMethod<Req = any, Res = any> extends MethodName {
  kind: 'server-stream' | 'bidi';
  decode(bytes: Buffer): Req;
  encode(response: Res): Uint8Array;
  /** Opens one call. May throw: the call ends with that failure before any message is read. */
  open(call: ServerStreamCall<Res>): StreamHandler<Req>;
}

export type GrpcMethod = UnaryMethod | StreamingMethod;

/** go-grpc-prometheus's grpc_type label for a kind. */
export function grpcTypeLabel(kind: StreamingKind): string {
  return kind === 'unary' ? 'unary' : kind === 'server-stream' ? 'server_stream' : 'bidi_stream';
}
