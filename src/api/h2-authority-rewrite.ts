/**
 * Rewrites an HTTP/2 `:authority` that carries a scheme ("http://127.0.0.1:2379") to its host and
 * port ("127.0.0.1:2379") before node:http2 sees it.
 *
 * Why: etcdctl 3.4 (grpc-go) dials `endpoint status` with the endpoint exactly as typed, so its
 * requests carry `:authority: http://127.0.0.1:2379`. nghttp2, under node:http2, validates the
 * authority (RFC 3986 characters; '/' is not one) and resets the stream with PROTOCOL_ERROR before
 * any of our code runs; node offers no option to relax that check (nghttp2's
 * `no_http_messaging` option is not exposed). Go's HTTP/2 server accepts it, so etcd works.
 *
 * How: this Duplex sits between the client socket and the node:http2 session and reads the
 * client's byte stream as HTTP/2 frames:
 *
 *   watching     Frames pass through until the first complete header block (HEADERS plus any
 *                CONTINUATION). Its HPACK is decoded with a decoder that mirrors the client's
 *                encoder. If its :authority needs no rewrite, the block's original bytes go on and
 *                the connection turns to `passthrough`: nothing was changed, so the client's and
 *                nghttp2's HPACK tables agree, and every later byte is pushed untouched.
 *   rewriting    If it does, the block is re-encoded with the authority fixed, and so is every
 *                later block of the connection, because from then on the client's HPACK context
 *                (mirrored by our decoder) and nghttp2's differ: we encode without indexing, so
 *                nghttp2's dynamic table stays empty (hpack.ts). Other frames pass unchanged.
 *   passthrough  Chunks go straight to the session.
 *
 * Anything odd while watching (an oversized frame, a PUSH_PROMISE from a client, a frame between
 * HEADERS and its CONTINUATION, an undecodable block) also turns to passthrough with the bytes
 * unchanged, so nghttp2 judges the input as it would without us. While rewriting we can no longer
 * step aside, and the same oddities end the connection (they are connection errors in HTTP/2).
 *
 * Bounded: a frame is held until complete, at most the 16 KiB SETTINGS_MAX_FRAME_SIZE node
 * announces plus its 9-byte header; a header block at most `headerBlockBytesMax`; a decoded
 * header list at most `headerListBytesMax`.
 *
 * The server-to-client direction is never touched: writes go straight to the socket.
 *
 * Cost: node:http2 serves a Duplex through its JS stream wrapper rather than reading the socket
 * handle natively; client-server.ts has the measured cost on the normal path.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { encodeWithoutIndexing, HpackDecoder, HpackError, type HeaderField } from './hpack.js';

const PREFACE_BYTES = 24;
const FRAME_HEADER_BYTES = 9;
/** SETTINGS_MAX_FRAME_SIZE node:http2 announces (the HTTP/2 default); larger frames are errors. */
const frameBytesMax = 16_384;
/** Most bytes of one header block (all its fragments); nghttp2 refuses far smaller header lists. */
export const headerBlockBytesMax = 256 * 1024;
/** Most decoded header-list bytes (name + value + 32 per field) of one block. */
export const headerListBytesMax = 256 * 1024;
/** SETTINGS_HEADER_TABLE_SIZE node:http2 announces (the default); our decoder's table bound. */
const hpackTableBytesMax = 4096;

const TYPE_HEADERS = 0x1;
const TYPE_PUSH_PROMISE = 0x5;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

/**
 * The authority node:http2 will accept for one a client sent, or undefined if it needs no change:
 * "http://127.0.0.1:2379" and "https://host:2379/x" become "127.0.0.1:2379" and "host:2379".
 * Only values with a '/' change (the one character grpc-go's authorities add that nghttp2 refuses).
 */
export function rewrittenAuthority(value: string): string | undefined {
  if (!value.includes('/')) return undefined;
  const scheme = value.lastIndexOf('://');
  const rest = scheme === -1 ? value : value.slice(scheme + 3);
  const slash = rest.indexOf('/');
  return slash === -1 ? rest : rest.slice(0, slash);
}

type Mode = 'preface' | 'watching' | 'rewriting' | 'passthrough';

/**
 * The client-to-server byte transform, free of I/O so tests can feed it any split of the input.
 * `receive` returns the bytes to hand to the HTTP/2 session (possibly none yet); it throws
 * RewriteError when a rewriting connection must end.
 */
export class AuthorityRewriter {
  private mode: Mode = 'preface';
  /** Bytes received and not yet passed on (a partial frame, or a header block being collected). */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private readonly decoder = new HpackDecoder({ tableBytesMax: hpackTableBytesMax, headerListBytesMax });
  /** How many header blocks were rewritten (for tests and logs). */
  rewrittenBlocks = 0;

