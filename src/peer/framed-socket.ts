import type { Socket } from 'node:net';
import { FrameDecoder } from './frame-decoder.js';
import { decodeEnvelope, FRAME_HEADER_BYTES, PeerDecodeError, type Envelope } from './peer-codec.js';

export interface FramedSocketEvents {
  /** One decoded frame; frameBytes counts the length prefix. */
  onEnvelope(envelope: Envelope, frameBytes: number): void;
  /** A frame that cannot be used (oversize or undecodable); the socket is destroyed right after. */
  onFrameError(reason: 'frame_too_large' | 'undecodable', message: string): void;
  /** The socket is gone, whoever closed it; `reason` is the first reason recorded. Called once. */
  onClose(reason: string): void;
}

/**
 * A peer socket (TCP or TLS) that speaks frames: reads are split by a FrameDecoder and decoded
 * into Envelopes; writes are whole encoded frames. Either side ends it with destroy(reason), and
 * every way a socket can end (our destroy, a bad frame, a peer reset, EOF) funnels into one
 * onClose with the first reason recorded, so owners have one place to clean up.
 */
export class FramedSocket {
  readonly decoder: FrameDecoder;
  private closeReason: string | null = null;
  private closed = false;

  constructor(readonly socket: Socket, frameBytesMax: number, private readonly events: FramedSocketEvents) {
    this.decoder = new FrameDecoder(frameBytesMax);
    socket.on('data', this.onData);
    socket.on('error', (err: Error) => {
      this.closeReason ??= err.message;
    });
    socket.on('end', () => {
      this.closeReason ??= 'peer closed the connection';
      // allowHalfOpen is off: node ends our side too; 'close' follows.
    });
    socket.on('close', () => {
      if (this.closed) return;
      this.closed = true;
      this.decoder.stop('closed');
      this.events.onClose(this.closeReason ?? 'connection closed');
    });
  }

  get isClosed(): boolean {
    return this.closed || this.closeReason !== null;
  }

  /** Writes one buffer of whole frames. Returns false when the socket wants 'drain' first. */
  write(frames: Uint8Array): boolean {
    if (this.isClosed) return false;
    return this.socket.write(frames);
  }

  /** Writes a last frame, then closes once it is flushed (a refusal, a snapshot verdict). */
  endWith(frame: Uint8Array, reason: string): void {
    if (this.isClosed) return;
    this.closeReason = reason;
    this.decoder.stop(reason);
    this.socket.end(frame);
    // A peer that never reads must not keep the socket: give the last frame a moment, then drop.
    setTimeout(() => this.socket.destroy(), 1_000).unref();
  }

  destroy(reason: string): void {
    this.closeReason ??= reason;
    this.decoder.stop(reason);
    this.socket.destroy();
  }

  private readonly onData = (chunk: Buffer): void => {
    const error = this.decoder.push(chunk, this.onPayload);
    if (error !== null && this.closeReason === null) {
      this.events.onFrameError('frame_too_large', error);
      this.destroy(error);
    }
  };

  private readonly onPayload = (payload: Buffer): void => {
    if (this.closeReason !== null) return;
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(payload);
    } catch (err) {
      if (!(err instanceof PeerDecodeError)) throw err;
      this.events.onFrameError('undecodable', err.message);
      this.destroy(err.message);
      return;
    }
    this.events.onEnvelope(envelope, payload.length + FRAME_HEADER_BYTES);
  };
}
