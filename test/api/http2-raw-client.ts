/**
 * A raw-frame HTTP/2 client for the API suites (http2-conformance, hostile-h2): frames built by
 * hand (9-byte header: 24-bit length, type, flags, 31-bit stream id), request header blocks
 * encoded with encodeWithoutIndexing (so the server's HPACK table for our direction stays empty),
 * every server header block decoded, in order, with one HpackDecoder per connection, and the
 * server's flow control checked as its DATA arrives.
 */
import { connect, type Socket } from 'node:net';
import * as assert from 'uvu/assert';
import { encodeWithoutIndexing, HpackDecoder, type HeaderField } from '../../src/http/hpack.js';
import { encode, messageType } from '../../src/proto/codec.js';

// ---------------------------------------------------------------------------------------------
// Frames

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const DATA = 0x0;
export const HEADERS = 0x1;
export const PRIORITY = 0x2;
export const RST_STREAM = 0x3;
export const SETTINGS = 0x4;
export const PUSH_PROMISE = 0x5;
export const PING = 0x6;
export const GOAWAY = 0x7;
export const WINDOW_UPDATE = 0x8;
export const CONTINUATION = 0x9;

export const FLAG_END_STREAM = 0x1;
export const FLAG_ACK = 0x1;
export const FLAG_END_HEADERS = 0x4;
export const FLAG_PADDED = 0x8;
export const FLAG_PRIORITY = 0x20;

export const SETTINGS_ENABLE_PUSH = 0x2;
export const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
export const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
export const SETTINGS_MAX_FRAME_SIZE = 0x5;

export const NO_ERROR = 0x0;
export const PROTOCOL_ERROR = 0x1;
export const FLOW_CONTROL_ERROR = 0x3;
export const STREAM_CLOSED = 0x5;
export const FRAME_SIZE_ERROR = 0x6;
export const COMPRESSION_ERROR = 0x9;
export const REFUSED_STREAM = 0x7;
export const ENHANCE_YOUR_CALM = 0xb;

export const TYPE_NAMES = ['DATA', 'HEADERS', 'PRIORITY', 'RST_STREAM', 'SETTINGS', 'PUSH_PROMISE', 'PING', 'GOAWAY', 'WINDOW_UPDATE', 'CONTINUATION'];
export const ERROR_NAMES = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED'];
export const errorName = (code: number): string => ERROR_NAMES[code] ?? `0x${code.toString(16)}`;

/** Default SETTINGS_MAX_FRAME_SIZE, which this client never raises. */
export const FRAME_PAYLOAD_MAX = 16_384;
/** Initial flow-control window of every stream and of the connection (RFC 9113 6.9.2). */
export const DEFAULT_WINDOW = 65_535;
export const WINDOW_MAX = 2 ** 31 - 1;

export const WAIT_MS = 5_000;

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  /** HEADERS only: the decoded header block (this frame's fragment and its CONTINUATIONs). */
  headers?: HeaderField[];
}

export function frame(type: number, flags: number, streamId: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId >>> 0, 5);
  out.set(payload, 9);
  return out;
}

export function settingsFrame(pairs: Array<[id: number, value: number]> = []): Buffer {
  const payload = Buffer.alloc(6 * pairs.length);
  pairs.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value >>> 0, 6 * i + 2);
  });
  return frame(SETTINGS, 0, 0, payload);
}

export function pingFrame(data: Buffer, flags = 0): Buffer {
  return frame(PING, flags, 0, data);
}

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment >>> 0, 0);
  return frame(WINDOW_UPDATE, 0, streamId, payload);
}

export function goawayFrame(lastStreamId: number, code: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(lastStreamId, 0);
  payload.writeUInt32BE(code, 4);
  return frame(GOAWAY, 0, 0, payload);
}

export function priorityPayload(dependency: number, weight: number, exclusive = false): Buffer {
  const out = Buffer.alloc(5);
  out.writeUInt32BE((dependency | (exclusive ? 0x80000000 : 0)) >>> 0, 0);
  out[4] = weight;
  return out;
}

