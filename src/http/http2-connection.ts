/**
 * The server side of one HTTP/2 connection (RFC 9113), as much as gRPC needs: frames, HPACK,
 * streams and flow control in both directions, over a plain socket. The gRPC call layer
 * (grpc/grpc-server.ts) builds calls on the streams this hands out; this folder knows nothing of
 * gRPC or etcd (layering: api -> grpc -> http -> platform).
 *
 * Why our own and not node:http2: node:http2 (nghttp2 plus its JS stream objects) cost about
 * 60 µs of CPU per unary call on these machines, more than the whole gateway put path, so gRPC
 * puts ran below etcd's rate (README, bench/kv/grpc-bench.ts). It also refuses an `:authority`
 * carrying a scheme, which etcdctl 3.4 sends for `endpoint status`, with no way to relax the check.
 * A unary gRPC call is three small frames each way; this file does that work and no more.
 *
 * What is served: the connection preface, SETTINGS (ours first, the client's acknowledged and
 * applied), PING (answered), WINDOW_UPDATE, HEADERS + CONTINUATION (one HPACK decoder per
 * connection, hpack.ts), DATA (padding, flow control), RST_STREAM, GOAWAY (the client's: finish what
 * is in flight, then close), PRIORITY and unknown frame types (ignored, as the RFC allows).
 * PUSH_PROMISE from a client is a protocol error. Our header blocks never use the HPACK dynamic
 * table (encodeWithoutIndexing), so the client's decoder state never depends on ours.
 *
 * Streams: a client-opened stream is open until both sides have ended it. When we end a stream
 * whose client side is still open (a refusal before the request finished, a status for a
 * streaming method), a RST_STREAM(NO_ERROR) follows our trailers, as grpc-go's server does, so
 * there is no half-closed(local) state. Frames for streams already closed are ignored (DATA is
 * still credited to the connection window), as RFC 9113 5.1 allows shortly after a close.
 *
 * Flow control, receive side: each stream's window is Limits.http2StreamWindowBytes, above the
 * gRPC receive limit, so a unary request never waits; a stream's window is credited back only as
 * far as its owner still wants bytes (`receiveBytesWanted`: a unary call, the rest of its declared
 * message), so a call declaring 10 bytes cannot have the client send megabytes. The connection
 * window is Limits.http2ConnectionWindowBytes and bytes are credited back only when the stream
 * holding them closes, or as its owner releases them (`release`: a streaming call, message by
 * message, which also reopens that stream's window): that bounds the request bytes one connection can make us hold, and the
 * shared budget (Limits.http2RequestBytesBufferedMax) bounds them across connections: a stream
 * that sends past it is refused (REFUSED_STREAM) and its bytes dropped. Send side: DATA never
 * exceeds the client's stream and connection windows nor its SETTINGS_MAX_FRAME_SIZE; what does
 * not fit waits, per stream, for WINDOW_UPDATE. A stream's send window is kept relative to the
 * client's SETTINGS_INITIAL_WINDOW_SIZE, so a change of that setting costs O(1), not a walk over
 * every open stream per setting entry.
 *
 * Output is gathered and written once per tick (process.nextTick: after every promise hop of the
 * replies resolved in this turn), framed in place into one buffer (`chunk`); a turn whose output
 * passes Limits.http2OutputChunkBytes is written in pieces of that size as they fill. A stream's
 * owner may also fill DATA bodies in place itself (writeDirect: watch responses). A PING ACK
 * alone is held back while a stream is open, or for a
 * moment after a write (the client's next call is likely on its way), so that it rides in the write
 * of a reply (held-output.ts: grpc-go clients PING with every
 * request; answered at once, that was a second socket write per call), for at most
 * Limits.http2PingAckHoldMs. DATA is handed to the socket only while fewer than
 * Limits.http2SocketBytesInFlightMax bytes wait in it; the rest waits for 'drain' (a large reply
 * goes out in chunks as the client reads). When the socket's buffer is full we also stop reading
 * the client until it drains, so a client that does not read cannot make us queue without bound.
 *
 * Hostile clients (issue 9): a header block may span at most Limits.http2ContinuationFramesMax
 * CONTINUATIONs; resets of streams still in progress draw on a token bucket (rapid reset) and
 * GOAWAY ENHANCE_YOUR_CALM ends a client that keeps resetting; the preface, and every frame once
 * begun, must arrive within a deadline; keepalive follows grpc-go's (server PING after an idle
 * interval, closed if unanswered; a client pinging too often gets GOAWAY "too_many_pings"; the
 * times are etcd's --grpc-keepalive-* flags); and output that does not move for writeStallMs (a
 * client that stops reading, or never opens its windows) closes the connection, releasing it all.
 *
 * Errors: a connection error sends GOAWAY(last stream, code) and ends the socket; a stream error
 * sends RST_STREAM(code) and the connection goes on (RFC 9113 5.4).
 */
import type { Socket } from 'node:net';
import type { Logger } from '../platform/logger.js';
import { assert } from '../platform/assert.js';
import { Limits } from '../platform/limits.js';
import { HpackDecoder, HpackError, type HeaderField } from './hpack.js';
import type { ConnectionClosures } from './connection-closures.js';
import { WriteStall } from './write-stall.js';
import type { HeldOutput, HoldingConnection } from './held-output.js';

const FRAME_HEADER_BYTES = 9;
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const enum FrameType {
  DATA = 0x0,
  HEADERS = 0x1,
  PRIORITY = 0x2,
  RST_STREAM = 0x3,
  SETTINGS = 0x4,
  PUSH_PROMISE = 0x5,
  PING = 0x6,
  GOAWAY = 0x7,
  WINDOW_UPDATE = 0x8,
  CONTINUATION = 0x9,
}

const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

const SETTINGS_HEADER_TABLE_SIZE = 0x1;
const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

/** HTTP/2 error codes (RFC 9113 7). */
export const Http2ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  ENHANCE_YOUR_CALM: 0xb,
} as const;

/** The protocol's defaults, in force until SETTINGS say otherwise. */
const DEFAULT_WINDOW_BYTES = 65_535;
const DEFAULT_FRAME_BYTES = 16_384;
const DEFAULT_HEADER_TABLE_BYTES = 4096;
const WINDOW_BYTES_MAX = 2 ** 31 - 1;
const FRAME_BYTES_LIMIT = 2 ** 24 - 1;
/** We announce no larger SETTINGS_MAX_FRAME_SIZE than the default: frames we accept. */
const RECEIVE_FRAME_BYTES_MAX = DEFAULT_FRAME_BYTES;
/** Connection credit returned in one WINDOW_UPDATE once this much has gathered (fewer frames). */
const CONNECTION_CREDIT_BATCH_BYTES = 1024 * 1024;
/** The first chunk of a turn's output is at least this (small ones come from Node's shared pool). */
const OUTPUT_CHUNK_BYTES_MIN = 1024;
/** Output the socket may buffer before we stop reading the client. */
const SOCKET_BUFFER_BYTES_MAX = 4 * 1024 * 1024;
/**
 * Whether a header name holds an ASCII uppercase letter (malformed in HTTP/2, RFC 9113 8.2.1).
 * A loop over char codes, not /[A-Z]/.test: a request has 6-10 header names, and over 9 typical
 * names the regex took 0.6-0.9 µs, the loop 0.15-0.45 (micro-benchmark, fresh strings as HPACK
 * literals give; RegExp showed in profiles of unary-cpu.ts --only put-one-key-256B).
 */
