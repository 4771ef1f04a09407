import { FRAME_HEADER_BYTES } from './peer-codec.js';

/**
 * Splits a TCP byte stream into frame payloads: 4-byte big-endian length, then that many bytes.
 *
 * TCP delivers arbitrary slices: a read may end inside a length, inside a payload, or hold many
 * frames. Whole frames inside one read are handed out as subarrays of it (no copy). A frame that
 * spans reads is collected as a list of reads and concatenated once when complete, so a 16 MiB
 * frame arriving in 64 KiB reads costs one copy, not one per read.
 *
 * A length over `frameBytesMax` is refused as soon as its 4 bytes are seen, before any of its
 * payload is buffered: a hostile dialer cannot make us hold more than frameBytesMax + one read.
 * The limit may change between frames (it grows after the handshake).
 */
export class FrameDecoder {
  frameBytesMax: number;
  /** Reads held back because they end inside a frame. Invariant: sum of lengths === buffered. */
  private pending: Buffer[] = [];
  private buffered = 0;
  /** Payload length of the frame at the head of `pending`, once its header is complete; else -1. */
  private expected = -1;
  private failed: string | null = null;

  constructor(frameBytesMax: number) {
    this.frameBytesMax = frameBytesMax;
  }

  /** Bytes held for an incomplete frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Feeds one read. Calls onFrame for each complete payload, in order. Returns null, or the reason
   * the stream is unusable (an oversize length); after that, the decoder refuses all input. If
   * onFrame calls stop(), the remaining bytes of this read are not parsed.
   */
  push(chunk: Buffer, onFrame: (payload: Buffer) => void): string | null {
    if (this.failed !== null) return this.failed;
    if (chunk.length === 0) return null;
    if (this.buffered === 0) return this.parse(chunk, onFrame);
    this.pending.push(chunk);
    this.buffered += chunk.length;
    if (this.expected < 0) {
      if (this.buffered < FRAME_HEADER_BYTES) return null;
      const header = Buffer.concat(this.pending, this.buffered).subarray(0, FRAME_HEADER_BYTES);
      const length = header.readUInt32BE(0);
      if (length > this.frameBytesMax) return this.fail(length);
      this.expected = length;
    }
    if (this.buffered < FRAME_HEADER_BYTES + this.expected) return null;
    const joined = Buffer.concat(this.pending, this.buffered);
    this.pending = [];
    this.buffered = 0;
    this.expected = -1;
    return this.parse(joined, onFrame);
  }

  /** Stops parsing: the connection is going away. */
  stop(reason: string): void {
    this.failed ??= reason;
    this.pending = [];
    this.buffered = 0;
  }

  private parse(buf: Buffer, onFrame: (payload: Buffer) => void): string | null {
    let offset = 0;
    while (buf.length - offset >= FRAME_HEADER_BYTES) {
      const length = buf.readUInt32BE(offset);
      if (length > this.frameBytesMax) return this.fail(length);
      if (buf.length - offset - FRAME_HEADER_BYTES < length) break;
      const start = offset + FRAME_HEADER_BYTES;
      offset = start + length;
      onFrame(buf.subarray(start, offset));
      if (this.failed !== null) return this.failed;
    }
    if (offset < buf.length) {
      const rest = buf.subarray(offset);
      this.pending = [rest];
      this.buffered = rest.length;
      this.expected = -1;
      if (rest.length >= FRAME_HEADER_BYTES) {
        // The loop stopped on an incomplete payload whose length it already checked.
        this.expected = rest.readUInt32BE(0);
      }
    }
    return null;
  }

  private fail(length: number): string {
    this.stop(`frame of ${length} bytes exceeds the ${this.frameBytesMax}-byte limit`);
    return this.failed!;
  }
}
