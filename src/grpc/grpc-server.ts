/**
 * gRPC calls on our own HTTP/2 connections (http/http2-connection.ts): the framing of the
 * gRPC HTTP/2 protocol (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md) and nothing
 * more, with our protobufjs codecs. History, measured on this 2-core machine: @grpc/grpc-js's
 * server spent 104-116 µs of CPU per Put over an in-memory member, the same calls on node:http2
 * 53-67 µs, still above etcd's whole budget of about 70 µs per gRPC put; hence our own HTTP/2.
 *
 * Per call: request HEADERS (POST, content-type application/grpc*) -> DATA holding one
 * length-prefixed message (1 byte compressed flag, 4 bytes big-endian length, payload) -> we
 * answer HEADERS (:status 200), one DATA message, and trailers {grpc-status, grpc-message}.
 * A failure before any reply is "trailers-only": one HEADERS frame carrying the status, ending the
 * stream. Unknown paths (and streaming methods not registered) get UNIMPLEMENTED as soon as their
 * headers arrive, so streaming clients never wait. Streaming methods (server-stream and bidi) are
 * served by stream-call.ts with the same protections; this file's UnaryCall is the hot path. Messages over the receive
 * limit get RESOURCE_EXHAUSTED with grpc-go's text, as etcd sends, as soon as the length prefix
 * shows it; bytes past the declared message end the call at once (grpc-message-reader.ts). A
 * compressed message gets grpc-go's answers: INTERNAL without a grpc-encoding, UNIMPLEMENTED with
 * one (we have no decompressor; clients do not compress by default, and we advertise identity).
 * Requests are checked as grpc-go's server checks them: content-type application/grpc,
 * application/grpc+<subtype> or application/grpc;<params> (anything else: HTTP 415), :path
 * "/service/method" (else UNIMPLEMENTED "malformed method name"), grpc-timeout well formed (else
 * INTERNAL "malformed grpc-timeout: ...").
 *
 * Deadlines: a grpc-timeout starts a timer; a call still queued or running when it fires is
 * answered DEADLINE_EXCEEDED and its queued work skipped (a handler already running finishes, its
 * reply dropped). A reply for a stream that is gone is dropped.
 *
 * Main-thread work (issue 9): decoding and running calls and encoding replies go through a
 * WorkScheduler (work-scheduler.ts), one lane per connection: a turn of the event loop runs at
 * most Limits.workSliceMs of them before I/O gets its turn, a call whose client reset it or went
 * away never starts, and a connection whose client does not take its replies
 * (Limits.grpcReplyBytesQueuedPerConnectionMax, Limits.grpcReplyBytesQueuedMax for the member)
 * starts no new work until its socket drains. At most Limits.grpcHandlersPerConnectionMax
 * handlers run at once per connection; a reset frees a stream, not its running handler, so calls
 * past that wait for a handler to finish (grpc-go's answer to rapid reset).
 */
import type { Socket } from 'node:net';
import { assert } from '../platform/assert.js';
import { ErrorTable, GrpcCode } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import type { Logger } from '../platform/logger.js';
import { encodeWithoutIndexing } from '../http/hpack.js';
import { OK_TRAILERS, RESPONSE_HEADERS, respondTrailersOnly } from './grpc-status.js';
import { goQuote } from '../platform/go-quote.js';
import { GrpcMessageReader, MESSAGE_HEADER_BYTES } from './grpc-message-reader.js';
import { parseGrpcTimeout } from './grpc-timeout.js';
import {
  DEFAULT_HTTP2_TIMING,
  Http2Connection,
  Http2SharedBudget,
  type Http2ConnectionHandler,
  type Http2ServerStream,
  type Http2StreamHandler,
  type Http2Timing,
  type RequestHeaders,
} from '../http/http2-connection.js';
import type { ConnectionClosures } from '../http/connection-closures.js';
import { HeldOutput } from '../http/held-output.js';
import { WorkScheduler, type WorkLane, type WorkTask } from './work-scheduler.js';
import type { CallMetrics, FailureMapper, GrpcMethod, UnaryMethod } from './grpc-method.js';
import { StreamCall, type StreamCallHost } from './stream-call.js';

export type { CallFailure, CallMetrics, FailureMapper, UnaryMethod } from './grpc-method.js';
export { percentEncodeGrpcMessage } from './grpc-status.js';