function hasUppercase(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return true;
  }
  return false;
}
/** grpc-go's maxPingStrikes: the third ping too soon is tolerated, the next one is not. */
const PING_STRIKES_MAX = 2;
/** grpc-go: with no stream open (and PermitWithoutStream false, as etcd sets) one ping per 2 h. */
const PING_WITHOUT_STREAMS_INTERVAL_MS = 2 * 60 * 60 * 1000;
const GOAWAY_TOO_MANY_PINGS = Buffer.from('too_many_pings', 'latin1');
/** After a GOAWAY of ours, the socket is destroyed if the client has not closed it by then. */
const CLOSE_GRACE_MS = 1000;

/** What a stream's owner hears of it. */
export interface Http2StreamHandler {
  /** Request body bytes (DATA payloads, padding removed), in order. */
  onData(chunk: Buffer): void;
  /** The client ended its side (END_STREAM). */
  onEnd(): void;
  /** The stream is gone before we ended it: reset by the client, or the connection closed. */
  onAbort(): void;
}

/**
 * Where a stream's owner writes DATA bodies itself (Http2ServerStream.writeDirect): `reserve(n)`
 * returns the offset in `buffer` of n bytes that go out whole in one DATA frame; `buffer` may be
 * another one after each reserve, so it is read after it.
 */
export interface PieceOutput {
  readonly buffer: Buffer;
  reserve(bytes: number): number;
}

/** Fills a body piece by piece (writeDirect): an object rather than a closure, made once by its owner. */
export interface PieceWriter {
  writePieces(out: PieceOutput): void;
}

/** The decoded request header list, by name (a repeated name keeps its first value). */
export type RequestHeaders = Map<string, string>;

export interface Http2ConnectionHandler {
  /**
   * A client opened a stream. Answer at once (respond with endStream), or set `stream.handler`
   * to receive the body; its onEnd follows at once when the HEADERS frame ended the client side.
   */
  onStream(stream: Http2ServerStream, headers: RequestHeaders): void;
  /**
   * Output queued on this connection went out (the socket drained, or took a write whole): work
   * held back for it may go on. Called often: must be cheap.
   */
  onWritable(): void;
}

/** Timings of the connection's deadlines; Limits by default, shorter in tests. */
export interface Http2Timing {
  prefaceTimeoutMs: number;
  frameTimeoutMs: number;
  keepaliveMinTimeMs: number;
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
  /** Queued output that does not move for this long closes the connection (Limits.clientWriteStallMs). */
  writeStallMs: number;
  /** A PING ACK may wait this long for a reply to ride with (Limits.http2PingAckHoldMs; 0: never held). */
  pingAckHoldMs: number;
}

export const DEFAULT_HTTP2_TIMING: Http2Timing = {
  prefaceTimeoutMs: Limits.http2PrefaceTimeoutMs,
  frameTimeoutMs: Limits.http2FrameTimeoutMs,
  keepaliveMinTimeMs: Limits.grpcKeepaliveMinTimeMs,
  keepaliveIntervalMs: Limits.grpcKeepaliveIntervalMs,
  keepaliveTimeoutMs: Limits.grpcKeepaliveTimeoutMs,
  writeStallMs: Limits.clientWriteStallMs,
  pingAckHoldMs: Limits.http2PingAckHoldMs,
};

/**
 * What all connections of a member hold together: request bytes received and not yet released,
 * and reply bytes queued and not yet handed to a socket. One instance per client port.
 */
export class Http2SharedBudget {
  /** Invariant: requestBytes >= 0 and is the sum of heldBytes over every open stream of every connection. */
  requestBytes = 0;
  /** Invariant: replyBytes >= 0 and is the sum of pendingBytes over every open stream of every connection. */
  replyBytes = 0;

  constructor(readonly requestBytesMax: number = Limits.http2RequestBytesBufferedMax) {}
}

class ConnectionError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** One client-initiated stream. */
export class Http2ServerStream {
  handler: Http2StreamHandler | undefined;
  /** The client sent END_STREAM. */
  remoteEnded = false;
  /** We sent (or queued) END_STREAM or RST_STREAM. */
  localEnded = false;
  closed = false;
  /**
   * The send window less the client's SETTINGS_INITIAL_WINDOW_SIZE (WINDOW_UPDATE increments minus
   * DATA sent): the window is peerInitialWindow + sendWindowDelta, so a new initial size applies to
   * every stream at once. The window may be negative after the client shrinks it (RFC 9113 6.9.2).
   */
  sendWindowDelta = 0;
  recvWindow: number;
  /** Request bytes received on this stream not yet credited back to the connection window. */
  heldBytes = 0;
  /**
   * Bytes the owner still accepts: the stream window is credited back no further than this
   * (0: never, so a stream gets Limits.http2StreamWindowBytes in all).
   */
  receiveBytesWanted = 0;
  /** DATA waiting for window, oldest first; `pendingOffset` bytes of the first already went. */
  pending: Buffer[] = [];
  pendingOffset = 0;
  /** Bytes in `pending` not yet framed. */
  pendingBytes = 0;
  /** Trailers to send (with END_STREAM) once `pending` has drained. */
  pendingTrailers: Buffer | undefined;
  /** In the connection's list of streams waiting for window. */
  blocked = false;
  /** Bytes released by the owner (`release`) not yet returned to the client as stream window. */
  windowCredit = 0;

  constructor(readonly id: number, private readonly connection: Http2Connection) {
    this.recvWindow = Limits.http2StreamWindowBytes;
  }

  /** Response headers (an HPACK block from encodeWithoutIndexing); endStream for trailers-only. */
  respond(headerBlock: Buffer, endStream: boolean): void {
    if (this.localEnded) return;
    this.connection.sendHeaders(this, headerBlock, endStream);
    if (endStream) this.connection.endLocal(this);
  }

  /** Response body bytes, sent as the client's windows allow. */
  write(data: Buffer): void {
    if (this.localEnded || data.length === 0) return;
    this.pending.push(data);
    this.connection.addPending(this, data.length);
    this.connection.trySend(this);
  }

  /**
   * Response body of `bytes` that `writer` fills straight into the connection's output, piece by
   * piece (each at most `largestPieceBytes`; a piece never spans two DATA frames): no buffer of
   * its own, no copy. Only when it can all go now: nothing of this stream waits before it, the
   * stream's and connection's windows take all of it, the socket is not full and a piece fits a
   * frame. Returns false, having written nothing, otherwise (the caller then writes a buffer).
   */
  writeDirect(bytes: number, largestPieceBytes: number, writer: PieceWriter): boolean {
    if (this.localEnded || bytes === 0) return false;
    return this.connection.writeDirect(this, bytes, largestPieceBytes, writer);
  }

  /** Trailers with END_STREAM, after every byte written. */
  end(trailerBlock: Buffer): void {
    if (this.localEnded) return;
    this.pendingTrailers = trailerBlock;
    this.localEnded = true;
    this.connection.trySend(this);
  }

  /**
   * The owner is done with `bytes` of what it received (a streaming call, message by message):
   * they stop counting against the connection and the member, and both windows get them back, so
   * a long-lived stream is bounded by what its owner has not yet consumed, not by all it ever sent.
   */
  release(bytes: number): void {
    this.connection.releaseConsumed(this, bytes);
  }

