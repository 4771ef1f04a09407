/**
 * gRPC for unary methods on our own HTTP/2 connections (http2-connection.ts): the framing of the
 * gRPC HTTP/2 protocol (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md) and nothing
 * more, with our protobufjs codecs. History, measured on this 2-core machine: @grpc/grpc-js's
 * server spent 104-116 µs of CPU per Put over an in-memory member, the same calls on node:http2
 * 53-67 µs, still above etcd's whole budget of about 70 µs per gRPC put; hence our own HTTP/2.
 *
 * Per call: request HEADERS (POST, content-type application/grpc*) -> DATA holding one
 * length-prefixed message (1 byte compressed flag, 4 bytes big-endian length, payload) -> we
 * answer HEADERS (:status 200), one DATA message, and trailers {grpc-status, grpc-message}.
 * A failure before any reply is "trailers-only": one HEADERS frame carrying the status, ending the
 * stream. Unknown paths (and every streaming method, since none is registered) get UNIMPLEMENTED
 * as soon as their headers arrive, so streaming clients never wait. Messages over the receive
 * limit get RESOURCE_EXHAUSTED with grpc-go's text, as etcd sends; compressed messages get
 * UNIMPLEMENTED as grpc-go answers when it has no decompressor (clients do not compress by
 * default, and we advertise identity only).
 *
 * Deadlines: the client enforces its own (grpc-timeout) and cancels with RST_STREAM; a reply for
 * a stream that is gone is dropped.
 */
import type { Socket } from 'node:net';
import { GrpcCode } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import type { ApiMetrics } from './api-metrics.js';
import { toApiFailure } from './error-mapping.js';
import { encodeWithoutIndexing, type HeaderField } from './hpack.js';
import { Http2Connection, type Http2StreamHandler, type Http2ServerStream, type RequestHeaders } from './http2-connection.js';

/** One unary method: how to read its request, run it and write its response. */
export interface UnaryMethod<Req = any, Res = any> {
  service: string;
  method: string;
  decode(bytes: Buffer): Req;
  encode(response: Res): Uint8Array;
  /** `requestBytes`: the wire size of the request message. May throw or reject with a failure. */
  handle(request: Req, requestBytes: number): Promise<Res>;
}

const MESSAGE_HEADER_BYTES = 5;
/** Header blocks of every successful call, HPACK-encoded once. */
const RESPONSE_HEADERS = encodeWithoutIndexing([[':status', '200'], ['content-type', 'application/grpc'], ['grpc-accept-encoding', 'identity']]);
const OK_TRAILERS = encodeWithoutIndexing([['grpc-status', '0']]);

