import { createHash, randomBytes } from 'node:crypto';
import { dialPeer } from './peer-dialer.js';
import { FramedSocket } from './framed-socket.js';
import { formatPeerAddress, type PeerAddress } from './peer-address.js';
import { PeerError } from './peer-error.js';
import {
  encodeHandshakeFrame, encodeSnapshotChunkFrame, PROTOCOL_VERSION, StreamKind, type Envelope,
} from './peer-codec.js';
import { idLabel } from './peer-metrics.js';
import type { TransportContext } from './transport-context.js';

export type SnapshotSource = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/**
 * Sends one snapshot to a peer on its own connection, so a large transfer never queues behind or
 * ahead of the message stream's heartbeats. Data goes in chunks of snapshotChunkBytes, respecting
 * the socket's backpressure (await 'drain'); the last chunk carries the total size and the
 * SHA-256 over all data, and the promise settles on the receiver's SnapshotAck: it resolves only
 * once the receiver has verified and taken the snapshot, and rejects with PeerError
 * ('SnapshotFailed' / 'HandshakeRefused' / 'Unreachable') otherwise.
 */
export async function sendSnapshot(
  ctx: TransportContext, to: bigint, address: PeerAddress, source: SnapshotSource, metadata: Uint8Array,
  signal: AbortSignal,
): Promise<void> {
  const label = idLabel(to);
  const log = ctx.logger.child({ peerId: label, stream: 'snapshot' });
  const snapshotId = randomBytes(8).readBigUInt64BE(0);
  const inbox = new FrameInbox(label);
  const connection = new FramedSocket(dialPeer(address, ctx.tlsClient), ctx.limits.handshakeFrameBytesMax, {
    onEnvelope: (envelope) => inbox.put(envelope),
    onFrameError: (reason, message) => {
      ctx.metrics.frameErrors.inc({ reason });
      log.warn({ reason: message }, 'closing snapshot connection: bad frame');
    },
    onClose: (reason) => inbox.close(reason),
  });
  const onAbort = () => connection.destroy('transport closed');
  signal.addEventListener('abort', onAbort);
  try {
    connection.write(encodeHandshakeFrame({
      clusterId: ctx.clusterId, fromMemberId: ctx.memberId, toMemberId: to, protocolVersion: PROTOCOL_VERSION, stream: StreamKind.Snapshot,
    }));
    const reply = await inbox.take(ctx.limits.handshakeTimeoutMs, 'Unreachable');
    if (reply.kind !== 'handshakeReply') throw new PeerError('Unreachable', `expected a handshake reply, got ${reply.kind}`);
    if (!reply.reply.accepted || reply.reply.memberId !== to) {
      const reason = reply.reply.accepted ? `address answered as member ${idLabel(reply.reply.memberId)}` : reply.reply.reason;
      ctx.metrics.handshakeRefusals.inc({ side: 'dialer', reason: 'refused_by_peer' });
      log.error({ address: formatPeerAddress(address), reason }, 'peer refused snapshot stream');
      throw new PeerError('HandshakeRefused', `peer ${label} refused the snapshot stream: ${reason}`);
    }
    connection.decoder.frameBytesMax = ctx.limits.frameBytesMax;

    const hash = createHash('sha256');
    const chunkBytes = ctx.limits.snapshotChunkBytes;
    let offset = 0;
    let first = true;
    for await (const piece of iterate(source)) {
      for (let p = 0; p < piece.length; p += chunkBytes) {
        const data = piece.subarray(p, Math.min(piece.length, p + chunkBytes));
        hash.update(data);
        const frame = encodeSnapshotChunkFrame({
          snapshotId, offset, data, metadata: first ? metadata : new Uint8Array(0), last: false, totalBytes: 0, sha256: new Uint8Array(0),
        });
        first = false;
        offset += data.length;
        ctx.metrics.sentBytes.inc({ To: label }, frame.length);
        if (!connection.write(frame)) await inbox.drained(connection, ctx.limits.snapshotAckTimeoutMs);
        // The receiver may refuse mid-transfer (too large, out of order): stop and say why.
        inbox.throwIfRefused();
      }
    }
    const lastFrame = encodeSnapshotChunkFrame({
      snapshotId, offset, data: new Uint8Array(0), metadata: first ? metadata : new Uint8Array(0), last: true, totalBytes: offset, sha256: hash.digest(),
    });
    ctx.metrics.sentBytes.inc({ To: label }, lastFrame.length);
    connection.write(lastFrame);
    const ack = await inbox.take(ctx.limits.snapshotAckTimeoutMs, 'SnapshotFailed');
    if (ack.kind !== 'snapshotAck') throw new PeerError('SnapshotFailed', `expected a snapshot ack, got ${ack.kind}`);
    if (!ack.ack.ok) throw new PeerError('SnapshotFailed', `peer ${label} rejected the snapshot: ${ack.ack.reason}`);
    ctx.metrics.snapshotSendSuccess.inc({ To: label });
    log.info({ sizeBytes: offset }, 'snapshot sent');
  } catch (err) {
    ctx.metrics.snapshotSendFailures.inc({ To: label });
    log.warn({ err: (err as Error).message }, 'snapshot send failed');
    if (err instanceof PeerError) throw err;
    // The source failed (a read error in the member's snapshot file): the transfer is broken.
    throw new PeerError('SnapshotFailed', `snapshot to ${label} failed: ${(err as Error).message}`);
  } finally {
    signal.removeEventListener('abort', onAbort);
    connection.destroy('snapshot transfer over');
  }
}

