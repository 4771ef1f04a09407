/**
 * Assembles the one length-prefixed message of a unary gRPC request (1 byte compressed flag, 4
 * bytes big-endian length, payload) from DATA payloads as they arrive, in time linear in the bytes
 * received whatever the chunking: a call trickled as 20,000 one-byte DATA frames once cost a
 * concatenation of everything so far per frame (O(n²), 19 s of main thread for 200 KB).
 *
 * The common case, a whole message in one DATA payload, costs no allocation or copy: the payload
 * is kept as a view of that chunk. Otherwise the prefix is read into its own 5 bytes and the
 * payload copied into a buffer that grows by doubling up to the declared length, never allocated
 * at the declared length up front (a client declaring 2 MiB and sending one byte must not make us
 * hold 2 MiB), and never pinning the many socket read chunks the payloads are views of.
 *
 * It refuses, as soon as the bytes show it: a declared length over the receive limit (before
 * buffering any of it), and bytes beyond the declared message (a unary request carries exactly
 * one message).
 */
import { assert } from '../platform/assert.js';

export const MESSAGE_HEADER_BYTES = 5;
/** First payload buffer: most requests (puts, ranges) fit, so they are copied once. */
const INITIAL_PAYLOAD_BYTES = 1024;

export type MessageReadProblem =
  | { kind: 'too-large'; declaredBytes: number }
  | { kind: 'extra-bytes' };

export class GrpcMessageReader {
  /** The prefix when it came split over chunks (allocated then only). */
  private header: Buffer | undefined;
  private headerBytes = 0;
  private flag = 0;
  /** Declared payload length, once the prefix is whole. */
  private declared = -1;
  private payload: Buffer | undefined;
  /** Invariant: payloadBytes <= declared and payloadBytes <= payload.length. */
  private payloadBytes = 0;

  constructor(private readonly limitBytes: number) {}

  /** Takes one chunk; returns a problem that ends the call, or undefined. */
  push(chunk: Buffer): MessageReadProblem | undefined {
    let at = 0;
    if (this.headerBytes < MESSAGE_HEADER_BYTES) {
      let prefix: Buffer;
      if (this.headerBytes === 0 && chunk.length >= MESSAGE_HEADER_BYTES) {
        prefix = chunk;
        this.headerBytes = at = MESSAGE_HEADER_BYTES;
      } else {
        prefix = this.header ??= Buffer.alloc(MESSAGE_HEADER_BYTES);
        const n = Math.min(MESSAGE_HEADER_BYTES - this.headerBytes, chunk.length);
        chunk.copy(prefix, this.headerBytes, 0, n);
        this.headerBytes += n;
        at = n;
        if (this.headerBytes < MESSAGE_HEADER_BYTES) return undefined;
      }
      this.flag = prefix[0]!;
      this.declared = prefix.readUInt32BE(1);
      // Refuse an oversized message from its length prefix, before buffering it.
      if (this.declared > this.limitBytes) return { kind: 'too-large', declaredBytes: this.declared };
    }
    const n = chunk.length - at;
    if (n === 0) return undefined;
    if (this.payloadBytes + n > this.declared) return { kind: 'extra-bytes' };
    if (this.payloadBytes === 0 && n === this.declared) {
      // The whole payload in this chunk: keep a view, copy nothing.
      this.payload = chunk.subarray(at);
      this.payloadBytes = n;
      return undefined;
    }
    this.reserve(this.payloadBytes + n);
    chunk.copy(this.payload!, this.payloadBytes, at);
    this.payloadBytes += n;
    return undefined;
  }

  /** Bytes the message still needs (its prefix counts as 5 until read); 0 when complete. */
  get bytesWanted(): number {
    if (this.declared < 0) return MESSAGE_HEADER_BYTES - this.headerBytes;
    return this.declared - this.payloadBytes;
  }

  /** The prefix's compressed flag (the prefix must be complete). */
  get compressed(): boolean {
    assert(this.declared >= 0, 'compressed flag read before the prefix');
    return this.flag !== 0;
  }

  get declaredBytes(): number {
    return this.declared;
  }

  /** Whether one whole message arrived (prefix and every declared byte). */
  get complete(): boolean {
    return this.declared >= 0 && this.payloadBytes === this.declared;
  }

  /** Whether any byte arrived at all. */
  get started(): boolean {
    return this.headerBytes > 0;
  }

  /** The payload of the complete message. */
  message(): Buffer {
    assert(this.complete, () => `message read before it is complete (${this.payloadBytes} of ${this.declared} bytes)`);
    return this.payload === undefined ? Buffer.alloc(0) : this.payload.subarray(0, this.payloadBytes);
  }

  private reserve(bytes: number): void {
    const current = this.payload;
    if (current !== undefined && current.length >= bytes) return;
    // Doubling keeps the copies linear; the declared length caps it (already checked <= limit).
    let size = Math.max(INITIAL_PAYLOAD_BYTES, (current?.length ?? 0) * 2);
    while (size < bytes) size *= 2;
    size = Math.min(size, this.declared);
    assert(size >= bytes, () => `payload buffer of ${size} for ${bytes} bytes`);
    const next = Buffer.allocUnsafe(size);
    if (current !== undefined) current.copy(next, 0, 0, this.payloadBytes);
    this.payload = next;
  }
}
