/**
 * One streaming gRPC call (server-streaming or bidirectional) on one HTTP/2 stream, with the
 * protections of a unary call (grpc-server.ts):
 *
 * - Work: opening the handler, and each request message (decode, then the handler's onMessage),
 *   is a task on the connection's lane of the WorkScheduler, so a stream of messages takes turns
 *   with other connections and waits while the connection's client does not read its replies.
 * - Receive: each length-prefixed message is refused past the receive limit as soon as its prefix
 *   shows it (grpc-go's RESOURCE_EXHAUSTED text); a message's bytes stay held (the HTTP/2 stream and
 *   connection windows, and the member's request budget) until its task has run, then are released
 *   (Http2ServerStream.release): a client can make us hold at most one stream window of
 *   unprocessed messages per stream, whatever the stream's lifetime.
 * - Send: `send` queues on the stream; DATA goes out as the client's stream and connection windows
 *   allow (http2-connection.ts). The call's queued bytes are bounded: at
 *   Limits.grpcStreamReplyBytesHighWater (or the connection's or member's reply bounds) `send`
 *   returns false, and onDrain fires once they are back under Limits.grpcStreamReplyBytesLowWater.
 *   A producer that ignores false is stopped at Limits.grpcStreamReplyBytesQueuedMax: the stream
 *   is reset (ENHANCE_YOUR_CALM, RESOURCE_EXHAUSTED to the client), never unbounded buffering.
 * - Deadline (grpc-timeout), RST_STREAM from the client and the connection closing cancel the
 *   call: onCancel fires once, later sends are dropped. A deadline also answers
 *   DEADLINE_EXCEEDED.
 *
 * Ends as grpc-go ends a call: response headers are sent with the first message; `end()` sends
 * trailers (or a trailers-only reply when no message went out). A bidi call stays open after the
 * client's half-close until the handler ends it; ending while the client still sends resets its
 * side with NO_ERROR after the trailers (the stream layer does it).
 */
import { assert } from '../platform/assert.js';
import { GrpcCode } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import type { Logger } from '../platform/logger.js';
import { Http2ErrorCode, type Http2ServerStream, type Http2StreamHandler, type PieceOutput, type PieceWriter, type RequestHeaders } from '../http/http2-connection.js';
import { grpcTypeLabel, type CallMetrics, type FailureMapper, type ServerStreamCall, type StreamHandler, type StreamingMethod } from './grpc-method.js';
import { GrpcMessageReader, MESSAGE_HEADER_BYTES } from './grpc-message-reader.js';
import { RESPONSE_HEADERS, respondTrailersOnly, statusTrailers } from './grpc-status.js';
import type { WorkLane, WorkScheduler, WorkTask } from './work-scheduler.js';

/** What a streaming call needs of its server and connection (grpc-server.ts provides it). */
export interface StreamCallHost {
  readonly scheduler: WorkScheduler;
  readonly lane: WorkLane;
  /** Reply bytes the call's connection holds that its client has not yet taken. */
  readonly connectionBacklogBytes: number;
  /** Reply bytes queued across the member. */
  readonly memberReplyBytes: number;
  readonly receiveLimitBytes: number;
  readonly counters: CallMetrics;
  readonly failureOf: FailureMapper;
  readonly log: Logger;
  /** Calls `call.checkDrain()` when output may have drained, until it returns true. */
  waitForDrain(call: StreamCall): void;
  /** The call ended: it waits for nothing any more. */
  forget(call: StreamCall): void;
}

/** Messages up to this size are copied behind their prefix; larger ones are written as they are. */
const SMALL_MESSAGE_BYTES = 16 * 1024;

/** A PieceOutput over one buffer of the announced size (sendPieces when the stream cannot take the pieces now). */
class BufferPieceOutput implements PieceOutput {
  at = 0;

  constructor(readonly buffer: Buffer) {}

  reserve(bytes: number): number {
    const at = this.at;
    this.at += bytes;
    if (this.at > this.buffer.length) assert(false, `framed messages past the ${this.buffer.length} bytes announced`);
    return at;
  }
}

const enum ItemKind {
  Open,
  Message,
  HalfClose,
}

interface InboxItem {
  kind: ItemKind;
  payload: Buffer | undefined;
  /** Wire bytes (prefix included) to release once the item has run. */
  wireBytes: number;
}

export class StreamCall<Req = unknown, Res = unknown> implements Http2StreamHandler, WorkTask, ServerStreamCall<Res> {
  private reader: GrpcMessageReader;
  /** Answered, canceled, or past its deadline: queued tasks are skipped, sends dropped. */
  canceled = false;
  private done = false;
  private cancelledByClient = false;
  private headersSent = false;
  private handler: StreamHandler<Req> | undefined;
  private readonly inbox: InboxItem[] = [];
  private inboxHead = 0;
  private messagesReceived = 0;
  private deadline: NodeJS.Timeout | undefined;
  private cancelListeners: Array<() => void> = [];
  private drainListeners: Array<() => void> = [];
  /** `send` said false and onDrain has not fired since. */
  private wantsDrain = false;
  private readonly grpcType: string;