  get passthrough(): boolean {
    return this.mode === 'passthrough';
  }

  get rewriting(): boolean {
    return this.mode === 'rewriting';
  }

  receive(chunk: Buffer): Buffer[] {
    if (this.mode === 'passthrough') return [chunk];
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    const out: Buffer[] = [];
    this.process(out);
    return out;
  }

  private process(out: Buffer[]): void {
    if (this.mode === 'preface') {
      if (this.heldBytes < PREFACE_BYTES) return;
      // The classifier already checked the preface; it passes unchanged.
      const all = this.joined();
      out.push(all.subarray(0, PREFACE_BYTES));
      this.setHeld(all.subarray(PREFACE_BYTES));
      this.mode = 'watching';
    }
    // Walk complete frames. `start` is where the frames not yet passed on begin; a header block
    // stays held from its HEADERS frame until its last CONTINUATION.
    const all = this.joined();
    let start = 0;
    let at = 0;
    /** Where the current header block's first frame starts, or -1 outside a block. */
    let blockStart = -1;
    while (all.length - at >= FRAME_HEADER_BYTES) {
      const length = all.readUIntBE(at, 3);
      const type = all[at + 3]!;
      const flags = all[at + 4]!;
      const streamId = all.readUInt32BE(at + 5) & 0x7fffffff;
      if (length > frameBytesMax) {
        this.anomaly(`frame of ${length} bytes over ${frameBytesMax}`, all, start, out);
        return;
      }
      if (all.length - at < FRAME_HEADER_BYTES + length) break;
      const frameEnd = at + FRAME_HEADER_BYTES + length;
      if (blockStart === -1) {
        if (type === TYPE_HEADERS) {
          blockStart = at;
        } else if (type === TYPE_PUSH_PROMISE || type === TYPE_CONTINUATION) {
          this.anomaly(`unexpected frame type ${type} outside a header block`, all, start, out);
          return;
        } else {
          // Any other frame: nothing to change.
          at = frameEnd;
          continue;
        }
      } else if (type !== TYPE_CONTINUATION || streamId !== (all.readUInt32BE(blockStart + 5) & 0x7fffffff)) {
        this.anomaly(`frame type ${type} inside a header block`, all, start, out);
        return;
      }
      if (frameEnd - blockStart > headerBlockBytesMax + FRAME_HEADER_BYTES) {
        this.anomaly(`header block over ${headerBlockBytesMax} bytes`, all, start, out);
        return;
      }
      at = frameEnd;
      if ((flags & FLAG_END_HEADERS) === 0) continue;
      // A complete header block: frames [blockStart, at).
      const frames = all.subarray(blockStart, at);
      let replacement: Buffer | undefined;
      try {
        replacement = this.rewriteBlock(frames);
      } catch (err) {
        if (!(err instanceof HpackError || err instanceof FrameError)) throw err;
        this.anomaly(err.message, all, start, out);
        return;
      }
      if (this.mode === 'watching') {
        if (replacement === undefined) {
          // The first block is fine as sent: step aside for good.
          this.mode = 'passthrough';
          out.push(all.subarray(start));
          this.setHeld(Buffer.alloc(0));
          return;
        }
        this.mode = 'rewriting';
      }
      if (blockStart > start) out.push(all.subarray(start, blockStart));
      out.push(replacement ?? frames);
      start = at;
      blockStart = -1;
    }
    // Pass on complete frames before any unfinished header block; hold the rest.
    const holdFrom = blockStart === -1 ? at : blockStart;
    if (holdFrom > start) out.push(all.subarray(start, holdFrom));
    this.setHeld(all.subarray(holdFrom));
  }