  /** RST_STREAM(code): the stream ends at once. */
  reset(code: number): void {
    if (this.closed) return;
    this.connection.resetStream(this, code);
  }
}

interface HeaderBlockInProgress {
  streamId: number;
  endStream: boolean;
  fragments: Buffer[];
  bytes: number;
  /** CONTINUATION frames so far. */
  continuations: number;
}

export class Http2Connection implements HoldingConnection {
  private readonly decoder = new HpackDecoder({ tableBytesMax: DEFAULT_HEADER_TABLE_BYTES, headerListBytesMax: Limits.http2HeaderListBytesMax });
  /** Open streams by id. Invariant: every stream here has closed === false. */
  private readonly streams = new Map<number, Http2ServerStream>();
  /** Highest stream id the client has opened; ids at or below it that are not open are closed. */
  private lastStreamId = 0;
  private prefaceSeen = false;
  private settingsSeen = false;
  /**
   * Bytes of an incomplete frame, kept as the chunks they came in until the frame is whole (joined
   * once then: a frame trickled in byte by byte must not cost a copy per byte).
   */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** Bytes the partial frame needs before it is worth joining (its header, then all of it). */
  private partialNeeds = 0;
  private headerBlock: HeaderBlockInProgress | undefined;

  /** Connection send window (the client's receive window for us). */
  private sendWindow = DEFAULT_WINDOW_BYTES;
  private peerInitialWindow = DEFAULT_WINDOW_BYTES;
  private peerMaxFrameBytes = DEFAULT_FRAME_BYTES;
  /** A dynamic table size update our next header block must begin with (the client shrank the table). */
  private tableSizeUpdate: number | undefined;
  /** Connection receive window left, and credit gathered to return. */
  private recvWindow = DEFAULT_WINDOW_BYTES;
  private connectionCredit = 0;
  /** Streams whose pending DATA waits for window, in the order they blocked. */
  private blockedStreams: Http2ServerStream[] = [];

  /**
   * An upper bound on sendWindowDelta over the open streams (exact after a walk): a SETTINGS
   * increase walks the streams only when it might push a window past 2^31-1.
   */
  private sendWindowDeltaBound = 0;
  /** Bytes in the pending DATA of every open stream (counted in the shared budget too). */
  private pendingBytes = 0;

  /**
   * Output of this turn not yet written, framed in place: chunk[outStart, outEnd). Frames are
   * written straight into the chunk (headers and payloads, and DATA bodies that a stream's owner
   * fills itself: writeDirect), so a turn's output is one copy of its bytes, not a list of frames
   * joined by Buffer.concat at the flush (that concat was 16-25% of the member's CPU under watch
   * fan-out). A full chunk is written at once and a new one begun: a turn's output goes to the
   * socket in pieces of at most Limits.http2OutputChunkBytes, so the client starts reading the
   * first while the rest is being encoded. A chunk the socket took whole (written synchronously)
   * is filled again; one it still holds is let go, as is any chunk at the end of a turn when no
   * stream is open (an idle connection holds no output buffer).
   */
  private chunk: Buffer | undefined;
  private outStart = 0;
  private outEnd = 0;
  /** Bytes of the current turn's output (the size of the next turn's first chunk). */
  private turnBytes = 0;
  private chunkBytesHint = OUTPUT_CHUNK_BYTES_MIN;
  /** Bytes went to the socket this turn before the flush (a full chunk): the flush still runs its end-of-turn checks. */
  private wroteThisTurn = false;
  /** writeDirect's state: the DATA frame being filled (offset of its header in the chunk, or -1), its stream, the bytes reserved so far. */
  private directFrameAt = -1;
  private directStream: Http2ServerStream | undefined;
  private directBytes = 0;
  private readonly directOutput: PieceOutput;
  private flushScheduled = false;
  /** `out` holds a frame that must go this tick (anything but a PING ACK). */
  private outUrgent = false;
  /** `out` waits in `held` for a reply to ride with (only PING ACKs are in it). */
  private holding = false;
  /** performance.now() of the last socket write once a call came: a PING soon after is held too (flush). */
  private lastWriteAt = -Infinity;
  private readingPaused = false;
  /** DATA waits for the socket's 'drain' (Limits.http2SocketBytesInFlightMax reached). */
  private waitingForDrain = false;
  private goawayReceived = false;
  private dead = false;

  // Deadlines (checkDeadlines, called about once a second by the owner).
  private readonly openedAt = Date.now();
  /** When the last bytes arrived. */
  private lastReadAt = this.openedAt;
  /** When the frame or header block now incomplete began, or 0. */
  private incompleteSince = 0;
  /** The keepalive PING we sent and await, and when. */
  private keepalivePingData: Buffer | undefined;
  private keepalivePingSentAt = 0;
  private lastClientPingAt = 0;
  private pingStrikes = 0;
  /** DATA payload bytes framed so far: the write-stall check's sign that the client's windows open. */
  private dataBytesFramed = 0;
  private readonly writeStall = new WriteStall();
  /** Rapid reset: tokens left, and when they were last refilled. */
  private resetTokens: number = Limits.http2ClientResetsBurst;
  private resetTokensAt = this.openedAt;

