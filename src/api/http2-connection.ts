/**
 * The server side of one HTTP/2 connection (RFC 9113), as much as gRPC needs: frames, HPACK,
 * streams and flow control in both directions, over a plain socket. grpc-server.ts builds gRPC
 * calls on the streams this hands out.
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
 * gRPC receive limit, so a unary request never waits; a long-lived stream is credited back once
 * half its window is used. The connection window is Limits.http2ConnectionWindowBytes and bytes are
 * credited back only when the stream holding them closes: that bounds the request bytes one
 * connection can make us hold. Send side: DATA never exceeds the client's stream and connection
 * windows nor its SETTINGS_MAX_FRAME_SIZE; what does not fit waits, per stream, for WINDOW_UPDATE.
 *
 * Output is gathered and written once per tick (process.nextTick: after every promise hop of the
 * replies resolved in this turn); when the socket's buffer is full we stop reading the client
 * until it drains, so a client that does not read cannot make us queue without bound.
 *
 * Errors: a connection error sends GOAWAY(last stream, code) and ends the socket; a stream error
 * sends RST_STREAM(code) and the connection goes on (RFC 9113 5.4).
 */
import type { Socket } from 'node:net';
import type { Logger } from '../platform/logger.js';
import { Limits } from '../platform/limits.js';
import { HpackDecoder, HpackError, type HeaderField } from './hpack.js';

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
/** Output the socket may buffer before we stop reading the client. */
const SOCKET_BUFFER_BYTES_MAX = 4 * 1024 * 1024;
const UPPERCASE = /[A-Z]/;
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

/** The decoded request header list, by name (a repeated name keeps its first value). */
export type RequestHeaders = Map<string, string>;

export interface Http2ConnectionHandler {
  /**
   * A client opened a stream. Answer at once (respond with endStream), or set `stream.handler`
   * to receive the body; its onEnd follows at once when the HEADERS frame ended the client side.
   */
  onStream(stream: Http2ServerStream, headers: RequestHeaders): void;
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
  /** Invariant: may be negative after the client shrinks SETTINGS_INITIAL_WINDOW_SIZE (RFC 9113 6.9.2). */
  sendWindow: number;
  recvWindow: number;
  /** Request bytes received on this stream not yet credited back to the connection window. */
  heldBytes = 0;
  /** DATA waiting for window, oldest first; `pendingOffset` bytes of the first already went. */
  pending: Buffer[] = [];
  pendingOffset = 0;
  /** Trailers to send (with END_STREAM) once `pending` has drained. */
  pendingTrailers: Buffer | undefined;
  /** In the connection's list of streams waiting for window. */
  blocked = false;

  constructor(readonly id: number, private readonly connection: Http2Connection, sendWindow: number) {
    this.sendWindow = sendWindow;
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
    this.connection.trySend(this);
  }

  /** Trailers with END_STREAM, after every byte written. */
  end(trailerBlock: Buffer): void {
    if (this.localEnded) return;
    this.pendingTrailers = trailerBlock;
    this.localEnded = true;
    this.connection.trySend(this);
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
}

export class Http2Connection {
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

  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private readingPaused = false;
  private goawayReceived = false;
  private dead = false;

