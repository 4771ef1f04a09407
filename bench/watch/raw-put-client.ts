/**
 * A minimal gRPC client for one method, KV.Put, written on a raw TCP socket: the watch bench's
 * writer. It exists because a load generator that shares the 2 cores with the server must cost
 * little per call: @grpc/grpc-js spent about 100-300 µs of the writer's CPU per put here and
 * node:http2's client streams not much less, so at 4,000 puts/s the writer needed half a core,
 * and its own queue (calls made in a burst after a late timer, then written one by one) was in
 * every put's measured latency (the member's own put latency, timed in the handler, was a small
 * part of it). This one writes each put as two frames (HEADERS from one precomputed HPACK block,
 * DATA with the gRPC message) in one socket write, and reads only frame headers back.
 *
 * What it speaks of HTTP/2 (RFC 9113), all a unary call needs against keyraft and etcd 3.4:
 *   - out: the preface, an empty SETTINGS, and a WINDOW_UPDATE opening the connection's receive
 *     window wide (replenished as replies arrive); then per call HEADERS (END_HEADERS) and DATA
 *     (END_STREAM) on the next odd stream id, within the server's connection send window and
 *     SETTINGS_MAX_CONCURRENT_STREAMS (calls past either wait, in order, and leave as replies
 *     free room);
 *   - in: SETTINGS (acknowledged), PING (answered), WINDOW_UPDATE on stream 0 (send window),
 *     HEADERS/DATA/RST_STREAM/GOAWAY by their frame header only. The header block is never
 *     decoded, so the client keeps no HPACK state: a call succeeded when its stream ended after a
 *     DATA frame (the PutResponse); a gRPC error is a trailers-only answer (HEADERS with
 *     END_STREAM and no DATA), and a reset or GOAWAY fails the calls it covers.
 */
import { connect, type Socket } from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
const enum Frame { DATA = 0, HEADERS = 1, RST_STREAM = 3, SETTINGS = 4, PING = 6, GOAWAY = 7, WINDOW_UPDATE = 8, CONTINUATION = 9 }
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
/** RFC 9113 6.9.2: the connection window before any WINDOW_UPDATE. */
const DEFAULT_WINDOW_BYTES = 65_535;
/** Our connection receive window: opened to this at start, topped up when half is used. */
const RECEIVE_WINDOW_BYTES = 1 << 30;

/** HPACK (RFC 7541) literal header fields without indexing, no Huffman: the same bytes for every call. */
function headerBlock(authority: string, path: string): Buffer {
  const parts: number[] = [];
  const str = (s: string): void => {
    if (s.length >= 127) throw new Error(`header value too long for this encoder: ${s}`);
    parts.push(s.length, ...Buffer.from(s, 'latin1'));
  };
  parts.push(0x83); // :method POST (static index 3)
  parts.push(0x86); // :scheme http (static index 6)
  parts.push(0x04); str(path); // :path, name from static index 4
  parts.push(0x01); str(authority); // :authority, name from static index 1
  parts.push(0x0f, 31 - 15); str('application/grpc'); // content-type, static index 31 (4-bit prefix: 15 + 16)
  parts.push(0x00); str('te'); str('trailers'); // te, a new name
  return Buffer.from(parts);
}

function frameHeader(buf: Buffer, at: number, length: number, type: number, flags: number, streamId: number): void {
  buf.writeUIntBE(length, at, 3);
  buf[at + 3] = type;
  buf[at + 4] = flags;
  buf.writeUInt32BE(streamId, at + 5);
}

interface Call { frames: Buffer; dataBytes: number; done: (ok: boolean) => void }

export class RawPutClient {
  private readonly socket: Socket;
  private readonly headers: Buffer;
  private nextStreamId = 1;
  private sendWindow = DEFAULT_WINDOW_BYTES;
  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS: unlimited until its SETTINGS say (RFC 9113 6.5.2). */
  private maxConcurrent = Number.POSITIVE_INFINITY;
  private readonly open = new Map<number, { done: (ok: boolean) => void; hadData: boolean }>();
  private readonly waiting: Call[] = [];
  private waitingHead = 0;
  private received = 0;
  private pending: Buffer = Buffer.alloc(0);
  private closed = false;