/** grpc-message is percent-encoded: bytes outside printable ASCII, and '%' itself. */
export function percentEncodeGrpcMessage(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

export class GrpcServer {
  private readonly methods = new Map<string, UnaryMethod>();
  private readonly services = new Set<string>();
  private readonly connections = new Set<Http2Connection>();

  constructor(
    private readonly maxReceiveBytes: number,
    private readonly logger: Logger,
    private readonly metrics: ApiMetrics,
  ) {}

  /** Registers a unary method at /<service>/<method>. */
  addMethod(m: UnaryMethod): void {
    this.methods.set(`/${m.service}/${m.method}`, m);
    this.services.add(m.service);
  }

  /**
   * Serves a connection accepted elsewhere (the client port's classifier), given the bytes it
   * already read from it (at least the start of the HTTP/2 preface). The socket is paused.
   */
  injectConnection(socket: Socket, head: Buffer): void {
    const connection = new Http2Connection(socket, { onStream: (stream, headers) => this.onStream(stream, headers) }, this.logger);
    this.connections.add(connection);
    socket.once('close', () => this.connections.delete(connection));
    connection.receive(head);
    socket.resume();
  }

  /** Ends every connection at once (the client port is closing). */
  close(): void {
    for (const connection of this.connections) connection.destroy();
    this.connections.clear();
  }

  private onStream(stream: Http2ServerStream, headers: RequestHeaders): void {
    const path = headers.get(':path') ?? '';
    const contentType = headers.get('content-type') ?? '';
    if (headers.get(':method') !== 'POST' || !contentType.startsWith('application/grpc')) {
      // Not a gRPC request: answer as grpc-go does, with a plain HTTP error.
      stream.respond(encodeWithoutIndexing([[':status', contentType.startsWith('application/grpc') ? '405' : '415']]), true);
      return;
    }
    const method = this.methods.get(path);
    if (method === undefined) {
      this.trailersOnly(stream, GrpcCode.UNIMPLEMENTED, this.unimplementedMessage(path));
      return;
    }
    // A request that ended with its headers carried no message: the stream's onEnd answers it.
    stream.handler = new UnaryCall(this, stream, method, headers.get('grpc-encoding') ?? 'identity');
  }

  private unimplementedMessage(path: string): string {
    const slash = path.lastIndexOf('/');
    const service = path.slice(1, slash);
    const name = path.slice(slash + 1);
    return this.services.has(service) ? `unknown method ${name} for service ${service}` : `unknown service ${service}`;
  }

  /** A status with no response message: one HEADERS frame that ends the stream. */
  trailersOnly(stream: Http2ServerStream, code: number, message: string): void {
    if (stream.localEnded) return;
    const fields: HeaderField[] = [
      [':status', '200'],
      ['content-type', 'application/grpc'],
      ['grpc-status', String(code)],
      ['grpc-message', percentEncodeGrpcMessage(message)],
    ];
    stream.respond(encodeWithoutIndexing(fields), true);
  }

  get receiveLimitBytes(): number {
    return this.maxReceiveBytes;
  }

  get log(): Logger {
    return this.logger;
  }

  get counters(): ApiMetrics {
    return this.metrics;
  }
}

/** One unary call: collects the request message, runs the method, writes the reply. */
class UnaryCall implements Http2StreamHandler {
  private first: Buffer | undefined;
  private rest: Buffer[] | undefined;
  private received = 0;
  private done = false;

  constructor(
    private readonly server: GrpcServer,
    private readonly stream: Http2ServerStream,
    private readonly method: UnaryMethod,
    private readonly encoding: string,
  ) {}

  onData(chunk: Buffer): void {
    if (this.done) return;
    if (this.first === undefined) this.first = chunk;
    else (this.rest ??= [this.first]).push(chunk);
    this.received += chunk.length;
    // Refuse an oversized message from its length prefix, before buffering it.
    if (this.received >= MESSAGE_HEADER_BYTES) {
      const head = this.rest === undefined ? this.first : Buffer.concat(this.rest, MESSAGE_HEADER_BYTES);
      const length = head.readUInt32BE(1);
      if (length > this.server.receiveLimitBytes) {
        // The status ends our side; the stream layer then resets the client's (NO_ERROR).
        this.finish(GrpcCode.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${length} vs. ${this.server.receiveLimitBytes})`);
      }
    }
  }

  onAbort(): void {
    // Reset by the client or the connection went away: a reply that comes later is dropped.
    this.done = true;
  }

  onEnd(): void {
    if (this.done) return;
    const body = this.rest !== undefined ? Buffer.concat(this.rest) : this.first;
    if (body === undefined || body.length < MESSAGE_HEADER_BYTES) {
      this.finish(GrpcCode.INTERNAL, 'grpc: unary request carried no message');
      return;
    }
    const compressed = body[0] !== 0;
    const length = body.readUInt32BE(1);
    if (compressed) {
      this.finish(GrpcCode.UNIMPLEMENTED, `grpc: Decompressor is not installed for grpc-encoding "${this.encoding}"`);
      return;
    }
    if (body.length !== MESSAGE_HEADER_BYTES + length) {
      this.finish(GrpcCode.INTERNAL, 'grpc: unary request must carry exactly one message');
      return;
    }
    const m = this.method;
    let request: unknown;
    try {
      request = m.decode(body.subarray(MESSAGE_HEADER_BYTES));
    } catch (err) {
      this.finish(GrpcCode.INTERNAL, `grpc: error unmarshalling request: ${(err as Error).message}`);
      return;
    }
    this.server.counters.start(m.service, m.method);
    let pending: Promise<unknown>;
    try {
      pending = m.handle(request, length);
    } catch (err) {
      this.fail(err);
      return;
    }
    pending.then((response) => this.reply(response), (err: unknown) => this.fail(err));
  }

  private reply(response: unknown): void {
    const m = this.method;
    this.server.counters.handle(m.service, m.method, GrpcCode.OK);
    if (this.done || this.stream.closed) return;
    this.done = true;
    let payload: Uint8Array;
    try {
      payload = m.encode(response);
    } catch (err) {
      this.server.log.error({ err, method: `${m.service}/${m.method}` }, 'encoding a gRPC response failed');
      this.server.trailersOnly(this.stream, GrpcCode.INTERNAL, 'grpc: error while marshaling');
      return;
    }
    const frame = Buffer.allocUnsafe(MESSAGE_HEADER_BYTES + payload.length);
    frame[0] = 0;
    frame.writeUInt32BE(payload.length, 1);
    frame.set(payload, MESSAGE_HEADER_BYTES);
    this.stream.respond(RESPONSE_HEADERS, false);
    this.stream.write(frame);
    this.stream.end(OK_TRAILERS);
  }

  private fail(err: unknown): void {
    const m = this.method;
    const failure = toApiFailure(err, this.server.log, `${m.service}/${m.method}`);
    this.server.counters.handle(m.service, m.method, failure.grpcCode);
    this.finish(failure.grpcCode, failure.message);
  }

  private finish(code: number, message: string): void {
    if (this.done) return;
    this.done = true;
    this.server.trailersOnly(this.stream, code, message);
  }
}
