import type { Socket } from 'node:net';
import type { Logger } from '../platform/logger.js';
import { FramedSocket } from './framed-socket.js';
import { checkHandshake, type LocalIdentity } from './handshake.js';
import {
  encodeHandshakeReplyFrame, encodePongFrame, encodeSnapshotAckFrame, PROTOCOL_VERSION, StreamKind,
  type Envelope, type Handshake,
} from './peer-codec.js';
import { idLabel } from './peer-metrics.js';
import { SnapshotAssembly, SnapshotRejected } from './snapshot-assembly.js';
import type { TransportContext } from './transport-context.js';

/** Chunks an inbound snapshot may hold in memory while its file writes catch up. */
const SNAPSHOT_UNWRITTEN_CHUNKS_MAX = 4;

/** The transport's side of inbound connections: who is known, and a registry of live message streams. */
export interface InboundRegistry extends LocalIdentity {
  /** A message stream from `from` was accepted; the registry closes any older one from that peer. */
  registerMessageStream(from: bigint, connection: InboundConnection): void;
  unregister(connection: InboundConnection): void;
}

/**
 * One accepted connection, from its first byte to its close. Until the handshake it is
 * untrusted: frames are capped at handshakeFrameBytesMax, the first frame must be a Handshake that
 * checkHandshake accepts, and it must arrive within handshakeTimeoutMs. A refused dialer gets a
 * HandshakeReply naming the reason (so both sides log it) and the connection is closed unused.
 *
 * After the handshake the stream kind decides: a message stream hands each RaftBatch up to the
 * member and answers Pings; a snapshot stream assembles chunks and answers one SnapshotAck.
 * Any frame that does not belong closes the connection, logged and counted; the member goes on.
 */
export class InboundConnection {
  private readonly connection: FramedSocket;
  private handshake: Handshake | null = null;
  private handshakeTimer: NodeJS.Timeout | null;
  private assembly: SnapshotAssembly | null = null;
  private snapshotDone = false;
  private readingPaused = false;
  private fromLabel = 'unknown';
  private log: Logger;

  constructor(private readonly ctx: TransportContext, private readonly registry: InboundRegistry, socket: Socket) {
    this.log = ctx.logger.child({ remoteAddress: `${socket.remoteAddress}:${socket.remotePort}` });
    socket.setNoDelay(true);
    this.connection = new FramedSocket(socket, ctx.limits.handshakeFrameBytesMax, {
      onEnvelope: (envelope, frameBytes) => this.onEnvelope(envelope, frameBytes),
      onFrameError: (reason, message) => {
        this.ctx.metrics.frameErrors.inc({ reason });
        this.ctx.metrics.receivedFailures.inc({ From: this.fromLabel });
        if (this.handshake === null) this.ctx.refusalWarnings.warn(this.log, { reason: message }, 'closing peer connection: bad frame');
        else this.log.warn({ reason: message }, 'closing peer connection: bad frame');
      },
      onClose: (reason) => this.onClose(reason),
    });
    this.handshakeTimer = setTimeout(() => {
      this.ctx.metrics.handshakeRefusals.inc({ side: 'listener', reason: 'timeout' });
      this.ctx.refusalWarnings.warn(this.log, {}, 'closing peer connection: no handshake in time');
      this.connection.destroy('handshake timed out');
    }, ctx.limits.handshakeTimeoutMs);
    this.handshakeTimer.unref();
  }

  /** Open and still waiting for its handshake (the listener caps how many such connections it holds). */
  get awaitingHandshake(): boolean {
    return this.handshake === null && this.handshakeTimer !== null;
  }

  get from(): bigint | null {
    return this.handshake?.fromMemberId ?? null;
  }

  destroy(reason: string): void {
    this.connection.destroy(reason);
  }

  private onEnvelope(envelope: Envelope, frameBytes: number): void {
    if (this.handshake === null) {
      this.onHandshake(envelope);
      return;
    }
    const from = this.handshake.fromMemberId;
    this.ctx.metrics.receivedBytes.inc({ From: this.fromLabel }, frameBytes);
    if (this.handshake.stream === StreamKind.Message) {
      switch (envelope.kind) {
        case 'raftBatch':
          if (envelope.messages.length > 0) this.ctx.handler.onMessages(from, envelope.messages);
          return;
        case 'ping':
          this.connection.write(encodePongFrame(envelope.ping));
          return;
        case 'none':
          return;
        default:
          this.protocolViolation(`unexpected ${envelope.kind} frame on a message stream`);
          return;
      }
    }
    if (envelope.kind === 'none') return;
    if (envelope.kind !== 'snapshotChunk' || this.snapshotDone) {
      this.protocolViolation(`unexpected ${envelope.kind} frame on a snapshot stream`);
      return;
    }
    this.onSnapshotChunk(from, envelope);
  }