export interface HeadersOptions {
  endStream?: boolean;
  endHeaders?: boolean;
  padding?: number;
  priority?: Buffer;
}

export function headersFrame(streamId: number, block: Uint8Array, o: HeadersOptions = {}): Buffer {
  let flags = (o.endStream ? FLAG_END_STREAM : 0) | (o.endHeaders === false ? 0 : FLAG_END_HEADERS);
  const parts: Uint8Array[] = [];
  if (o.padding !== undefined) {
    flags |= FLAG_PADDED;
    parts.push(Buffer.from([o.padding]));
  }
  if (o.priority !== undefined) {
    flags |= FLAG_PRIORITY;
    parts.push(o.priority);
  }
  parts.push(block);
  if (o.padding !== undefined) parts.push(Buffer.alloc(o.padding));
  return frame(HEADERS, flags, streamId, Buffer.concat(parts));
}

export function dataFrame(streamId: number, data: Uint8Array, o: { endStream?: boolean; padding?: number } = {}): Buffer {
  let flags = o.endStream ? FLAG_END_STREAM : 0;
  if (o.padding === undefined) return frame(DATA, flags, streamId, data);
  flags |= FLAG_PADDED;
  return frame(DATA, flags, streamId, Buffer.concat([Buffer.from([o.padding]), data, Buffer.alloc(o.padding)]));
}

export function describe(f: Frame): string {
  const name = TYPE_NAMES[f.type] ?? `0x${f.type.toString(16)}`;
  let detail = '';
  if (f.type === GOAWAY && f.payload.length >= 8) detail = ` ${errorName(f.payload.readUInt32BE(4))}`;
  if (f.type === RST_STREAM && f.payload.length >= 4) detail = ` ${errorName(f.payload.readUInt32BE(0))}`;
  if (f.type === WINDOW_UPDATE && f.payload.length >= 4) detail = ` +${f.payload.readUInt32BE(0) & 0x7fffffff}`;
  if (f.headers !== undefined) detail = ` ${JSON.stringify(f.headers)}`;
  return `${name}(stream ${f.streamId}, flags 0x${f.flags.toString(16)}, ${f.payload.length} bytes${detail})`;
}

/** The body of a DATA frame: its payload without the pad length byte and padding. */
export function dataOf(f: Frame): Buffer {
  if ((f.flags & FLAG_PADDED) === 0) return f.payload;
  const pad = f.payload[0] ?? 0;
  return f.payload.subarray(1, f.payload.length - pad);
}

/** The header block fragment of a HEADERS frame, without padding and priority fields. */
export function headerFragmentOf(f: Frame): Buffer {
  let start = 0;
  let end = f.payload.length;
  if (f.flags & FLAG_PADDED) {
    end -= f.payload[0] ?? 0;
    start += 1;
  }
  if (f.flags & FLAG_PRIORITY) start += 5;
  return f.payload.subarray(start, Math.max(start, end));
}

// ---------------------------------------------------------------------------------------------
// The raw client

export const openConnections = new Set<RawConnection>();

export interface ConnectOptions {
  /** ACK the server's SETTINGS as they arrive (a well-behaved client does). Default true. */
  ackSettings?: boolean;
  /** Decode the server's header blocks; off in the fuzz, where we may have changed the table size. Default true. */
  decodeHeaders?: boolean;
}

export class RawConnection {
  readonly socket: Socket;
  /** Every frame the server sent, in order (a HEADERS is added once its block is complete). */
  readonly frames: Frame[] = [];
  private readonly consumed = new Set<Frame>();
  private readonly waiters = new Set<() => void>();
  private buffer: Buffer = Buffer.alloc(0);
  private pendingBlock: { headers: Frame; continuations: Frame[]; fragments: Buffer[] } | undefined;
  private readonly decoder = new HpackDecoder({ tableBytesMax: 4096, headerListBytesMax: 1 << 20 });
  private nextStream = 1;
  closed = false;
  socketError: Error | undefined;
  readonly closedPromise: Promise<void>;
  /** What the server did wrong on the way in: HPACK errors, frames inside a header block, flow-control overruns, oversized frames. */
  readonly violations: string[] = [];