/** The longest delay setTimeout takes as given. */
export const TIMER_MS_MAX = 2 ** 31 - 1;

/** grpc-go's grpcutil.ContentSubtype: application/grpc, or it followed by '+' or ';' and more. */
export function isGrpcContentType(contentType: string): boolean {
  if (!contentType.startsWith('application/grpc')) return false;
  if (contentType.length === 16) return true;
  const next = contentType.charCodeAt(16);
  return next === 0x2b || next === 0x3b; // '+' ';'
}

export class GrpcServer {
  private readonly methods = new Map<string, GrpcMethod>();
  private readonly services = new Set<string>();
  private readonly connections = new Set<Http2Connection>();
  readonly scheduler = new WorkScheduler(Limits.workSliceMs);
  readonly budget: Http2SharedBudget;
  /** A lane was held back because the member's queued reply bytes reached their bound. */
  memberOutputFull = false;
  /** Streaming calls whose `send` said false, waiting for their output to drain (any connection's). */
  readonly drainWaiters = new Set<StreamCall<any, any>>();
  private deadlineTimer: NodeJS.Timeout | undefined;
  private readonly timing: Http2Timing;
  /** PING ACKs waiting for a reply to ride with, on every connection (undefined: never held). */
  private readonly held: HeldOutput | undefined;

  constructor(
    private readonly maxReceiveBytes: number,
    private readonly logger: Logger,
    private readonly metrics: CallMetrics,
    readonly failureOf: FailureMapper,
    timing: Partial<Http2Timing> = {},
    requestBytesBufferedMax: number = Limits.http2RequestBytesBufferedMax,
    private readonly closures?: ConnectionClosures,
  ) {
    this.timing = { ...DEFAULT_HTTP2_TIMING, ...timing };
    this.budget = new Http2SharedBudget(requestBytesBufferedMax);
    this.held = this.timing.pingAckHoldMs > 0 ? new HeldOutput(this.timing.pingAckHoldMs) : undefined;
  }

  /**
   * etcd's "require leader" check: a call carrying the metadata `hasleader: true` (Kubernetes'
   * API server sends it) is refused with "etcdserver: no leader" while the member knows none.
   */
  private hasLeader: () => boolean = () => true;

  setLeaderCheck(hasLeader: () => boolean): void {
    this.hasLeader = hasLeader;
  }

  /** Registers a method at /<service>/<method>. */
  addMethod(m: GrpcMethod): void {
    this.methods.set(`/${m.service}/${m.method}`, m);
    this.services.add(m.service);
  }

  /**
   * Serves a connection accepted elsewhere (the client port's classifier), given the bytes it
   * already read from it (at least the start of the HTTP/2 preface). The socket is paused.
   */
  injectConnection(socket: Socket, head: Buffer): void {
    const calls = new ConnectionCalls(this);
    const connection = new Http2Connection(socket, calls, this.logger, this.budget, this.timing, this.closures, this.held);
    calls.attach(connection);
    this.connections.add(connection);
    this.startDeadlineTimer();
    socket.once('close', () => {
      this.connections.delete(connection);
      calls.close();
    });
    connection.receive(head);
    socket.resume();
  }

  /** Ends every connection at once (the client port is closing). */
  close(): void {
    for (const connection of this.connections) connection.destroy();
    this.connections.clear();
    this.held?.flushAll();
    if (this.deadlineTimer !== undefined) clearInterval(this.deadlineTimer);
    this.deadlineTimer = undefined;
  }

  /** One timer for every connection's deadlines (preface, trickled frames, keepalive), not one each. */
  private startDeadlineTimer(): void {
    if (this.deadlineTimer !== undefined) return;
    const t = this.timing;
    const everyMs = Math.max(10, Math.min(1000, t.prefaceTimeoutMs / 4, t.frameTimeoutMs / 4, t.keepaliveTimeoutMs / 4, t.keepaliveIntervalMs / 4, t.writeStallMs / 4));
    this.deadlineTimer = setInterval(() => {
      const now = Date.now();
      for (const connection of this.connections) connection.checkDeadlines(now);
    }, everyMs);
    this.deadlineTimer.unref();
  }