  private onHandshake(envelope: Envelope): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    if (envelope.kind !== 'handshake') {
      this.ctx.metrics.handshakeRefusals.inc({ side: 'listener', reason: 'no_handshake' });
      this.ctx.refusalWarnings.warn(this.log, { kind: envelope.kind }, 'refusing peer connection: first frame is not a handshake');
      this.connection.destroy('first frame is not a handshake');
      return;
    }
    const h = envelope.handshake;
    const refusal = checkHandshake(h, this.registry);
    if (refusal !== null) {
      this.ctx.metrics.handshakeRefusals.inc({ side: 'listener', reason: refusal.reason });
      this.ctx.refusalWarnings.warn(this.log, { from: idLabel(h.fromMemberId), reason: refusal.message }, 'refusing peer connection');
      this.connection.endWith(
        encodeHandshakeReplyFrame({ accepted: false, reason: refusal.message, memberId: this.ctx.memberId, protocolVersion: PROTOCOL_VERSION, clusterId: this.ctx.clusterId }),
        `handshake refused: ${refusal.message}`,
      );
      return;
    }
    this.handshake = h;
    this.fromLabel = idLabel(h.fromMemberId);
    this.log = this.ctx.logger.child({ peerId: this.fromLabel, stream: h.stream === StreamKind.Message ? 'message' : 'snapshot' });
    this.connection.decoder.frameBytesMax = this.ctx.limits.frameBytesMax;
    if (h.stream === StreamKind.Snapshot && !this.ctx.handler.onSnapshot) {
      this.log.warn('refusing snapshot stream: this member takes no snapshots');
      this.connection.endWith(
        encodeHandshakeReplyFrame({ accepted: false, reason: 'member does not accept snapshots', memberId: this.ctx.memberId, protocolVersion: PROTOCOL_VERSION, clusterId: this.ctx.clusterId }),
        'snapshot stream refused',
      );
      return;
    }
    this.connection.write(encodeHandshakeReplyFrame({ accepted: true, reason: '', memberId: this.ctx.memberId, protocolVersion: PROTOCOL_VERSION, clusterId: this.ctx.clusterId }));
    if (h.stream === StreamKind.Message) {
      this.registry.registerMessageStream(h.fromMemberId, this);
      this.log.info('inbound peer stream connected');
    } else {
      this.assembly = new SnapshotAssembly(this.ctx.limits.snapshotBytesMax, this.ctx.snapshotDir);
    }
  }

  private onSnapshotChunk(from: bigint, envelope: Extract<Envelope, { kind: 'snapshotChunk' }>): void {
    const assembly = this.assembly!;
    let complete: boolean;
    try {
      complete = assembly.add(envelope.chunk);
    } catch (err) {
      if (!(err instanceof SnapshotRejected)) throw err;
      this.snapshotFailed(from, err.message, envelope.chunk.snapshotId);
      return;
    }
    if (!complete) {
      // The disk is behind the network: stop reading until the writes caught up (TCP pushes back
      // on the sender), so at most a few chunks wait in memory.
      if (assembly.pendingBytes > SNAPSHOT_UNWRITTEN_CHUNKS_MAX * this.ctx.limits.snapshotChunkBytes && !this.readingPaused) {
        this.readingPaused = true;
        this.connection.socket.pause();
        void assembly.drained().then(() => {
          this.readingPaused = false;
          if (!this.connection.isClosed) this.connection.socket.resume();
        });
      }
      return;
    }
    this.snapshotDone = true;
    const snapshotId = envelope.chunk.snapshotId;
    assembly.finish().then(
      (snapshot) => {
        if (this.connection.isClosed) {
          // The sender gave up meanwhile (ack timeout): it will report failure, so do not hand up.
          void assembly.discard();
          this.ctx.metrics.snapshotReceiveFailures.inc({ From: this.fromLabel });
          return;
        }
        this.ctx.metrics.snapshotReceiveSuccess.inc({ From: this.fromLabel });
        this.log.info({ snapshotId: snapshot.snapshotId.toString(16), sizeBytes: snapshot.sizeBytes, path: snapshot.path }, 'received snapshot');
        this.ctx.handler.onSnapshot!(from, snapshot);
        this.connection.endWith(encodeSnapshotAckFrame({ snapshotId: snapshot.snapshotId, ok: true, reason: '' }), 'snapshot received');
      },
      (err: Error) => {
        if (!(err instanceof SnapshotRejected)) throw err;
        this.snapshotFailed(from, err.message, snapshotId);
      },
    );
  }

  private snapshotFailed(from: bigint, reason: string, snapshotId: bigint): void {
    this.snapshotDone = true;
    void this.assembly?.discard();
    this.ctx.metrics.snapshotReceiveFailures.inc({ From: this.fromLabel });
    this.log.warn({ reason }, 'inbound snapshot rejected; not applied');
    this.ctx.handler.onSnapshotFailed?.(from, reason);
    this.connection.endWith(encodeSnapshotAckFrame({ snapshotId, ok: false, reason }), `snapshot rejected: ${reason}`);
  }

  private protocolViolation(message: string): void {
    this.ctx.metrics.frameErrors.inc({ reason: 'unexpected_kind' });
    this.ctx.metrics.receivedFailures.inc({ From: this.fromLabel });
    this.log.warn({ reason: message }, 'closing peer connection: protocol violation');
    this.connection.destroy(message);
  }

  private onClose(reason: string): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.registry.unregister(this);
    const h = this.handshake;
    if (h === null) return;
    if (h.stream === StreamKind.Snapshot && !this.snapshotDone) {
      this.snapshotDone = true;
      void this.assembly?.discard();
      const message = `snapshot transfer cut short after ${this.assembly?.receivedBytes ?? 0} bytes: ${reason}`;
      this.ctx.metrics.snapshotReceiveFailures.inc({ From: this.fromLabel });
      this.log.warn({ reason: message }, 'inbound snapshot failed; not applied');
      this.ctx.handler.onSnapshotFailed?.(h.fromMemberId, message);
    } else if (h.stream === StreamKind.Message) {
      this.log.info({ reason }, 'inbound peer stream closed');
    }
  }
}