  // Flow control of the server's DATA towards us.
  /** SETTINGS_INITIAL_WINDOW_SIZE we last announced. */
  private announcedStreamWindow = DEFAULT_WINDOW;
  private connectionCredit = DEFAULT_WINDOW;
  private readonly streamCredit = new Map<number, number>();
  connectionData = 0;
  readonly streamData = new Map<number, number>();
  largestDataFrame = 0;

  constructor(port: number, private readonly options: ConnectOptions = {}) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    openConnections.add(this);
    this.closedPromise = new Promise((resolve) => {
      this.socket.on('close', () => {
        this.closed = true;
        this.notify();
        resolve();
      });
    });
    this.socket.on('error', (err) => (this.socketError = err));
    this.socket.on('data', (chunk: Buffer) => this.receive(chunk));
    this.socket.write(PREFACE);
  }

  newStreamId(): number {
    const id = this.nextStream;
    this.nextStream += 2;
    return id;
  }

  /** Writes whole frames in one write, tracking the windows and settings we grant. */
  send(...frames: Buffer[]): void {
    const bytes = Buffer.concat(frames);
    for (let at = 0; at + 9 <= bytes.length; ) {
      const length = bytes.readUIntBE(at, 3);
      const type = bytes[at + 3]!;
      const flags = bytes[at + 4]!;
      const streamId = bytes.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = bytes.subarray(at + 9, at + 9 + length);
      // Streams opened by hand count too: newStreamId() goes past them.
      if (type === HEADERS && streamId % 2 === 1) this.nextStream = Math.max(this.nextStream, streamId + 2);
      if (type === WINDOW_UPDATE && payload.length === 4) {
        const increment = payload.readUInt32BE(0) & 0x7fffffff;
        if (streamId === 0) this.connectionCredit += increment;
        else this.streamCredit.set(streamId, (this.streamCredit.get(streamId) ?? 0) + increment);
      }
      if (type === SETTINGS && (flags & FLAG_ACK) === 0) {
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          if (payload.readUInt16BE(i) === SETTINGS_INITIAL_WINDOW_SIZE) this.announcedStreamWindow = payload.readUInt32BE(i + 2);
        }
      }
      at += 9 + length;
    }
    this.sendRaw(bytes);
  }

  /** Writes bytes as they are (frames with lengths that lie, for instance). */
  sendRaw(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes, () => undefined);
  }

  destroy(): void {
    this.socket.destroy();
    openConnections.delete(this);
  }

  /** Resolves once `condition` holds (re-checked on every frame and on close); rejects after timeoutMs or when the socket closes first. */
  waitFor<T>(condition: () => T | undefined, what: string, timeoutMs = WAIT_MS): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const value = condition();
        if (value !== undefined) {
          done();
          resolve(value);
          return true;
        }
        if (this.closed) {
          done();
          reject(new Error(`socket closed while waiting for ${what}${this.socketError ? ` (${this.socketError.message})` : ''}; server sent: ${this.transcript()}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${what} within ${timeoutMs} ms; server sent: ${this.transcript()}`));
      }, timeoutMs);
      const waiter = (): void => void check();
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      if (!check()) this.waiters.add(waiter);
    });
  }

  /** The first not yet returned frame matching `predicate`, waiting for it if need be. */
  nextFrame(predicate: (f: Frame) => boolean, what: string, timeoutMs = WAIT_MS): Promise<Frame> {
    return this.waitFor(() => {
      const found = this.frames.find((f) => !this.consumed.has(f) && predicate(f));
      if (found !== undefined) this.consumed.add(found);
      return found;
    }, what, timeoutMs);
  }

  waitForClose(timeoutMs = WAIT_MS): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms; server sent: ${this.transcript()}`)), timeoutMs);
      void this.closedPromise.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Sends a PING and waits for its ACK: every frame the server sent before answering it has arrived. */
  async roundTrip(what = 'PING ACK'): Promise<void> {
    const data = Buffer.from(Math.floor(Math.random() * 2 ** 48).toString(16).padStart(16, '0'), 'hex');
    this.send(pingFrame(data));
    await this.nextFrame((f) => f.type === PING && (f.flags & FLAG_ACK) !== 0 && f.payload.equals(data), what);
  }

  transcript(): string {
    const shown = this.frames.slice(0, 40).map(describe).join(', ');
    return `[${shown}${this.frames.length > 40 ? `, ... ${this.frames.length - 40} more` : ''}]${this.closed ? ' then closed' : ''}`;
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private receive(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    let at = 0;
    while (this.buffer.length - at >= 9) {
      const length = this.buffer.readUIntBE(at, 3);
      if (this.buffer.length - at < 9 + length) break;
      const f: Frame = {
        type: this.buffer[at + 3]!,
        flags: this.buffer[at + 4]!,
        streamId: this.buffer.readUInt32BE(at + 5) & 0x7fffffff,
        payload: Buffer.from(this.buffer.subarray(at + 9, at + 9 + length)),
      };
      at += 9 + length;
      this.onFrame(f);
    }
    this.buffer = this.buffer.subarray(at);
    this.notify();
  }

  private onFrame(f: Frame): void {
    if (f.payload.length > FRAME_PAYLOAD_MAX) this.violations.push(`frame over ${FRAME_PAYLOAD_MAX} bytes: ${describe(f)}`);
    if (this.pendingBlock !== undefined) {
      const block = this.pendingBlock;
      if (f.type !== CONTINUATION || f.streamId !== block.headers.streamId) {
        this.violations.push(`${describe(f)} inside the header block of stream ${block.headers.streamId}`);
        this.frames.push(f);
        return;
      }
      block.continuations.push(f);
      block.fragments.push(f.payload);
      if (f.flags & FLAG_END_HEADERS) {
        this.pendingBlock = undefined;
        this.completeBlock(block.headers, Buffer.concat(block.fragments));
        this.frames.push(block.headers, ...block.continuations);
      }
      return;
    }
    switch (f.type) {
      case HEADERS:
        if (f.flags & FLAG_END_HEADERS) {
          this.completeBlock(f, headerFragmentOf(f));
          break;
        }
        this.pendingBlock = { headers: f, continuations: [], fragments: [headerFragmentOf(f)] };
        return;
      case CONTINUATION:
        this.violations.push(`CONTINUATION without a HEADERS: ${describe(f)}`);
        break;
      case DATA: {
        this.connectionData += f.payload.length;
        const onStream = (this.streamData.get(f.streamId) ?? 0) + f.payload.length;
        this.streamData.set(f.streamId, onStream);
        this.largestDataFrame = Math.max(this.largestDataFrame, f.payload.length);
        if (this.connectionData > this.connectionCredit) {
          this.violations.push(`connection window overrun: ${this.connectionData} DATA bytes received, ${this.connectionCredit} granted`);
        }
        const streamCredit = this.announcedStreamWindow + (this.streamCredit.get(f.streamId) ?? 0);
        if (onStream > streamCredit) this.violations.push(`stream ${f.streamId} window overrun: ${onStream} DATA bytes received, ${streamCredit} granted`);
        break;
      }
      case SETTINGS:
        if ((f.flags & FLAG_ACK) === 0 && this.options.ackSettings !== false) this.sendRaw(frame(SETTINGS, FLAG_ACK, 0));
        break;
    }
    this.frames.push(f);
  }

  private completeBlock(f: Frame, block: Buffer): void {
    if (this.options.decodeHeaders === false) return;
    try {
      f.headers = this.decoder.decode(block);
    } catch (err) {
      this.violations.push(`server header block of stream ${f.streamId} does not decode: ${(err as Error).message}`);
    }
  }
}

/** A connection past the preface and an (empty unless given) client SETTINGS. */
export function openRaw(port: number, settings: Array<[number, number]> = [], options: ConnectOptions = {}): RawConnection {
  const c = new RawConnection(port, options);
  c.send(settingsFrame(settings));
  return c;
}

// ---------------------------------------------------------------------------------------------
// gRPC over the raw client

export const putType = messageType('etcdserverpb.PutRequest');
export const putResponseType = messageType('etcdserverpb.PutResponse');
export const rangeType = messageType('etcdserverpb.RangeRequest');
export const rangeResponseType = messageType('etcdserverpb.RangeResponse');
export const statusType = messageType('etcdserverpb.StatusRequest');
export const statusResponseType = messageType('etcdserverpb.StatusResponse');

export function grpcMessage(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

export function requestHeaders(path: string, authority = '127.0.0.1'): HeaderField[] {
  return [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', authority],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
  ];
}

export const putRequest = (key: string, value: string | Buffer = 'v'): Buffer => grpcMessage(encode(putType, { key: Buffer.from(key), value: Buffer.from(value) }));

/** HEADERS (END_HEADERS) + DATA (END_STREAM) for one unary call. */
export function unaryFrames(streamId: number, path: string, message: Buffer, authority?: string): Buffer[] {
  return [headersFrame(streamId, encodeWithoutIndexing(requestHeaders(path, authority))), dataFrame(streamId, message, { endStream: true })];
}

export interface Answer {
  headers: HeaderField[];
  trailers: HeaderField[];
  /** All DATA of the stream, padding removed. */
  body: Buffer;
  frames: Frame[];
}

export const field = (fields: HeaderField[], name: string): string | undefined => fields.find(([n]) => n === name)?.[1];

/** Waits for stream `streamId` to end (END_STREAM from the server) and gathers its answer; a RST_STREAM or GOAWAY fails. */
export async function readAnswer(c: RawConnection, streamId: number): Promise<Answer> {
  const end = await c.waitFor(
    () =>
      c.frames.find(
        (f) =>
          (f.streamId === streamId && (f.type === RST_STREAM || ((f.type === HEADERS || f.type === DATA) && f.flags & FLAG_END_STREAM))) ||
          // A GOAWAY that leaves this stream out: it will not be answered.
          (f.type === GOAWAY && f.payload.length >= 4 && (f.payload.readUInt32BE(0) & 0x7fffffff) < streamId),
      ),
    `the end of stream ${streamId}`,
  );
  if (end.type !== HEADERS && end.type !== DATA) throw new Error(`stream ${streamId} ended by ${describe(end)}; server sent: ${c.transcript()}`);
  const frames = c.frames.filter((f) => f.streamId === streamId);
  const blocks = frames.filter((f) => f.type === HEADERS);
  for (const b of blocks) if (b.headers === undefined) throw new Error(`undecoded header block: ${c.violations.join('; ')}`);
  const first = blocks[0]!;
  const trailersOnly = (first.flags & FLAG_END_STREAM) !== 0;
  return {
    headers: first.headers!,
    trailers: trailersOnly ? first.headers! : (blocks[1]?.headers ?? []),
    body: Buffer.concat(frames.filter((f) => f.type === DATA).map(dataOf)),
    frames,
  };
}

/** Exactly one uncompressed gRPC message in `body`: its payload. */
export function onlyMessage(body: Buffer): Buffer {
  assert.ok(body.length >= 5, `a gRPC message needs 5 bytes of prefix, got ${body.length}`);
  assert.is(body[0], 0, 'uncompressed');
  assert.is(body.readUInt32BE(1), body.length - 5, 'one message, its length prefix covering the rest of the DATA');
  return body.subarray(5);
}

/** The checks every successful unary answer passes; returns the response message bytes. */
export function assertOk(a: Answer): Buffer {
  assert.is(field(a.headers, ':status'), '200');
  assert.is(field(a.headers, 'content-type'), 'application/grpc');
  const last = a.frames.filter((f) => f.type === HEADERS).at(-1)!;
  assert.ok(last.flags & FLAG_END_STREAM, 'the trailers end the stream');
  assert.is(field(a.trailers, 'grpc-status'), '0', `trailers ${JSON.stringify(a.trailers)}`);
  return onlyMessage(a.body);
}