  constructor(
    private readonly socket: Socket,
    private readonly handler: Http2ConnectionHandler,
    private readonly logger: Logger,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => {
      this.logger.debug({ err }, 'HTTP/2 connection socket error');
      this.teardown();
    });
    socket.on('close', () => this.teardown());
    socket.on('drain', () => {
      if (this.readingPaused && !this.dead) {
        this.readingPaused = false;
        this.socket.resume();
      }
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
        if ((flags & FLAG_ACK) === 0) this.queueFrame(FrameType.PING, FLAG_ACK, 0, Buffer.from(payload));
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
    stream.recvWindow -= length;
    stream.heldBytes += length;
    const end = (flags & FLAG_END_STREAM) !== 0;
    if (end) stream.remoteEnded = true;
    else if (stream.recvWindow < Limits.http2StreamWindowBytes / 2) {
      // A long-lived stream: open its window again (unary requests never get here).
      this.queueWindowUpdate(stream.id, Limits.http2StreamWindowBytes - stream.recvWindow);
      stream.recvWindow = Limits.http2StreamWindowBytes;
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
    const block: HeaderBlockInProgress = { streamId, endStream: (flags & FLAG_END_STREAM) !== 0, fragments: [fragment], bytes: fragment.length };
    if (flags & FLAG_END_HEADERS) this.onHeaderBlock(block);
    else this.headerBlock = block;
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.headerBlock;
    if (block === undefined || block.streamId !== streamId) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without a header block');
    block.fragments.push(payload);
    block.bytes += payload.length;
    if (block.bytes > Limits.http2HeaderBlockBytesMax) throw new ConnectionError(Http2ErrorCode.ENHANCE_YOUR_CALM, `header block over ${Limits.http2HeaderBlockBytesMax} bytes`);
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
      if ((pseudo && regularSeen) || UPPERCASE.test(name)) {
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
    const stream = new Http2ServerStream(id, this, this.peerInitialWindow);
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
    this.close(stream);
    stream.handler?.onAbort();
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & FLAG_ACK) {
      if (payload.length !== 0) throw new ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(Http2ErrorCode.FRAME_SIZE_ERROR, `SETTINGS of ${payload.length} bytes`);
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
        case SETTINGS_INITIAL_WINDOW_SIZE: {
          if (value > WINDOW_BYTES_MAX) throw new ConnectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, `INITIAL_WINDOW_SIZE ${value}`);
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const stream of this.streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > WINDOW_BYTES_MAX) throw new ConnectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, `stream ${stream.id} window over 2^31-1`);
          }
          if (delta > 0) this.sendBlocked();
          break;
        }
        case SETTINGS_MAX_FRAME_SIZE:
          if (value < DEFAULT_FRAME_BYTES || value > FRAME_BYTES_LIMIT) throw new ConnectionError(Http2ErrorCode.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value}`);
          this.peerMaxFrameBytes = value;
          break;
        default:
          break; // MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE (we open no streams; our headers are tiny), unknown
      }
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
    stream.sendWindow += increment;
    if (stream.sendWindow > WINDOW_BYTES_MAX) {
      this.resetStream(stream, Http2ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
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
    stream.pending = [];
    stream.pendingTrailers = undefined;
    this.streams.delete(stream.id);
    this.creditConnection(stream.heldBytes);
    stream.heldBytes = 0;
    this.maybeFinishGoaway();
  }

  private maybeFinishGoaway(): void {
    if (!this.goawayReceived || this.streams.size > 0 || this.dead) return;
    this.queueGoaway(Http2ErrorCode.NO_ERROR);
    this.endSocket();
  }

  // ---- outbound -----------------------------------------------------------------------------------

  /** @internal HEADERS (+ CONTINUATION) for a response or trailers. */
  sendHeaders(stream: Http2ServerStream, headerBlock: Buffer, endStream: boolean): void {
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
      const window = Math.min(stream.sendWindow, this.sendWindow);
      if (window <= 0) {
        if (!stream.blocked) {
          stream.blocked = true;
          this.blockedStreams.push(stream);
        }
        return;
      }
      const first = stream.pending[0]!;
      const n = Math.min(first.length - stream.pendingOffset, window, this.peerMaxFrameBytes);
      this.queueFrame(FrameType.DATA, 0, stream.id, first.subarray(stream.pendingOffset, stream.pendingOffset + n));
      stream.sendWindow -= n;
      this.sendWindow -= n;
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
    for (const stream of blocked) {
      stream.blocked = false;
      this.trySend(stream);
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

  private queueGoaway(code: number): void {
    const payload = Buffer.allocUnsafe(8);
    payload.writeUInt32BE(this.lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    this.queueFrame(FrameType.GOAWAY, 0, 0, payload);
  }

  private queueFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.dead) return;
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    header.writeUIntBE(payload.length, 0, 3);
    header[3] = type;
    header[4] = flags;
    header.writeUInt32BE(streamId, 5);
    this.out.push(header);
    this.outBytes += FRAME_HEADER_BYTES;
    if (payload.length > 0) {
      this.out.push(payload);
      this.outBytes += payload.length;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(flushConnection, this);
    }
  }

  /** @internal Writes everything queued in one socket write. */
  flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.dead) return;
    const data = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    this.socket.write(data);
    if (this.socket.writableLength > SOCKET_BUFFER_BYTES_MAX && !this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    }
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
    this.out = [];
    this.outBytes = 0;
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const stream of streams) {
      stream.closed = true;
      stream.localEnded = true;
      stream.handler?.onAbort();
    }
  }
}

function flushConnection(connection: Http2Connection): void {
  connection.flush();
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