  private constructor(socket: Socket, authority: string) {
    this.socket = socket;
    this.headers = headerBlock(authority, '/etcdserverpb.KV/Put');
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.failAll());
    socket.on('close', () => this.failAll());
    const settings = Buffer.alloc(FRAME_HEADER_BYTES);
    frameHeader(settings, 0, 0, Frame.SETTINGS, 0, 0);
    socket.write(Buffer.concat([PREFACE, settings, this.windowUpdate(RECEIVE_WINDOW_BYTES - DEFAULT_WINDOW_BYTES)]));
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawPutClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawPutClient(socket, `${host}:${port}`));
      });
    });
  }

  /** One Put with this encoded PutRequest; `done(true)` once the server answered it with a PutResponse. */
  put(message: Uint8Array, done: (ok: boolean) => void): void {
    if (this.closed) {
      done(false);
      return;
    }
    const dataBytes = 5 + message.length;
    const frames = Buffer.allocUnsafe(FRAME_HEADER_BYTES + this.headers.length + FRAME_HEADER_BYTES + dataBytes);
    // Stream ids are filled in when the call leaves: a call that waits must not hold an id
    // below one already used (ids go up in the order streams open).
    frameHeader(frames, 0, this.headers.length, Frame.HEADERS, END_HEADERS, 0);
    this.headers.copy(frames, FRAME_HEADER_BYTES);
    const data = FRAME_HEADER_BYTES + this.headers.length;
    frameHeader(frames, data, dataBytes, Frame.DATA, END_STREAM, 0);
    frames[data + FRAME_HEADER_BYTES] = 0; // gRPC: not compressed
    frames.writeUInt32BE(message.length, data + FRAME_HEADER_BYTES + 1);
    frames.set(message, data + FRAME_HEADER_BYTES + 5);
    const call = { frames, dataBytes, done };
    if (this.waitingHead < this.waiting.length || !this.trySend(call)) this.waiting.push(call);
  }

  close(): void {
    this.closed = true;
    this.socket.end();
  }

  private trySend(call: Call): boolean {
    if (this.open.size >= this.maxConcurrent || this.sendWindow < call.dataBytes) return false;
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    call.frames.writeUInt32BE(id, 5);
    call.frames.writeUInt32BE(id, FRAME_HEADER_BYTES + this.headers.length + 5);
    this.sendWindow -= call.dataBytes;
    this.open.set(id, { done: call.done, hadData: false });
    this.socket.write(call.frames);
    return true;
  }

  private sendWaiting(): void {
    while (this.waitingHead < this.waiting.length && this.trySend(this.waiting[this.waitingHead]!)) this.waitingHead++;
    if (this.waitingHead === this.waiting.length) {
      this.waiting.length = 0;
      this.waitingHead = 0;
    }
  }

  private windowUpdate(increment: number): Buffer {
    const frame = Buffer.alloc(FRAME_HEADER_BYTES + 4);
    frameHeader(frame, 0, 4, Frame.WINDOW_UPDATE, 0, 0);
    frame.writeUInt32BE(increment, FRAME_HEADER_BYTES);
    return frame;
  }

  private onData(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let at = 0;
    const buf = this.pending;
    while (buf.length - at >= FRAME_HEADER_BYTES) {
      const length = buf.readUIntBE(at, 3);
      if (buf.length - at - FRAME_HEADER_BYTES < length) break;
      const type = buf[at + 3]!;
      const flags = buf[at + 4]!;
      const streamId = buf.readUInt32BE(at + 5) & 0x7fffffff;
      this.onFrame(type, flags, streamId, buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length));
      at += FRAME_HEADER_BYTES + length;
    }
    this.pending = at === buf.length ? Buffer.alloc(0) : buf.subarray(at);
    this.sendWaiting();
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    switch (type) {
      case Frame.SETTINGS:
        if ((flags & ACK) !== 0) return;
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          if (payload.readUInt16BE(i) === SETTINGS_MAX_CONCURRENT_STREAMS) this.maxConcurrent = payload.readUInt32BE(i + 2);
        }
        this.socket.write(Buffer.from([0, 0, 0, Frame.SETTINGS, ACK, 0, 0, 0, 0]));
        return;
      case Frame.PING: {
        if ((flags & ACK) !== 0) return;
        const ack = Buffer.alloc(FRAME_HEADER_BYTES + 8);
        frameHeader(ack, 0, 8, Frame.PING, ACK, 0);
        payload.copy(ack, FRAME_HEADER_BYTES);
        this.socket.write(ack);
        return;
      }
      case Frame.WINDOW_UPDATE:
        if (streamId === 0) this.sendWindow += payload.readUInt32BE(0) & 0x7fffffff;
        return;
      case Frame.DATA: {
        this.received += payload.length;
        if (this.received >= RECEIVE_WINDOW_BYTES / 2) {
          this.socket.write(this.windowUpdate(this.received));
          this.received = 0;
        }
        const call = this.open.get(streamId);
        if (call !== undefined && payload.length > 0) call.hadData = true;
        if ((flags & END_STREAM) !== 0) this.finish(streamId);
        return;
      }
      case Frame.HEADERS:
      case Frame.CONTINUATION:
        if ((flags & END_STREAM) !== 0) this.finish(streamId);
        return;
      case Frame.RST_STREAM: {
        const call = this.open.get(streamId);
        if (call === undefined) return;
        this.open.delete(streamId);
        call.done(false);
        return;
      }
      case Frame.GOAWAY:
        this.failAll();
        this.socket.destroy();
        return;
      default:
    }
  }

  private finish(streamId: number): void {
    const call = this.open.get(streamId);
    if (call === undefined) return;
    this.open.delete(streamId);
    call.done(call.hadData);
  }

  private failAll(): void {
    this.closed = true;
    for (const call of this.open.values()) call.done(false);
    this.open.clear();
    for (let i = this.waitingHead; i < this.waiting.length; i++) this.waiting[i]!.done(false);
    this.waiting.length = 0;
    this.waitingHead = 0;
  }
}