  /** @internal A new stream: checked as grpc-go checks it, then a UnaryCall or an immediate answer. */
  route(calls: ConnectionCalls, stream: Http2ServerStream, headers: RequestHeaders): void {
    const path = headers.get(':path') ?? '';
    const contentType = headers.get('content-type') ?? '';
    if (headers.get(':method') !== 'POST' || !isGrpcContentType(contentType)) {
      // Not a gRPC request: answer as grpc-go does, with a plain HTTP error.
      stream.respond(encodeWithoutIndexing([[':status', isGrpcContentType(contentType) ? '405' : '415']]), true);
      return;
    }
    const timeout = headers.get('grpc-timeout');
    let timeoutMs: number | undefined;
    if (timeout !== undefined) {
      const parsed = parseGrpcTimeout(timeout);
      if ('error' in parsed) {
        this.trailersOnly(stream, GrpcCode.INTERNAL, `malformed grpc-timeout: ${parsed.error}`);
        return;
      }
      timeoutMs = parsed.ms;
    }
    const method = this.methods.get(path);
    if (method === undefined) {
      this.trailersOnly(stream, GrpcCode.UNIMPLEMENTED, this.unimplementedMessage(path));
      return;
    }
    if (headers.get('hasleader') === 'true' && !this.hasLeader()) {
      this.trailersOnly(stream, ErrorTable.NoLeader.grpc, ErrorTable.NoLeader.message);
      return;
    }
    if (method.kind === 'server-stream' || method.kind === 'bidi') {
      stream.handler = new StreamCall(calls, stream, method, headers.get('grpc-encoding') ?? '', headers, timeoutMs, TIMER_MS_MAX);
      return;
    }
    // A request that ended with its headers carried no message: the stream's onEnd answers it.
    stream.handler = new UnaryCall(this, calls, stream, method as UnaryMethod, headers.get('grpc-encoding') ?? '', timeoutMs);
  }

  private unimplementedMessage(path: string): string {
    // grpc-go: the path must be "/service/method"; the service is what lies between the slashes.
    const slash = path.lastIndexOf('/');
    if (path.charCodeAt(0) !== 0x2f || slash <= 0) return `malformed method name: ${goQuote(path)}`;
    const service = path.slice(1, slash);
    const name = path.slice(slash + 1);
    return this.services.has(service) ? `unknown method ${name} for service ${service}` : `unknown service ${service}`;
  }

  /** A status with no response message: one HEADERS frame that ends the stream. */
  trailersOnly(stream: Http2ServerStream, code: number, message: string): void {
    respondTrailersOnly(stream, code, message);
  }

  get receiveLimitBytes(): number {
    return this.maxReceiveBytes;
  }

  get log(): Logger {
    return this.logger;
  }

  get counters(): CallMetrics {
    return this.metrics;
  }
}

/**
 * The calls of one connection: its lane in the scheduler, and the bound on handlers running at
 * once (calls past it wait, in order, for one to finish).
 */
class ConnectionCalls implements Http2ConnectionHandler, StreamCallHost {
  readonly lane: WorkLane;
  private connection: Http2Connection | undefined;
  /** Handlers started whose promise has not settled (their stream may be gone). */
  private running = 0;
  /** Calls ready to start, waiting for a handler slot; `waitingHead` of them already left. */
  private waiting: UnaryCall[] = [];
  private waitingHead = 0;

  constructor(readonly server: GrpcServer) {
    this.lane = server.scheduler.lane(() => this.canRun());
  }

  attach(connection: Http2Connection): void {
    this.connection = connection;
  }

  // StreamCallHost
  get scheduler(): WorkScheduler {
    return this.server.scheduler;
  }

  get connectionBacklogBytes(): number {
    return this.connection?.outputBacklogBytes ?? 0;
  }

  get memberReplyBytes(): number {
    return this.server.budget.replyBytes;
  }

  get receiveLimitBytes(): number {
    return this.server.receiveLimitBytes;
  }

  get counters(): CallMetrics {
    return this.server.counters;
  }

  get failureOf(): FailureMapper {
    return this.server.failureOf;
  }

  get log(): Logger {
    return this.server.log;
  }

  waitForDrain(call: StreamCall<any, any>): void {
    this.server.drainWaiters.add(call);
  }