async function* iterate(source: SnapshotSource): AsyncIterable<Uint8Array> {
  if (source instanceof Uint8Array) {
    yield source;
    return;
  }
  for await (const piece of source as AsyncIterable<Uint8Array>) yield piece;
}

/** Frames received on a snapshot connection, taken one at a time by the sending coroutine. */
class FrameInbox {
  constructor(private readonly label: string) {}

  private readonly frames: Envelope[] = [];
  private closedReason: string | null = null;
  private waiter: (() => void) | null = null;

  put(envelope: Envelope): void {
    if (envelope.kind === 'none') return;
    this.frames.push(envelope);
    this.wake();
  }

  close(reason: string): void {
    this.closedReason = reason;
    this.wake();
  }

  async take(timeoutMs: number, code: 'Unreachable' | 'SnapshotFailed'): Promise<Envelope> {
    for (;;) {
      const next = this.frames.shift();
      if (next) return next;
      if (this.closedReason !== null) throw new PeerError(code, `connection closed: ${this.closedReason}`);
      await this.wait(timeoutMs, code);
    }
  }

  /** A SnapshotAck that arrived before the transfer ended is a refusal: throw its reason. */
  throwIfRefused(): void {
    const ack = this.frames.find((f) => f.kind === 'snapshotAck');
    if (ack?.kind === 'snapshotAck' && !ack.ack.ok) throw new PeerError('SnapshotFailed', `peer ${this.label} rejected the snapshot: ${ack.ack.reason}`);
  }

  private throwIfClosed(): void {
    if (this.closedReason === null) return;
    this.throwIfRefused();
    throw new PeerError('SnapshotFailed', `connection closed: ${this.closedReason}`);
  }

  async drained(connection: FramedSocket, timeoutMs: number): Promise<void> {
    this.throwIfClosed();
    const onDrain = () => this.wake();
    connection.socket.once('drain', onDrain);
    try {
      await this.wait(timeoutMs, 'SnapshotFailed');
    } finally {
      connection.socket.off('drain', onDrain);
    }
    this.throwIfClosed();
  }

  private wait(timeoutMs: number, code: 'Unreachable' | 'SnapshotFailed'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = timeoutMs > 0 ? setTimeout(() => {
        this.waiter = null;
        reject(new PeerError(code, `no answer from peer within ${timeoutMs} ms`));
      }, timeoutMs) : null;
      this.waiter = () => {
        if (timer) clearTimeout(timer);
        this.waiter = null;
        resolve();
      };
    });
  }

  private wake(): void {
    this.waiter?.();
  }
}