  /**
   * Decodes one header block (its HEADERS and CONTINUATION frames) and returns it re-encoded with
   * the authority fixed, or undefined when it needs no change. While rewriting, every block is
   * re-encoded (our encoder's context is not the client's), never undefined.
   */
  private rewriteBlock(frames: Buffer): Buffer | undefined {
    const first = frames;
    const firstLength = first.readUIntBE(0, 3);
    const flags = first[4]!;
    const streamIdBytes = first.subarray(5, 9);
    let payloadStart = FRAME_HEADER_BYTES;
    let payloadEnd = FRAME_HEADER_BYTES + firstLength;
    let padding = 0;
    if (flags & FLAG_PADDED) {
      if (firstLength < 1) throw new FrameError('HEADERS: PADDED without a pad length');
      padding = first[payloadStart]!;
      payloadStart += 1;
    }
    let priority: Buffer | undefined;
    if (flags & FLAG_PRIORITY) {
      if (payloadEnd - payloadStart < 5) throw new FrameError('HEADERS: PRIORITY without its 5 bytes');
      priority = first.subarray(payloadStart, payloadStart + 5);
      payloadStart += 5;
    }
    if (padding > payloadEnd - payloadStart) throw new FrameError('HEADERS: padding longer than the payload');
    payloadEnd -= padding;
    const fragments: Buffer[] = [first.subarray(payloadStart, payloadEnd)];
    for (let at = FRAME_HEADER_BYTES + firstLength; at < frames.length;) {
      const length = frames.readUIntBE(at, 3);
      fragments.push(frames.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length));
      at += FRAME_HEADER_BYTES + length;
    }
    const block = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
    const headers = this.decoder.decode(block);
    let changed = false;
    for (const field of headers) {
      if (field[0] !== ':authority') continue;
      const fixed = rewrittenAuthority(field[1]);
      if (fixed !== undefined) {
        field[1] = fixed;
        changed = true;
      }
    }
    if (!changed && this.mode === 'watching') return undefined;
    if (changed) this.rewrittenBlocks++;
    return encodeFrames(encodeWithoutIndexing(headers), flags & FLAG_END_STREAM, priority, streamIdBytes);
  }

  /** Watching: pass everything on unchanged and step aside. Rewriting: the connection must end. */
  private anomaly(reason: string, all: Buffer, start: number, out: Buffer[]): void {
    if (this.mode === 'rewriting') throw new RewriteError(reason);
    this.mode = 'passthrough';
    out.push(all.subarray(start));
    this.setHeld(Buffer.alloc(0));
  }

  private joined(): Buffer {
    if (this.held.length !== 1) this.held = [Buffer.concat(this.held, this.heldBytes)];
    return this.held[0]!;
  }

  private setHeld(rest: Buffer): void {
    // A copy, so a small held tail does not pin a large chunk.
    this.held = rest.length > 0 ? [Buffer.from(rest)] : [];
    this.heldBytes = rest.length;
  }
}

/** A header block frame that is malformed (a connection error in HTTP/2). */
class FrameError extends Error {
  override name = 'FrameError';
}

/** A rewriting connection received input it cannot carry on with. */
export class RewriteError extends Error {
  override name = 'RewriteError';
}

/** HEADERS (+ CONTINUATION) frames carrying `block`, each payload at most the max frame size. */
function encodeFrames(block: Buffer, endStream: number, priority: Buffer | undefined, streamIdBytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  const priorityBytes = priority?.length ?? 0;
  let at = 0;
  let first = true;
  do {
    const room = frameBytesMax - (first ? priorityBytes : 0);
    const take = Math.min(room, block.length - at);
    const last = at + take === block.length;
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    const payloadBytes = take + (first ? priorityBytes : 0);
    header.writeUIntBE(payloadBytes, 0, 3);
    header[3] = first ? TYPE_HEADERS : TYPE_CONTINUATION;
    header[4] = (first ? endStream | (priority ? FLAG_PRIORITY : 0) : 0) | (last ? FLAG_END_HEADERS : 0);
    streamIdBytes.copy(header, 5);
    parts.push(header);
    if (first && priority) parts.push(priority);
    parts.push(block.subarray(at, at + take));
    at += take;
    first = false;
  } while (at < block.length);
  return Buffer.concat(parts);
}

/**
 * The socket as node:http2 sees it: client bytes through an AuthorityRewriter (then straight
 * through once it steps aside), server bytes straight to the socket.
 */
export class AuthorityRewriteStream extends Duplex {
  private readonly rewriter = new AuthorityRewriter();
  private passthrough = false;

  constructor(private readonly socket: Socket, private readonly onRewriteError: (err: RewriteError) => void) {
    super({ allowHalfOpen: true });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  /** Whether the connection had a header block rewritten. */
  get rewritten(): boolean {
    return this.rewriter.rewriting;
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }

  private onData(chunk: Buffer): void {
    if (this.passthrough) {
      if (!this.push(chunk)) this.socket.pause();
      return;
    }
    let out: Buffer[];
    try {
      out = this.rewriter.receive(chunk);
    } catch (err) {
      if (!(err instanceof RewriteError)) throw err;
      this.onRewriteError(err);
      this.destroy();
      return;
    }
    this.passthrough = this.rewriter.passthrough;
    if (out.length === 0) return;
    if (!this.push(out.length === 1 ? out[0] : Buffer.concat(out))) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.socket.write(chunk, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    this.socket.cork();
    const last = chunks.length - 1;
    for (let i = 0; i < last; i++) this.socket.write(chunks[i]!.chunk);
    this.socket.write(chunks[last]!.chunk, callback);
    this.socket.uncork();
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.socket.destroy(err ?? undefined);
    callback(err);
  }
}