  constructor(
    private readonly socket: Socket,
    private readonly handler: Http2ConnectionHandler,
    private readonly logger: Logger,
    private readonly budget: Http2SharedBudget = new Http2SharedBudget(),
    private readonly timing: Http2Timing = DEFAULT_HTTP2_TIMING,
    private readonly closures?: ConnectionClosures,
    /** Where a PING ACK may wait for company; without it, it goes at once. */
    private readonly held?: HeldOutput,
  ) {
    const connection = this;
    this.directOutput = {
      get buffer(): Buffer {
        return connection.chunk!;
      },
      reserve: (n: number): number => this.reserveDirect(n),
    };
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => {
      this.logger.debug({ err }, 'HTTP/2 connection socket error');
      this.teardown();
    });
    socket.on('close', () => this.teardown());
    socket.on('drain', () => {
      if (this.dead) return;
      if (this.readingPaused) {
        this.readingPaused = false;
        this.socket.resume();
      }
      this.waitingForDrain = false;
      this.resumeSending();
    });
    // Our connection preface: SETTINGS, then the connection window opened to its full size.
    const settings = Buffer.alloc(18);
    settings.writeUInt16BE(SETTINGS_MAX_CONCURRENT_STREAMS, 0);
    settings.writeUInt32BE(Limits.http2StreamsPerConnectionMax, 2);
    settings.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 6);
    settings.writeUInt32BE(Limits.http2StreamWindowBytes, 8);
    settings.writeUInt16BE(SETTINGS_MAX_HEADER_LIST_SIZE, 12);
    settings.writeUInt32BE(Limits.http2HeaderListBytesMax, 14);
    this.queueFrame(FrameType.SETTINGS, 0, 0, settings);
    this.queueWindowUpdate(0, Limits.http2ConnectionWindowBytes - DEFAULT_WINDOW_BYTES);
    this.recvWindow = Limits.http2ConnectionWindowBytes;
  }

  /** Bytes already read from the socket (the client port's classifier peeked them). */
  receive(chunk: Buffer): void {
    if (this.dead) return;
    this.lastReadAt = Date.now();
    if (this.partialBytes > 0) {
      this.partial.push(chunk);
      this.partialBytes += chunk.length;
      if (this.partialBytes < this.partialNeeds) return;
      chunk = Buffer.concat(this.partial, this.partialBytes);
      this.partial = [];
      this.partialBytes = 0;
    }
    const buf = chunk;
    try {
      let at = 0;
      if (!this.prefaceSeen) {
        const n = Math.min(buf.length, HTTP2_PREFACE.length);
        if (buf.compare(HTTP2_PREFACE, 0, n, 0, n) !== 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'bad connection preface');
        if (buf.length < HTTP2_PREFACE.length) {
          this.keepPartial(buf, HTTP2_PREFACE.length);
          return;
        }
        this.prefaceSeen = true;
        at = HTTP2_PREFACE.length;
      }
      while (buf.length - at >= FRAME_HEADER_BYTES) {
        const length = buf.readUIntBE(at, 3);
        if (length > RECEIVE_FRAME_BYTES_MAX) throw new ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes over ${RECEIVE_FRAME_BYTES_MAX}`);
        if (buf.length - at < FRAME_HEADER_BYTES + length) break;
        const type = buf[at + 3]!;
        const flags = buf[at + 4]!;
        const streamId = buf.readUInt32BE(at + 5) & 0x7fffffff;
        const payload = buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
        at += FRAME_HEADER_BYTES + length;
        this.onFrame(type, flags, streamId, payload);
        if (this.dead) return;
        this.incompleteSince = this.headerBlock === undefined ? 0 : this.incompleteSince || this.lastReadAt;
      }
      if (at < buf.length) {
        const rest = buf.subarray(at);
        this.keepPartial(rest, rest.length < FRAME_HEADER_BYTES ? FRAME_HEADER_BYTES : FRAME_HEADER_BYTES + rest.readUIntBE(0, 3));
      }
    } catch (err) {
      if (err instanceof ConnectionError) {
        this.connectionError(err.code, err.message);
        return;
      }
      throw err;
    }
  }

  private keepPartial(bytes: Buffer, needs: number): void {
    this.partial = [bytes];
    this.partialBytes = bytes.length;
    this.partialNeeds = needs;
    if (this.incompleteSince === 0) this.incompleteSince = this.lastReadAt;
  }

  /** Output framed this turn and not yet handed to the socket. */
  private get outBytes(): number {
    return this.outEnd - this.outStart;
  }

  /** Bytes of reply this connection holds that its client has not yet taken. */
  get outputBacklogBytes(): number {
    return this.pendingBytes + this.outBytes + this.socket.writableLength;
  }

  /**
   * Closes the connection if a deadline passed: the preface, a frame begun and not finished, a
   * keepalive PING unanswered, queued output that has not moved (write stall); sends a keepalive
   * PING after an idle interval.
   */
  checkDeadlines(now: number): void {
    if (this.dead) return;
    const t = this.timing;
    // Output we hold for a client that does not take it: in the socket, or waiting for windows the
    // client never opens. Destroyed, not GOAWAY'd: the client is not reading anyway. A stream
    // blocked on its own window (a watch whose reader stopped) counts too, while nothing else moves.
    // PING ACKs we hold on purpose (held-output.ts) are not output the client fails to take.
    const queuedBytes = this.pendingBytes + (this.holding ? 0 : this.outBytes) + this.socket.writableLength;
    if (this.writeStall.stalled(this.socket, queuedBytes, this.dataBytesFramed, now, t.writeStallMs)) {
      this.closures?.record('write_stall', { protocol: 'h2', queuedBytes: this.outputBacklogBytes, streams: this.streams.size });
      this.destroy();
      return;
    }
    if (!this.settingsSeen) {
      if (now - this.openedAt > t.prefaceTimeoutMs) this.closeQuietly('no connection preface and SETTINGS in time');
      return;
    }
    if (this.incompleteSince !== 0 && now - this.incompleteSince > t.frameTimeoutMs) {
      this.closeQuietly('a frame begun and not finished in time');
      return;
    }
    if (this.keepalivePingData !== undefined) {
      if (now - this.keepalivePingSentAt > t.keepaliveTimeoutMs) {
        // grpc-go closes the transport without a GOAWAY: the client is not answering anyway.
        this.logger.debug('HTTP/2 keepalive PING unanswered: closing');
        this.destroy();
      }
      return;
    }
    if (now - this.lastReadAt > t.keepaliveIntervalMs) {
      const data = Buffer.allocUnsafe(8);
      data.writeDoubleBE(now, 0);
      this.keepalivePingData = data;
      this.keepalivePingSentAt = now;
      this.queueFrame(FrameType.PING, 0, 0, data);
    }
  }

  /** GOAWAY(NO_ERROR) and close: the client broke no rule but a deadline of ours. */
  private closeQuietly(reason: string): void {
    this.logger.debug({ reason }, 'HTTP/2 connection closed');
    this.queueGoaway(Http2ErrorCode.NO_ERROR);
    this.endSocket();
  }

  /** Ends the connection at once (the client port is closing). */
  destroy(): void {
    this.teardown();
    this.socket.destroy();
  }

  // ---- inbound frames ---------------------------------------------------------------------------

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.settingsSeen) {
      // The client preface ends with a SETTINGS frame (RFC 9113 3.4).
      if (type !== FrameType.SETTINGS || (flags & FLAG_ACK) !== 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'the first frame is not SETTINGS');
      this.settingsSeen = true;
    }
    if (this.headerBlock !== undefined && type !== FrameType.CONTINUATION) {
      throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `frame type ${type} inside a header block`);
    }
    switch (type) {
      case FrameType.DATA: return this.onData(flags, streamId, payload);
      case FrameType.HEADERS: return this.onHeaders(flags, streamId, payload);
      case FrameType.PRIORITY:
        if (streamId === 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) this.sendReset(streamId, Http2ErrorCode.FRAME_SIZE_ERROR);
        return;
      case FrameType.RST_STREAM: return this.onReset(streamId, payload);
      case FrameType.SETTINGS: return this.onSettings(flags, streamId, payload);
      case FrameType.PUSH_PROMISE: throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
      case FrameType.PING:
        if (streamId !== 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) throw new ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, `PING of ${payload.length} bytes`);
        if ((flags & FLAG_ACK) !== 0) {
          if (this.keepalivePingData?.equals(payload)) this.keepalivePingData = undefined;
          return;
        }
        if (this.tooManyPings()) {
          this.queueGoaway(Http2ErrorCode.ENHANCE_YOUR_CALM, GOAWAY_TOO_MANY_PINGS);
          this.endSocket();
          return;
        }
        this.pushFrame(FrameType.PING, FLAG_ACK, 0, Buffer.from(payload));
        return;
      case FrameType.GOAWAY:
        if (streamId !== 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
        if (payload.length < 8) throw new ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, `GOAWAY of ${payload.length} bytes`);
        this.goawayReceived = true;
        this.maybeFinishGoaway();
        return;
      case FrameType.WINDOW_UPDATE: return this.onWindowUpdate(streamId, payload);
      case FrameType.CONTINUATION: return this.onContinuation(flags, streamId, payload);
      default:
        return; // unknown frame types are ignored (RFC 9113 4.1)
    }
  }

  /**
   * grpc-go's keepalive enforcement (http2_server.go handlePing), with etcd's policy: a PING sooner
   * than keepaliveMinTimeMs after the previous one (2 h when no stream is open) is a strike; strikes
   * are forgiven when we send HEADERS or DATA; past PING_STRIKES_MAX the client is told to calm down.
   */
  private tooManyPings(): boolean {
    const now = Date.now();
    const interval = this.streams.size === 0 ? PING_WITHOUT_STREAMS_INTERVAL_MS : this.timing.keepaliveMinTimeMs;
    if (this.lastClientPingAt !== 0 && now - this.lastClientPingAt < interval) this.pingStrikes++;
    this.lastClientPingAt = now;
    return this.pingStrikes > PING_STRIKES_MAX;
  }

  /** Strips padding (PADDED flag) and, for HEADERS, the priority fields. */
  private unpad(flags: number, payload: Buffer, priorityBytes: number): Buffer {
    let start = 0;
    let padding = 0;
    if (flags & FLAG_PADDED) {
      if (payload.length < 1) throw new ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, 'padded frame without a pad length');
      padding = payload[0]!;
      start = 1;
    }
    start += priorityBytes;
    if (start + padding > payload.length) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'padding longer than the frame');
    return payload.subarray(start, payload.length - padding);
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    if (streamId > this.lastStreamId) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
    // Flow control counts the whole payload, padding included (RFC 9113 6.9.1).
    const length = payload.length;
    if (length > this.recvWindow) throw new ConnectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, `DATA of ${length} bytes over the connection window ${this.recvWindow}`);
    this.recvWindow -= length;
    const data = this.unpad(flags, payload, 0);
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      this.creditConnection(length); // a closed stream: nobody holds these bytes
      return;
    }
    if (stream.remoteEnded) {
      this.creditConnection(length);
      this.resetStream(stream, Http2ErrorCode.STREAM_CLOSED);
      return;
    }
    if (length > stream.recvWindow) {
      this.creditConnection(length);
      this.resetStream(stream, Http2ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    if (this.budget.requestBytes + length > this.budget.requestBytesMax) {
      // The member holds all the request bytes it may: this stream is refused, its bytes dropped.
      this.creditConnection(length);
      this.resetStream(stream, Http2ErrorCode.REFUSED_STREAM);
      return;
    }
    stream.recvWindow -= length;
    stream.heldBytes += length;
    this.budget.requestBytes += length;
    const end = (flags & FLAG_END_STREAM) !== 0;
    if (end) stream.remoteEnded = true;
    else if (stream.recvWindow < Limits.http2StreamWindowBytes / 2 && stream.receiveBytesWanted > stream.recvWindow) {
      // The owner wants more than the window left: open it, no further than it wants.
      const target = Math.min(Limits.http2StreamWindowBytes, stream.receiveBytesWanted);
      this.queueWindowUpdate(stream.id, target - stream.recvWindow);
      stream.recvWindow = target;
    }
    if (data.length > 0) stream.handler?.onData(data);
    if (end && !stream.closed) {
      stream.handler?.onEnd();
      this.maybeClose(stream);
    }
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
    const fragment = this.unpad(flags, payload, flags & FLAG_PRIORITY ? 5 : 0);
    const block: HeaderBlockInProgress = { streamId, endStream: (flags & FLAG_END_STREAM) !== 0, fragments: [fragment], bytes: fragment.length, continuations: 0 };
    if (flags & FLAG_END_HEADERS) this.onHeaderBlock(block);
    else this.headerBlock = block;
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.headerBlock;
    if (block === undefined || block.streamId !== streamId) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without a header block');
    // Counted by frame as well as by byte: empty CONTINUATIONs add no bytes but cost a frame each.
    if (++block.continuations > Limits.http2ContinuationFramesMax) throw new ConnectionError(Http2ErrorCode.ENHANCE_YOUR_CALM, `header block over ${Limits.http2ContinuationFramesMax} CONTINUATION frames`);
    block.bytes += payload.length;
    if (block.bytes > Limits.http2HeaderBlockBytesMax) throw new ConnectionError(Http2ErrorCode.ENHANCE_YOUR_CALM, `header block over ${Limits.http2HeaderBlockBytesMax} bytes`);
    if (payload.length > 0) block.fragments.push(payload);
    if (flags & FLAG_END_HEADERS) {
      this.headerBlock = undefined;
      this.onHeaderBlock(block);
    }
  }

  private onHeaderBlock(block: HeaderBlockInProgress): void {
    let fields: HeaderField[];
    try {
      // Every block is decoded, even one we refuse: the HPACK table must follow the client's.
      fields = this.decoder.decode(block.fragments.length === 1 ? block.fragments[0]! : Buffer.concat(block.fragments, block.bytes));
    } catch (err) {
      if (err instanceof HpackError) throw new ConnectionError(Http2ErrorCode.COMPRESSION_ERROR, err.message);
      throw err;
    }
    const id = block.streamId;
    const open = this.streams.get(id);
    if (open !== undefined) {
      // Trailers from the client: they must end the stream.
      if (!block.endStream || open.remoteEnded) {
        this.resetStream(open, Http2ErrorCode.PROTOCOL_ERROR);
        return;
      }
      open.remoteEnded = true;
      open.handler?.onEnd();
      this.maybeClose(open);
      return;
    }
    if (id % 2 === 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `client opened even stream ${id}`);
    // A new stream's id must exceed every earlier one (RFC 9113 5.1.1); HEADERS on a closed stream
    // is an error too (5.1), and gRPC clients never send a second header block after we reset.
    if (id <= this.lastStreamId) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `HEADERS for stream ${id}, not above ${this.lastStreamId}`);
    this.lastStreamId = id;
    if (this.goawayReceived) return;
    if (this.streams.size >= Limits.http2StreamsPerConnectionMax) {
      this.sendReset(id, Http2ErrorCode.REFUSED_STREAM);
      return;
    }
    const headers: RequestHeaders = new Map();
    let regularSeen = false;
    for (const [name, value] of fields) {
      const pseudo = name.charCodeAt(0) === 0x3a; // ':'
      // Malformed requests (RFC 9113 8.1.1): pseudo-headers after regular fields, uppercase names.
      if ((pseudo && regularSeen) || hasUppercase(name)) {
        this.sendReset(id, Http2ErrorCode.PROTOCOL_ERROR);
        return;
      }
      if (!pseudo) regularSeen = true;
      if (!headers.has(name)) headers.set(name, value);
    }
    if (!headers.has(':method') || !headers.has(':path')) {
      this.sendReset(id, Http2ErrorCode.PROTOCOL_ERROR);
      return;
    }
    const stream = new Http2ServerStream(id, this);
    stream.remoteEnded = block.endStream;
    this.streams.set(id, stream);
    this.handler.onStream(stream, headers);
    if (!stream.closed && block.endStream) {
      stream.handler?.onEnd();
      this.maybeClose(stream);
    }
  }

  private onReset(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, `RST_STREAM of ${payload.length} bytes`);
    if (streamId > this.lastStreamId) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${streamId}`);
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    const inProgress = !stream.localEnded;
    this.close(stream);
    stream.handler?.onAbort();
    if (inProgress && !this.takeResetToken()) {
      throw new ConnectionError(Http2ErrorCode.ENHANCE_YOUR_CALM, `over ${Limits.http2ClientResetsBurst} resets of streams in progress (rapid reset)`);
    }
  }

  /**
   * Rapid reset (CVE-2023-44487): a reset frees its stream's slot at once, so the stream limit
   * alone never bounds a client that opens and resets in a loop. A token bucket as nghttp2's:
   * Limits.http2ClientResetsBurst at once, refilled at Limits.http2ClientResetsPerSecond.
   */
  private takeResetToken(): boolean {
    const now = Date.now();
    const refill = ((now - this.resetTokensAt) / 1000) * Limits.http2ClientResetsPerSecond;
    this.resetTokens = Math.min(Limits.http2ClientResetsBurst, this.resetTokens + refill);
    this.resetTokensAt = now;
    if (this.resetTokens < 1) return false;
    this.resetTokens--;
    return true;
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & FLAG_ACK) {
      if (payload.length !== 0) throw new ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, `SETTINGS of ${payload.length} bytes`);
    const initialWindowBefore = this.peerInitialWindow;
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      switch (id) {
        case SETTINGS_HEADER_TABLE_SIZE:
          // Our blocks never index, so our table is always empty; a smaller maximum must still be
          // acknowledged by a size update at the start of our next block (RFC 7541 4.2).
          if (value < DEFAULT_HEADER_TABLE_BYTES) this.tableSizeUpdate = Math.min(value, this.tableSizeUpdate ?? value);
          break;
        case SETTINGS_ENABLE_PUSH:
          if (value > 1) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `ENABLE_PUSH ${value}`);
          break;
        case SETTINGS_INITIAL_WINDOW_SIZE:
          // Applied once the whole frame is read (below): stream windows follow it in O(1).
          if (value > WINDOW_BYTES_MAX) throw new ConnectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, `INITIAL_WINDOW_SIZE ${value}`);
          this.peerInitialWindow = value;
          break;
        case SETTINGS_MAX_FRAME_SIZE:
          if (value < DEFAULT_FRAME_BYTES || value > FRAME_BYTES_LIMIT) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value}`);
          this.peerMaxFrameBytes = value;
          break;
        default:
          break; // MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE (we open no streams; our headers are tiny), unknown
      }
    }
    if (this.peerInitialWindow > initialWindowBefore) {
      // A larger initial window must not push any stream's window past 2^31-1 (RFC 9113 6.9.2).
      if (this.peerInitialWindow + this.sendWindowDeltaBound > WINDOW_BYTES_MAX) {
        let largest = 0;
        for (const stream of this.streams.values()) largest = Math.max(largest, stream.sendWindowDelta);
        this.sendWindowDeltaBound = largest;
        if (this.peerInitialWindow + largest > WINDOW_BYTES_MAX) throw new ConnectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, 'a stream window over 2^31-1 after INITIAL_WINDOW_SIZE');
      }
      this.sendBlocked();
    }
    this.queueFrame(FrameType.SETTINGS, FLAG_ACK, 0, Buffer.alloc(0));
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, `WINDOW_UPDATE of ${payload.length} bytes`);
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection');
      this.sendWindow += increment;
      if (this.sendWindow > WINDOW_BYTES_MAX) throw new ConnectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, 'connection window over 2^31-1');
      this.sendBlocked();
      return;
    }
    if (streamId > this.lastStreamId) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${streamId}`);
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (increment === 0) {
      this.resetStream(stream, Http2ErrorCode.PROTOCOL_ERROR);
      return;
    }
    stream.sendWindowDelta += increment;
    if (this.peerInitialWindow + stream.sendWindowDelta > WINDOW_BYTES_MAX) {
      this.resetStream(stream, Http2ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    if (stream.sendWindowDelta > this.sendWindowDeltaBound) this.sendWindowDeltaBound = stream.sendWindowDelta;
    this.trySend(stream);
  }

  // ---- stream life -------------------------------------------------------------------------------

  /** @internal We ended our side (trailers queued or sent). */
  endLocal(stream: Http2ServerStream): void {
    stream.localEnded = true;
    if (stream.pending.length === 0 && stream.pendingTrailers === undefined) {
      // Our side is done: a client still sending is told to stop (grpc-go does the same).
      if (!stream.remoteEnded) this.resetStream(stream, Http2ErrorCode.NO_ERROR);
      else this.maybeClose(stream);
    }
  }

  /** @internal */
  resetStream(stream: Http2ServerStream, code: number): void {
    if (stream.closed) return;
    this.sendReset(stream.id, code);
    this.close(stream);
    if (code !== Http2ErrorCode.NO_ERROR) stream.handler?.onAbort();
  }

  private maybeClose(stream: Http2ServerStream): void {
    if (stream.remoteEnded && stream.localEnded && stream.pending.length === 0 && stream.pendingTrailers === undefined) this.close(stream);
  }

  private close(stream: Http2ServerStream): void {
    if (stream.closed) return;
    stream.closed = true;
    stream.localEnded = true;
    this.dropPending(stream);
    stream.pendingTrailers = undefined;
    this.streams.delete(stream.id);
    this.releaseHeld(stream);
    this.maybeFinishGoaway();
  }

  /** The stream's request bytes are no longer held: credit the connection, release the budget. */
  private releaseHeld(stream: Http2ServerStream): void {
    this.budget.requestBytes -= stream.heldBytes;
    assert(this.budget.requestBytes >= 0, () => `shared request bytes ${this.budget.requestBytes} after releasing ${stream.heldBytes}`);
    if (!this.dead) this.creditConnection(stream.heldBytes);
    stream.heldBytes = 0;
  }

  /** @internal See Http2ServerStream.release. */
  releaseConsumed(stream: Http2ServerStream, bytes: number): void {
    if (stream.closed || this.dead) return;
    const n = Math.min(bytes, stream.heldBytes);
    if (n <= 0) return;
    stream.heldBytes -= n;
    this.budget.requestBytes -= n;
    assert(this.budget.requestBytes >= 0, () => `shared request bytes ${this.budget.requestBytes} after releasing ${n}`);
    this.creditConnection(n);
    if (stream.remoteEnded) return;
    stream.windowCredit += n;
    // Batched as the connection's credit is: one WINDOW_UPDATE once half the window is out.
    if (stream.recvWindow < Limits.http2StreamWindowBytes / 2) {
      this.queueWindowUpdate(stream.id, stream.windowCredit);
      stream.recvWindow += stream.windowCredit;
      stream.windowCredit = 0;
    }
  }

  /** @internal Reply bytes queued on a stream. */
  addPending(stream: Http2ServerStream, bytes: number): void {
    stream.pendingBytes += bytes;
    this.pendingBytes += bytes;
    this.budget.replyBytes += bytes;
  }

  private takePending(stream: Http2ServerStream, bytes: number): void {
    stream.pendingBytes -= bytes;
    this.pendingBytes -= bytes;
    this.budget.replyBytes -= bytes;
    assert(stream.pendingBytes >= 0 && this.pendingBytes >= 0 && this.budget.replyBytes >= 0, () => `pending reply bytes below 0 (stream ${stream.pendingBytes}, connection ${this.pendingBytes}, member ${this.budget.replyBytes})`);
  }

  private dropPending(stream: Http2ServerStream): void {
    if (stream.pendingBytes > 0) this.takePending(stream, stream.pendingBytes);
    stream.pending = [];
    stream.pendingOffset = 0;
  }

  private maybeFinishGoaway(): void {
    if (!this.goawayReceived || this.streams.size > 0 || this.dead) return;
    this.queueGoaway(Http2ErrorCode.NO_ERROR);
    this.endSocket();
  }

  // ---- outbound -----------------------------------------------------------------------------------

  /** @internal HEADERS (+ CONTINUATION) for a response or trailers. */
  sendHeaders(stream: Http2ServerStream, headerBlock: Buffer, endStream: boolean): void {
    this.pingStrikes = 0; // grpc-go forgives ping strikes when it sends HEADERS or DATA
    let block = headerBlock;
    if (this.tableSizeUpdate !== undefined) {
      block = Buffer.concat([encodeTableSizeUpdate(this.tableSizeUpdate), headerBlock]);
      this.tableSizeUpdate = undefined;
    }
    const max = this.peerMaxFrameBytes;
    const endFlag = endStream ? FLAG_END_STREAM : 0;
    if (block.length <= max) {
      this.queueFrame(FrameType.HEADERS, FLAG_END_HEADERS | endFlag, stream.id, block);
      return;
    }
    this.queueFrame(FrameType.HEADERS, endFlag, stream.id, block.subarray(0, max));
    for (let at = max; at < block.length; at += max) {
      const last = at + max >= block.length;
      this.queueFrame(FrameType.CONTINUATION, last ? FLAG_END_HEADERS : 0, stream.id, block.subarray(at, Math.min(block.length, at + max)));
    }
  }

  /** @internal Sends what the windows allow of a stream's pending DATA, then its trailers. */
  trySend(stream: Http2ServerStream): void {
    if (stream.closed) return;
    while (stream.pending.length > 0) {
      const window = Math.min(this.peerInitialWindow + stream.sendWindowDelta, this.sendWindow);
      // The socket takes a bounded amount at a time: a large reply goes out as the client reads.
      const socketFull = this.outBytes + this.socket.writableLength >= Limits.http2SocketBytesInFlightMax;
      if (window <= 0 || socketFull) {
        if (socketFull) this.waitingForDrain = true;
        if (!stream.blocked) {
          stream.blocked = true;
          this.blockedStreams.push(stream);
        }
        return;
      }
      const first = stream.pending[0]!;
      const n = Math.min(first.length - stream.pendingOffset, window, this.peerMaxFrameBytes);
      this.queueFrame(FrameType.DATA, 0, stream.id, first.subarray(stream.pendingOffset, stream.pendingOffset + n));
      this.pingStrikes = 0;
      this.dataBytesFramed += n;
      stream.sendWindowDelta -= n;
      this.sendWindow -= n;
      this.takePending(stream, n);
      stream.pendingOffset += n;
      if (stream.pendingOffset === first.length) {
        stream.pending.shift();
        stream.pendingOffset = 0;
      }
    }
    const trailers = stream.pendingTrailers;
    if (trailers !== undefined) {
      stream.pendingTrailers = undefined;
      this.sendHeaders(stream, trailers, true);
      this.endLocal(stream);
    }
  }

  private sendBlocked(): void {
    const blocked = this.blockedStreams;
    this.blockedStreams = [];
    for (let i = 0; i < blocked.length; i++) {
      const stream = blocked[i]!;
      stream.blocked = false;
      this.trySend(stream);
      if (this.waitingForDrain) {
        // The socket is full again: the rest stay blocked, in order, without being looked at.
        // (They still have `blocked` set: they were never taken out.)
        for (let j = i + 1; j < blocked.length; j++) {
          const rest = blocked[j]!;
          if (rest.closed) rest.blocked = false;
          else this.blockedStreams.push(rest);
        }
        return;
      }
    }
  }

  private sendReset(streamId: number, code: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(code, 0);
    this.queueFrame(FrameType.RST_STREAM, 0, streamId, payload);
  }

  private creditConnection(bytes: number): void {
    if (bytes === 0) return;
    this.connectionCredit += bytes;
    if (this.connectionCredit >= CONNECTION_CREDIT_BATCH_BYTES || this.recvWindow < Limits.http2ConnectionWindowBytes / 2) {
      this.queueWindowUpdate(0, this.connectionCredit);
      this.recvWindow += this.connectionCredit;
      this.connectionCredit = 0;
    }
  }

  private queueWindowUpdate(streamId: number, increment: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(increment, 0);
    this.queueFrame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
  }

  private queueGoaway(code: number, debugData?: Buffer): void {
    const payload = Buffer.allocUnsafe(8 + (debugData?.length ?? 0));
    payload.writeUInt32BE(this.lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    debugData?.copy(payload, 8);
    this.queueFrame(FrameType.GOAWAY, 0, 0, payload);
  }

  private queueFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    this.outUrgent = true;
    this.pushFrame(type, flags, streamId, payload);
  }

  /** Queues a frame that may wait for company (flush decides): a PING ACK. */
  private pushFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.dead) return;
    if (this.directStream !== undefined) assert(false, `frame of type ${type} queued while stream ${this.directStream.id} fills its DATA`);
    const at = this.room(FRAME_HEADER_BYTES + payload.length);
    const chunk = this.chunk!;
    writeFrameHeader(chunk, at, payload.length, type, flags, streamId);
    if (payload.length > 0) payload.copy(chunk, at + FRAME_HEADER_BYTES);
    this.outEnd = at + FRAME_HEADER_BYTES + payload.length;
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(flushConnection, this);
    }
  }

  /**
   * The offset in `chunk` where `bytes` more output can go (outEnd). A chunk without room grows
   * (what it holds is copied into one twice as large) while the turn's output still fits
   * Limits.http2OutputChunkBytes, so a turn of small replies is still one write; past that it is
   * written out (everything in it is whole frames) and a new chunk begun.
   */
  private room(bytes: number): number {
    const chunk = this.chunk;
    if (chunk !== undefined && chunk.length - this.outEnd >= bytes) return this.outEnd;
    const held = this.outEnd - this.outStart;
    let size = Math.max(bytes, this.chunkBytesHint);
    if (chunk !== undefined) {
      if (held + bytes <= Limits.http2OutputChunkBytes) size = Math.max(held + bytes, Math.min(Limits.http2OutputChunkBytes, chunk.length * 2));
      else {
        this.writeOut();
        if (chunk.length >= bytes && this.socket.writableLength === 0) {
          // The kernel took every byte (the write completed synchronously): nothing refers to
          // the chunk any more, so it is filled again rather than another allocated.
          this.outStart = 0;
          this.outEnd = 0;
          return 0;
        }
        size = Math.max(bytes, Limits.http2OutputChunkBytes);
      }
    }
    const next = Buffer.allocUnsafe(size);
    const kept = chunk === undefined ? 0 : chunk.copy(next, 0, this.outStart, this.outEnd);
    // A DATA frame being filled (writeDirect) moved with what was kept; it is never written out open.
    if (this.directFrameAt >= 0) {
      assert(kept > 0 && this.directFrameAt >= this.outStart, () => `an open DATA frame at ${this.directFrameAt} left the output chunk`);
      this.directFrameAt -= this.outStart;
    }
    this.chunk = next;
    this.outStart = 0;
    this.outEnd = kept;
    return kept;
  }

  /** Hands what is framed to the socket (one write), pausing reads if the socket holds too much. */
  private writeOut(): void {
    if (this.outEnd === this.outStart || this.dead) return;
    const data = this.chunk!.subarray(this.outStart, this.outEnd);
    this.turnBytes += data.length;
    this.outStart = this.outEnd;
    this.wroteThisTurn = true;
    if (this.holding) {
      // A held PING ACK went with it.
      this.holding = false;
      this.held?.delete(this);
    }
    // Not the preface's SETTINGS: a PING right after connecting is answered at once.
    if (this.lastStreamId > 0) this.lastWriteAt = performance.now();
    this.socket.write(data);
    if (this.socket.writableLength > SOCKET_BUFFER_BYTES_MAX && !this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    }
  }

  /** @internal See Http2ServerStream.writeDirect. */
  writeDirect(stream: Http2ServerStream, bytes: number, largestPieceBytes: number, writer: PieceWriter): boolean {
    if (this.dead || stream.closed || stream.pending.length > 0 || stream.pendingTrailers !== undefined) return false;
    if (largestPieceBytes > this.peerMaxFrameBytes) return false;
    if (Math.min(this.peerInitialWindow + stream.sendWindowDelta, this.sendWindow) < bytes) return false;
    if (this.outBytes + this.socket.writableLength >= Limits.http2SocketBytesInFlightMax) return false;
    assert(this.directStream === undefined, () => `stream ${stream.id} writes directly inside stream ${this.directStream!.id}'s write`);
    // Room for all of it (its frame headers too) up front, within one chunk: no growing piece by piece.
    this.room(Math.min(Limits.http2OutputChunkBytes, bytes + FRAME_HEADER_BYTES * (1 + Math.ceil(bytes / this.peerMaxFrameBytes))));
    this.directStream = stream;
    this.directBytes = 0;
    this.directFrameAt = -1;
    try {
      writer.writePieces(this.directOutput);
      this.closeDirectFrame();
    } finally {
      this.directStream = undefined;
      this.directFrameAt = -1;
    }
    assert(this.directBytes === bytes, () => `stream ${stream.id} wrote ${this.directBytes} bytes directly, announced ${bytes}`);
    this.outUrgent = true;
    this.pingStrikes = 0;
    this.dataBytesFramed += bytes;
    stream.sendWindowDelta -= bytes;
    this.sendWindow -= bytes;
    this.scheduleFlush();
    return true;
  }

  /** PieceOutput.reserve for the stream writing directly: `bytes` in the DATA frame being filled, or a new one. */
  private reserveDirect(bytes: number): number {
    // Once per piece: the message is built only on failure (no closure per call).
    if (this.directStream === undefined || bytes <= 0 || bytes > this.peerMaxFrameBytes) assert(false, `direct reserve of ${bytes} bytes (frame size ${this.peerMaxFrameBytes})`);
    const frameAt = this.directFrameAt;
    if (frameAt >= 0) {
      // The frame goes on unless the piece would pass the client's frame size, or the chunk must
      // be written out to make room (growing it keeps the frame: room moves it along).
      if (this.outEnd - frameAt - FRAME_HEADER_BYTES + bytes > this.peerMaxFrameBytes) this.closeDirectFrame();
      else if (this.chunk!.length - this.outEnd < bytes) {
        if (this.outBytes + bytes > Limits.http2OutputChunkBytes) this.closeDirectFrame();
        else this.room(bytes);
      }
    }
    if (this.directFrameAt < 0) {
      this.directFrameAt = this.room(FRAME_HEADER_BYTES + bytes);
      this.outEnd = this.directFrameAt + FRAME_HEADER_BYTES;
    }
    const at = this.outEnd;
    this.outEnd += bytes;
    this.directBytes += bytes;
    return at;
  }

  /** Writes the header of the DATA frame being filled, now that its length is known. */
  private closeDirectFrame(): void {
    const at = this.directFrameAt;
    if (at < 0) return;
    writeFrameHeader(this.chunk!, at, this.outEnd - at - FRAME_HEADER_BYTES, FrameType.DATA, 0, this.directStream!.id);
    this.directFrameAt = -1;
  }

  /** @internal Writes what this turn queued and lets the chunk go; work waiting for output to move may go on. */
  flush(): void {
    this.flushScheduled = false;
    if (this.dead) return;
    if (this.outBytes === 0 && !this.wroteThisTurn) return;
    if (this.outBytes > 0 && !this.outUrgent && this.held !== undefined && (this.streams.size > 0 || performance.now() - this.lastWriteAt < this.held.holdMs)) {
      // Only PING ACKs, and a call is open, or a reply went out a moment ago (a grpc-go client
      // with one call at a time PINGs as it reads each reply, before its next call): they ride
      // with the next reply, or go when the hold ends. An idle connection's PING is answered at once.
      if (!this.holding) {
        this.holding = true;
        this.held.add(this);
      }
      return;
    }
    this.outUrgent = false;
    this.writeOut();
    this.wroteThisTurn = false;
    // The chunk is kept for the next turn only when nothing refers to it any more (the socket took
    // every byte synchronously) and a stream is open (more output is likely); otherwise it goes, so
    // an idle connection holds no output buffer.
    if (this.socket.writableLength !== 0 || this.streams.size === 0) this.chunk = undefined;
    this.outStart = 0;
    this.outEnd = 0;
    this.chunkBytesHint = Math.min(Limits.http2OutputChunkBytes, Math.max(OUTPUT_CHUNK_BYTES_MIN, this.turnBytes));
    this.turnBytes = 0;
    if (!this.socket.writableNeedDrain) {
      if (this.waitingForDrain) {
        // The socket took it all at once (no 'drain' will come): go on after I/O has had its turn.
        this.waitingForDrain = false;
        setImmediate(resumeSending, this);
      } else {
        // Output waiting on the client's windows went out: work held back for it may start.
        this.handler.onWritable();
      }
    }
  }

  /** The hold ran out: what was held goes now. */
  flushHeld(): void {
    if (!this.holding) return;
    this.holding = false;
    this.outUrgent = true;
    this.flush();
  }

  /** @internal The socket can take more: blocked DATA goes on, held-back work may start. */
  resumeSending(): void {
    if (this.dead) return;
    this.sendBlocked();
    this.handler.onWritable();
  }

  private connectionError(code: number, reason: string): void {
    if (this.dead) return;
    this.logger.debug({ code, reason }, 'HTTP/2 connection error: GOAWAY');
    this.queueGoaway(code);
    this.endSocket();
  }

  /** Flushes what is queued (a GOAWAY last), ends the socket and lets every stream go. */
  private endSocket(): void {
    this.flush();
    this.teardown();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  private teardown(): void {
    if (this.dead) return;
    this.dead = true;
    this.chunk = undefined;
    this.outStart = 0;
    this.outEnd = 0;
    if (this.holding) {
      this.holding = false;
      this.held?.delete(this);
    }
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const stream of streams) {
      stream.closed = true;
      stream.localEnded = true;
      this.dropPending(stream);
      this.releaseHeld(stream);
      stream.handler?.onAbort();
    }
    this.blockedStreams = [];
  }
}

function writeFrameHeader(out: Buffer, at: number, length: number, type: number, flags: number, streamId: number): void {
  out[at] = length >>> 16;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  out.writeUInt32BE(streamId, at + 5);
}

function flushConnection(connection: Http2Connection): void {
  connection.flush();
}

function resumeSending(connection: Http2Connection): void {
  connection.resumeSending();
}

/** An HPACK dynamic table size update (RFC 7541 6.3): 001 + 5-bit prefix integer. */
function encodeTableSizeUpdate(size: number): Buffer {
  const bytes: number[] = [];
  if (size < 31) bytes.push(0x20 | size);
  else {
    bytes.push(0x20 | 31);
    let rest = size - 31;
    while (rest >= 0x80) {
      bytes.push((rest % 0x80) | 0x80);
      rest = Math.floor(rest / 0x80);
    }
    bytes.push(rest);
  }
  return Buffer.from(bytes);
}