  constructor(
    private readonly host: StreamCallHost,
    private readonly stream: Http2ServerStream,
    private readonly method: StreamingMethod<Req, Res>,
    private readonly encoding: string,
    readonly metadata: RequestHeaders,
    timeoutMs: number | undefined,
    timerMsMax: number,
  ) {
    this.reader = new GrpcMessageReader(host.receiveLimitBytes);
    this.grpcType = grpcTypeLabel(method.kind);
    // The stream layer credits windows back as messages are released, not by `receiveBytesWanted`.
    stream.receiveBytesWanted = 0;
    if (timeoutMs !== undefined && timeoutMs <= timerMsMax) {
      this.deadline = setTimeout(() => this.expire(), timeoutMs);
      this.deadline.unref();
    }
    host.counters.start(method.service, method.method, this.grpcType);
    this.enqueue(ItemKind.Open, undefined, 0);
  }

  get cancelled(): boolean {
    return this.cancelledByClient;
  }

  /** The connection's calls (one host per HTTP/2 connection). */
  get connection(): object {
    return this.host;
  }

  get ended(): boolean {
    return this.done;
  }

  // ---- Http2StreamHandler ----------------------------------------------------------------------

  onData(chunk: Buffer): void {
    if (this.done) return;
    let at = 0;
    for (;;) {
      // A message's handler may end the call inline (the scheduler runs tasks at once when it can).
      if (this.done) return;
      if (this.reader.complete && !this.takeMessage()) return;
      if (at >= chunk.length) return;
      const n = Math.min(this.reader.bytesWanted, chunk.length - at);
      const problem = this.reader.push(at === 0 && n === chunk.length ? chunk : chunk.subarray(at, at + n));
      at += n;
      if (problem !== undefined) {
        // Only 'too-large' can happen: we never push past the declared message.
        const declared = problem.kind === 'too-large' ? problem.declaredBytes : -1;
        this.fail(GrpcCode.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${declared} vs. ${this.host.receiveLimitBytes})`);
        return;
      }
    }
  }

  onEnd(): void {
    if (this.done) return;
    if (this.reader.started) {
      // END_STREAM in the middle of a message.
      this.fail(GrpcCode.INTERNAL, 'grpc: client half-closed the stream in the middle of a message');
      return;
    }
    this.enqueue(ItemKind.HalfClose, undefined, 0);
  }

  onAbort(): void {
    if (this.done) return;
    this.cancel();
    this.host.counters.handle(this.method.service, this.method.method, GrpcCode.CANCELLED, this.grpcType);
  }

  // ---- receiving ---------------------------------------------------------------------------------

  /** A whole message is in the reader: queue it for the handler. False if it ended the call. */
  private takeMessage(): boolean {
    const r = this.reader;
    if (r.compressed) {
      // grpc-go's checkRecvPayload, as for unary calls.
      if (this.encoding === '' || this.encoding === 'identity') this.fail(GrpcCode.INTERNAL, 'grpc: compressed flag set with identity or empty encoding');
      else this.fail(GrpcCode.UNIMPLEMENTED, `grpc: Decompressor is not installed for grpc-encoding "${this.encoding}"`);
      return false;
    }
    const payload = r.message();
    this.reader = new GrpcMessageReader(this.host.receiveLimitBytes);
    this.messagesReceived++;
    if (this.method.kind === 'server-stream' && this.messagesReceived > 1) {
      // grpc-go's server-streaming handler reads one message; later ones are never read.
      this.stream.release(MESSAGE_HEADER_BYTES + payload.length);
      return true;
    }
    this.enqueue(ItemKind.Message, payload, MESSAGE_HEADER_BYTES + payload.length);
    return true;
  }

  private enqueue(kind: ItemKind, payload: Buffer | undefined, wireBytes: number): void {
    this.inbox.push({ kind, payload, wireBytes });
    this.host.scheduler.submit(this.host.lane, this);
  }

  /** WorkTask: the next inbox item, in order (one submit per item). */
  run(): void {
    const item = this.inbox[this.inboxHead];
    assert(item !== undefined, () => `stream call ran with ${this.inbox.length - this.inboxHead} items queued`);
    this.inbox[this.inboxHead++] = undefined as unknown as InboxItem;
    if (this.inboxHead === this.inbox.length) {
      this.inbox.length = 0;
      this.inboxHead = 0;
    }
    if (this.done) return;
    switch (item.kind) {
      case ItemKind.Open:
        this.open();
        return;
      case ItemKind.Message:
        this.deliver(item.payload!, item.wireBytes);
        return;
      case ItemKind.HalfClose:
        this.halfClose();
    }
  }

  private open(): void {
    try {
      this.handler = this.method.open(this);
    } catch (err) {
      this.end(err);
    }
  }

  private deliver(payload: Buffer, wireBytes: number): void {
    const handler = this.handler;
    if (handler === undefined) return; // open failed: the call has ended
    let request: Req;
    try {
      request = this.method.decode(payload);
    } catch (err) {
      this.fail(GrpcCode.INTERNAL, `grpc: error unmarshalling request: ${(err as Error).message}`);
      return;
    }
    // Decoded: the message's bytes may go back to the client as window.
    this.stream.release(wireBytes);
    try {
      handler.onMessage(request, payload.length);
    } catch (err) {
      this.end(err);
    }
  }

  private halfClose(): void {
    const handler = this.handler;
    if (handler === undefined) return;
    if (this.method.kind === 'server-stream' && this.messagesReceived === 0) {
      // grpc-go: the handler's RecvMsg gets io.EOF, which the call returns as its status.
      this.fail(GrpcCode.UNKNOWN, 'EOF');
      return;
    }
    try {
      handler.onHalfClose?.();
    } catch (err) {
      this.end(err);
    }
  }

  // ---- ServerStreamCall ---------------------------------------------------------------------------

  send(response: Res): boolean {
    if (this.done) return false;
    let payload: Uint8Array;
    try {
      payload = this.method.encode(response);
    } catch (err) {
      this.host.log.error({ err, method: `${this.method.service}/${this.method.method}` }, 'encoding a gRPC response failed');
      this.fail(GrpcCode.INTERNAL, 'grpc: error while marshaling');
      return false;
    }
    return this.sendEncoded(payload);
  }

  sendEncoded(message: Uint8Array): boolean {
    if (!this.mayWrite()) return false;
    const stream = this.stream;
    if (message.length <= SMALL_MESSAGE_BYTES) {
      // Prefix and message in one buffer: one DATA frame (a copy of a small message costs less than a frame).
      const framed = Buffer.allocUnsafe(MESSAGE_HEADER_BYTES + message.length);
      framed[0] = 0;
      framed.writeUInt32BE(message.length, 1);
      framed.set(message, MESSAGE_HEADER_BYTES);
      stream.write(framed);
    } else {
      // A large (possibly shared) message is not copied: its prefix goes ahead of it.
      const prefix = Buffer.allocUnsafe(MESSAGE_HEADER_BYTES);
      prefix[0] = 0;
      prefix.writeUInt32BE(message.length, 1);
      stream.write(prefix);
      stream.write(Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength));
    }
    return this.afterWrite();
  }

  /**
   * Queues messages already framed (each its 5-byte prefix and bytes, back to back) as they are:
   * one write for many messages, no copy (watch-stream.ts writes a revision's responses to all of
   * a stream's watchers so). Same return as send.
   */
  sendFramed(framed: Buffer, messages: number): boolean {
    assert(messages > 0 && framed.length >= messages * MESSAGE_HEADER_BYTES, () => `${messages} framed messages in ${framed.length} bytes`);
    if (!this.mayWrite()) return false;
    this.stream.write(framed);
    return this.afterWrite();
  }

  /**
   * Messages that `writer` frames itself (each its 5-byte prefix and bytes; `bytes` in all, none
   * over `largestMessageBytes` with its prefix), written straight into the connection's output
   * when the stream can send them all now (Http2ServerStream.writeDirect: no buffer of their own,
   * no copy), else into one buffer queued as sendFramed queues it. Same return as send.
   */
  sendPieces(bytes: number, messages: number, largestMessageBytes: number, writer: PieceWriter): boolean {
    assert(messages > 0 && bytes >= messages * MESSAGE_HEADER_BYTES, () => `${messages} framed messages in ${bytes} bytes`);
    if (!this.mayWrite()) return false;
    if (!this.stream.writeDirect(bytes, largestMessageBytes, writer)) {
      const out = new BufferPieceOutput(Buffer.allocUnsafe(bytes));
      writer.writePieces(out);
      assert(out.at === bytes, () => `${out.at} bytes of framed messages written, ${bytes} announced`);
      this.stream.write(out.buffer);
    }
    return this.afterWrite();
  }

  /** Before a write: false if the call is over or the write would pass the hard bound (the stream is then reset). */
  private mayWrite(): boolean {
    if (this.done) return false;
    if (this.stream.pendingBytes >= Limits.grpcStreamReplyBytesQueuedMax || this.host.connectionBacklogBytes >= 2 * Limits.grpcReplyBytesQueuedPerConnectionMax) {
      this.overflow();
      return false;
    }
    if (!this.headersSent) {
      this.headersSent = true;
      this.stream.respond(RESPONSE_HEADERS, false);
    }
    return true;
  }

  /** After a write: true under the high-water mark, else false and onDrain fires once it drains. */
  private afterWrite(): boolean {
    if (this.underHighWater()) return true;
    if (!this.wantsDrain) {
      this.wantsDrain = true;
      this.host.waitForDrain(this);
    }
    return false;
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
      this.finish(GrpcCode.OK, '');
      return;
    }
    const failure = this.host.failureOf(error, `${this.method.service}/${this.method.method}`);
    this.finish(failure.grpcCode, failure.message);
  }

  // ---- flow ----------------------------------------------------------------------------------------

  private underHighWater(): boolean {
    return this.stream.pendingBytes < Limits.grpcStreamReplyBytesHighWater
      && this.host.connectionBacklogBytes < Limits.grpcReplyBytesQueuedPerConnectionMax
      && this.host.memberReplyBytes < Limits.grpcReplyBytesQueuedMax;
  }

  /**
   * @internal Output moved: fires onDrain once the call is under its low-water mark (and the
   * connection and member under their bounds). True when the call no longer waits.
   */
  checkDrain(): boolean {
    if (this.done) return true;
    if (this.stream.pendingBytes > Limits.grpcStreamReplyBytesLowWater
      || this.host.connectionBacklogBytes >= Limits.grpcReplyBytesQueuedPerConnectionMax
      || this.host.memberReplyBytes >= Limits.grpcReplyBytesQueuedMax) return false;
    this.wantsDrain = false;
    for (const listener of this.drainListeners) {
      if (this.done || this.wantsDrain) break;
      try {
        listener();
      } catch (err) {
        this.end(err);
      }
    }
    return !this.wantsDrain;
  }

  // ---- ending ----------------------------------------------------------------------------------------

  private expire(): void {
    this.deadline = undefined;
    if (this.done) return;
    this.respondStatus(GrpcCode.DEADLINE_EXCEEDED, 'context deadline exceeded');
    this.host.counters.handle(this.method.service, this.method.method, GrpcCode.DEADLINE_EXCEEDED, this.grpcType);
    this.cancel();
  }

  /**
   * The producer went on after `send` said false, far past the bounds. Trailers would wait behind
   * the output the client is not taking, so the stream is reset at once, dropping that output:
   * RST_STREAM(ENHANCE_YOUR_CALM), which grpc-go and grpc-js clients report as RESOURCE_EXHAUSTED.
   * The handler hears it as a cancel (its resources go).
   */
  private overflow(): void {
    this.host.counters.handle(this.method.service, this.method.method, GrpcCode.RESOURCE_EXHAUSTED, this.grpcType);
    this.cancel();
    this.stream.reset(Http2ErrorCode.ENHANCE_YOUR_CALM);
  }

  /** The stream is gone or past its deadline: no more work or sends; the handler hears it once. */
  private cancel(): void {
    this.done = true;
    this.canceled = true;
    this.cancelledByClient = true;
    this.clearDeadline();
    const listeners = this.cancelListeners;
    this.cancelListeners = [];
    this.drainListeners = [];
    this.host.forget(this);
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        this.host.log.error({ err, method: `${this.method.service}/${this.method.method}` }, 'a stream cancel listener threw');
      }
    }
  }

  /**
   * A failure of ours (the client's input, or encoding) ends the call: the handler may hold
   * resources for it (a watch stream's watchers, counted per connection), so it hears the call is
   * over as it hears a cancel, then the call ends with the status.
   */
  private fail(code: number, message: string): void {
    if (this.done) return;
    const listeners = this.cancelListeners;
    this.finish(code, message);
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        this.host.log.error({ err, method: `${this.method.service}/${this.method.method}` }, 'a stream cancel listener threw');
      }
    }
  }

  /** Ends the call with a status (the handler's end, or a failure of ours through fail). */
  private finish(code: number, message: string): void {
    if (this.done) return;
    this.done = true;
    this.canceled = true;
    this.clearDeadline();
    this.cancelListeners = [];
    this.drainListeners = [];
    this.host.forget(this);
    this.host.counters.handle(this.method.service, this.method.method, code, this.grpcType);
    this.respondStatus(code, message);
  }

  private respondStatus(code: number, message: string): void {
    if (!this.headersSent) respondTrailersOnly(this.stream, code, message);
    else this.stream.end(statusTrailers(code, message));
  }

  private clearDeadline(): void {
    if (this.deadline === undefined) return;
    clearTimeout(this.deadline);
    this.deadline = undefined;
  }
}