  forget(call: StreamCall<any, any>): void {
    this.server.drainWaiters.delete(call);
  }

  onStream(stream: Http2ServerStream, headers: RequestHeaders): void {
    this.server.route(this, stream, headers);
  }

  onWritable(): void {
    const server = this.server;
    if (server.drainWaiters.size > 0) {
      // Streams whose producers wait: any connection's output moving may bring them (or the member) under.
      for (const call of server.drainWaiters) if (call.checkDrain()) server.drainWaiters.delete(call);
    }
    if (server.memberOutputFull && server.budget.replyBytes < Limits.grpcReplyBytesQueuedMax) {
      // The member's output had filled up: every lane it held back may go on.
      server.memberOutputFull = false;
      server.scheduler.wake();
    } else if (this.lane.parked && this.canRun()) {
      server.scheduler.wake(this.lane);
    }
  }

  /** New work may start only while this connection's client, and the member's, take their replies. */
  private canRun(): boolean {
    if (this.server.budget.replyBytes >= Limits.grpcReplyBytesQueuedMax) {
      this.server.memberOutputFull = true;
      return false;
    }
    return (this.connection?.outputBacklogBytes ?? 0) < Limits.grpcReplyBytesQueuedPerConnectionMax;
  }

  /** A call whose request is whole: run it when a handler slot and the scheduler allow. */
  ready(call: UnaryCall): void {
    if (this.running < Limits.grpcHandlersPerConnectionMax) this.start(call);
    else this.waiting.push(call);
  }

  private start(call: UnaryCall): void {
    this.running++;
    call.holdsSlot = true;
    this.server.scheduler.submit(this.lane, call);
  }

  /** A started call's handler settled (or it never ran: canceled in the queue, or refused). */
  settled(): void {
    this.running--;
    assert(this.running >= 0, () => `running handlers ${this.running}`);
    while (this.waitingHead < this.waiting.length && this.running < Limits.grpcHandlersPerConnectionMax) {
      const next = this.waiting[this.waitingHead++]!;
      if (next.canceled) continue;
      this.start(next);
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    }
  }

  close(): void {
    this.server.scheduler.close(this.lane);
    this.waiting = [];
    this.waitingHead = 0;
  }
}

const enum CallPhase {
  Receiving,
  /** Queued to decode and run its handler. */
  Dispatch,
  Running,
  /** Queued to encode and write its reply. */
  Reply,
  Done,
}

/** One unary call: collects the request message, runs the method, writes the reply. */
class UnaryCall implements Http2StreamHandler, WorkTask {
  private readonly reader: GrpcMessageReader;
  private phase = CallPhase.Receiving;
  /** Stream gone, answered, or past its deadline: queued work for it is skipped. */
  canceled = false;
  /** @internal Counted in ConnectionCalls.running (set there) until its handler settles. */
  holdsSlot = false;
  private response: unknown;
  private deadline: NodeJS.Timeout | undefined;
  /** Only for methods that want it (wantsSignal): aborted when the call ends before its handler settles. */
  private abort: AbortController | undefined;

  constructor(
    private readonly server: GrpcServer,
    private readonly calls: ConnectionCalls,
    private readonly stream: Http2ServerStream,
    private readonly method: UnaryMethod,
    private readonly encoding: string,
    timeoutMs: number | undefined,
  ) {
    this.reader = new GrpcMessageReader(server.receiveLimitBytes);
    stream.receiveBytesWanted = MESSAGE_HEADER_BYTES;
    // Past 2^31-1 ms (24.8 days) Node would fire a timer at once; such a deadline never comes.
    if (timeoutMs !== undefined && timeoutMs <= TIMER_MS_MAX) {
      this.deadline = setTimeout(() => this.finish(GrpcCode.DEADLINE_EXCEEDED, 'context deadline exceeded'), timeoutMs);
      this.deadline.unref();
    }
  }

  onData(chunk: Buffer): void {
    if (this.phase !== CallPhase.Receiving) return;
    const problem = this.reader.push(chunk);
    if (problem === undefined) {
      this.stream.receiveBytesWanted = this.reader.bytesWanted;
      return;
    }
    // The status ends our side; the stream layer then resets the client's (NO_ERROR).
    if (problem.kind === 'too-large') this.finish(GrpcCode.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${problem.declaredBytes} vs. ${this.server.receiveLimitBytes})`);
    else this.finish(GrpcCode.INTERNAL, 'grpc: unary request must carry exactly one message');
  }

  onAbort(): void {
    // Reset by the client or the connection went away: queued work is skipped, a later reply dropped.
    // A call still queued for dispatch never runs now: give back its handler slot.
    if (this.phase === CallPhase.Dispatch) this.releaseSlot();
    this.canceled = true;
    this.phase = CallPhase.Done;
    this.clearDeadline();
    this.abort?.abort();
  }

  onEnd(): void {
    if (this.phase !== CallPhase.Receiving) return;
    const r = this.reader;
    if (!r.started || r.declaredBytes < 0) {
      this.finish(GrpcCode.INTERNAL, 'grpc: unary request carried no message');
      return;
    }
    if (r.compressed) {
      // grpc-go's checkRecvPayload.
      if (this.encoding === '' || this.encoding === 'identity') this.finish(GrpcCode.INTERNAL, 'grpc: compressed flag set with identity or empty encoding');
      else this.finish(GrpcCode.UNIMPLEMENTED, `grpc: Decompressor is not installed for grpc-encoding "${this.encoding}"`);
      return;
    }
    if (!r.complete) {
      this.finish(GrpcCode.INTERNAL, 'grpc: unary request must carry exactly one message');
      return;
    }
    this.phase = CallPhase.Dispatch;
    this.calls.ready(this);
  }

  /** WorkTask: the scheduler's turn for this call (dispatch, or the reply). */
  run(): void {
    if (this.phase === CallPhase.Dispatch) this.dispatch();
    else if (this.phase === CallPhase.Reply) this.writeReply();
  }

  private dispatch(): void {
    this.phase = CallPhase.Running;
    const m = this.method;
    let request: unknown;
    try {
      request = m.decode(this.reader.message());
    } catch (err) {
      this.releaseSlot();
      this.finish(GrpcCode.INTERNAL, `grpc: error unmarshalling request: ${(err as Error).message}`);
      return;
    }
    this.server.counters.start(m.service, m.method);
    let pending: Promise<unknown>;
    try {
      if (m.wantsSignal === true) this.abort = new AbortController();
      pending = m.handle(request, this.reader.declaredBytes, this.abort?.signal);
    } catch (err) {
      this.releaseSlot();
      this.fail(err);
      return;
    }
    pending.then((response) => this.onResponse(response), (err: unknown) => {
      this.releaseSlot();
      this.fail(err);
    });
  }

  private onResponse(response: unknown): void {
    const m = this.method;
    this.server.counters.handle(m.service, m.method, GrpcCode.OK);
    this.releaseSlot();
    if (this.canceled || this.stream.closed) return;
    this.response = response;
    this.phase = CallPhase.Reply;
    // Encoding is work too (a 10 MB range): it takes its turn.
    this.server.scheduler.submit(this.calls.lane, this);
  }

  private writeReply(): void {
    const m = this.method;
    const response = this.response;
    this.response = undefined;
    this.phase = CallPhase.Done;
    this.canceled = true;
    this.clearDeadline();
    if (this.stream.closed) return;
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

  private releaseSlot(): void {
    if (!this.holdsSlot) return;
    this.holdsSlot = false;
    this.calls.settled();
  }

  private fail(err: unknown): void {
    const m = this.method;
    const failure = this.server.failureOf(err, `${m.service}/${m.method}`);
    this.server.counters.handle(m.service, m.method, failure.grpcCode);
    this.finish(failure.grpcCode, failure.message);
  }

  private finish(code: number, message: string): void {
    if (this.phase === CallPhase.Done) return;
    // A call queued for dispatch never runs now: give back its handler slot.
    if (this.phase === CallPhase.Dispatch) this.releaseSlot();
    this.phase = CallPhase.Done;
    this.canceled = true;
    this.clearDeadline();
    // A running handler that blocks (Lock) learns its call is over (deadline) and cleans up.
    this.abort?.abort();
    this.server.trailersOnly(this.stream, code, message);
  }

  private clearDeadline(): void {
    if (this.deadline === undefined) return;
    clearTimeout(this.deadline);
    this.deadline = undefined;
  }
}
