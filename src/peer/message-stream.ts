import { performance } from 'node:perf_hooks';
import type { Logger } from '../platform/logger.js';
import { Backoff } from './backoff.js';
import { dialPeer } from './peer-dialer.js';
import { FramedSocket } from './framed-socket.js';
import { REMOVED_MEMBER_REASON } from './handshake.js';
import { formatPeerAddress, type PeerAddress } from './peer-address.js';
import {
  encodeHandshakeFrame, encodePingFrame, encodeRaftBatchFrames, PROTOCOL_VERSION, raftBatchFrameBytes,
  raftMessageEncodedBytes, FRAME_HEADER_BYTES, StreamKind, type Envelope,
} from './peer-codec.js';
import { idLabel } from './peer-metrics.js';
import type { TransportContext } from './transport-context.js';

/**
 * The outbound message stream to one peer: one connection, dialed lazily on the first send.
 *
 *   idle --send--> connecting --accepted reply--> ready --socket lost--> backoff --timer--> idle
 *                       \--refused / failed--------------------------------^
 *
 * send() never blocks and never buffers without bound. Messages are queued (bounded by count and
 * bytes) while connecting, and while ready until the next flush; in backoff the peer is known to
 * be unreachable and messages are dropped at once (Raft retries). A lost connection drops what is
 * queued. Every drop is counted (keyraft_peer_dropped_messages_total{reason} and etcd's
 * etcd_network_peer_sent_failures_total).
 *
 * Coalescing: the first send in an event-loop turn schedules one flush (setImmediate, after the
 * turn's I/O callbacks); the flush encodes everything queued into one buffer of RaftBatch frames
 * and makes one socket write. When the socket reports backpressure, flushes wait for 'drain',
 * and the queue (bounded) absorbs the gap: a busy leader makes few large writes.
 */
export class MessageStream {
  private state: 'idle' | 'connecting' | 'ready' | 'backoff' | 'closed' = 'idle';
  private queue: Uint8Array[] = [];
  private queueBytes = 0;
  private flushScheduled = false;
  private awaitingDrain = false;
  private connection: FramedSocket | null = null;
  private readonly backoff: Backoff;
  private backoffTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private pingSeq = 0;
  private lastPongAtMs = 0;
  /** True once "peer is unreachable" was logged, until it is reachable again: logs state changes only. */
  private reportedDown = false;
  private readonly label: string;
  private readonly log: Logger;

  constructor(private readonly ctx: TransportContext, readonly peerId: bigint, private address: PeerAddress) {
    this.backoff = new Backoff(ctx.limits.reconnectBaseMs, ctx.limits.reconnectMaxMs);
    this.label = idLabel(peerId);
    this.log = ctx.logger.child({ peerId: this.label });
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  get queuedMessages(): number {
    return this.queue.length;
  }

  /** Queues messages for the peer; returns how many were accepted (the rest were dropped). */
  send(messages: readonly Uint8Array[]): number {
    if (this.state === 'closed' || this.state === 'backoff') {
      this.drop(messages.length, this.state === 'closed' ? 'closed' : 'unreachable');
      return 0;
    }
    const { queueMessagesMax, queueBytesMax, frameBytesMax } = this.ctx.limits;
    let accepted = 0;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      if (raftBatchFrameBytes(raftMessageEncodedBytes(m.length)) - FRAME_HEADER_BYTES > frameBytesMax) {
        this.drop(1, 'too_large');
        continue;
      }
      if (this.queue.length >= queueMessagesMax || this.queueBytes + m.length > queueBytesMax) {
        this.drop(1, 'queue_full');
        continue;
      }
      this.queue.push(m);
      this.queueBytes += m.length;
      accepted++;
    }
    if (this.state === 'idle' && accepted > 0) this.connect();
    else if (this.state === 'ready') this.scheduleFlush();
    return accepted;
  }

  setAddress(address: PeerAddress): void {
    if (address.host === this.address.host && address.port === this.address.port) return;
    this.address = address;
    // The old address may still answer as this peer; a clean redial is simplest.
    this.connection?.destroy('peer address changed');
  }

  close(): void {
    if (this.state === 'closed') return;
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    this.clearTimers();
    this.drop(this.queue.length, 'closed');
    this.clearQueue();
    if (wasReady) this.ctx.metrics.activePeers.dec({ Local: idLabel(this.ctx.memberId), Remote: this.label });
    this.connection?.destroy('transport closed');
    this.connection = null;
  }

  private connect(): void {
    this.state = 'connecting';
    const socket = dialPeer(this.address, this.ctx.tlsClient);
    const connection = new FramedSocket(socket, this.ctx.limits.handshakeFrameBytesMax, {
      onEnvelope: (envelope, frameBytes) => this.onEnvelope(connection, envelope, frameBytes),
      onFrameError: (reason, message) => {
        this.ctx.metrics.frameErrors.inc({ reason });
        this.ctx.metrics.receivedFailures.inc({ From: this.label });
        this.log.warn({ reason: message }, 'closing connection to peer: bad frame');
      },
      onClose: (reason) => this.onClose(connection, reason),
    });
    this.connection = connection;
    connection.write(encodeHandshakeFrame({
      clusterId: this.ctx.clusterId, fromMemberId: this.ctx.memberId, toMemberId: this.peerId,
      protocolVersion: PROTOCOL_VERSION, stream: StreamKind.Message,
    }));
    this.handshakeTimer = setTimeout(() => connection.destroy('handshake timed out'), this.ctx.limits.handshakeTimeoutMs);
    this.handshakeTimer.unref();
  }

  private onEnvelope(connection: FramedSocket, envelope: Envelope, frameBytes: number): void {
    if (connection !== this.connection) return;
    this.ctx.metrics.receivedBytes.inc({ From: this.label }, frameBytes);
    if (this.state === 'connecting') {
      if (envelope.kind !== 'handshakeReply') {
        connection.destroy(`expected a handshake reply, got ${envelope.kind}`);
        return;
      }
      const reply = envelope.reply;
      if (!reply.accepted) {
        this.ctx.metrics.handshakeRefusals.inc({ side: 'dialer', reason: 'refused_by_peer' });
        this.log.error({ address: formatPeerAddress(this.address), reason: reply.reason }, 'peer refused our handshake');
        if (reply.reason === REMOVED_MEMBER_REASON) this.ctx.handler.onRemovedFromCluster?.(this.peerId);
        connection.destroy(`refused by peer: ${reply.reason}`);
        return;
      }
      if (reply.memberId !== this.peerId) {
        this.ctx.metrics.handshakeRefusals.inc({ side: 'dialer', reason: 'wrong_member' });
        this.log.error({ address: formatPeerAddress(this.address), answeredAs: idLabel(reply.memberId) }, 'peer address is served by another member; not using it');
        connection.destroy(`address answered as member ${idLabel(reply.memberId)}`);
        return;
      }
      this.becomeReady(connection);
      return;
    }
    switch (envelope.kind) {
      case 'pong':
        this.lastPongAtMs = performance.now();
        this.ctx.metrics.roundTripSeconds.observe({ To: this.label }, Math.max(0, performance.now() - envelope.pong.sentAtMs) / 1000);
        return;
      case 'none':
        return;
      default:
        // The listener only ever sends Pong on a message stream: anything else is a broken peer.
        this.ctx.metrics.frameErrors.inc({ reason: 'unexpected_kind' });
        this.log.warn({ kind: envelope.kind }, 'closing connection to peer: unexpected frame');
        connection.destroy(`unexpected ${envelope.kind} frame on a message stream`);
    }
  }

  private becomeReady(connection: FramedSocket): void {
    this.state = 'ready';
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    connection.decoder.frameBytesMax = this.ctx.limits.frameBytesMax;
    connection.socket.on('drain', this.onDrain);
    this.backoff.reset();
    this.reportedDown = false;
    this.ctx.metrics.activePeers.inc({ Local: idLabel(this.ctx.memberId), Remote: this.label });
    this.log.info({ address: formatPeerAddress(this.address) }, 'peer stream connected');
    this.lastPongAtMs = performance.now();
    this.pingTimer = setInterval(this.onPingTimer, this.ctx.limits.pingIntervalMs);
    this.pingTimer.unref();
    this.scheduleFlush();
  }

  private onClose(connection: FramedSocket, reason: string): void {
    if (connection !== this.connection) return;
    this.connection = null;
    if (this.state === 'closed') return;
    const wasReady = this.state === 'ready';
    this.clearTimers();
    this.awaitingDrain = false;
    if (wasReady) this.ctx.metrics.activePeers.dec({ Local: idLabel(this.ctx.memberId), Remote: this.label });
    if (wasReady) this.log.warn({ reason }, 'peer stream lost');
    else if (!this.reportedDown) this.log.warn({ address: formatPeerAddress(this.address), reason }, 'peer unreachable');
    this.reportedDown = true;
    this.drop(this.queue.length, 'unreachable');
    this.clearQueue();
    this.state = 'backoff';
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = null;
      if (this.state === 'backoff') this.state = 'idle';
    }, this.backoff.nextDelayMs());
    this.backoffTimer.unref();
    this.ctx.handler.onPeerUnreachable?.(this.peerId);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.awaitingDrain || this.queue.length === 0) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const connection = this.connection;
    if (this.state !== 'ready' || connection === null || this.awaitingDrain || this.queue.length === 0) return;
    const frames = encodeRaftBatchFrames(this.queue, 0, this.queue.length, this.ctx.limits.frameBytesMax);
    this.clearQueue();
    this.ctx.metrics.sentBytes.inc({ To: this.label }, frames.length);
    if (!connection.write(frames)) this.awaitingDrain = true;
  };

  private readonly onDrain = (): void => {
    this.awaitingDrain = false;
    this.scheduleFlush();
  };

  private readonly onPingTimer = (): void => {
    const connection = this.connection;
    if (connection === null || this.state !== 'ready') return;
    const now = performance.now();
    if (now - this.lastPongAtMs > this.ctx.limits.pingTimeoutMs) {
      connection.destroy(`no pong for ${Math.round(now - this.lastPongAtMs)} ms`);
      return;
    }
    const frame = encodePingFrame({ seq: ++this.pingSeq, sentAtMs: now });
    this.ctx.metrics.sentBytes.inc({ To: this.label }, frame.length);
    connection.write(frame);
  };

  private drop(count: number, reason: 'unreachable' | 'queue_full' | 'too_large' | 'closed'): void {
    if (count === 0) return;
    this.ctx.metrics.droppedMessages.inc({ To: this.label, reason }, count);
    this.ctx.metrics.sentFailures.inc({ To: this.label }, count);
  }

  private clearQueue(): void {
    this.queue = [];
    this.queueBytes = 0;
  }

  private clearTimers(): void {
    for (const t of [this.backoffTimer, this.handshakeTimer]) if (t) clearTimeout(t);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.backoffTimer = this.handshakeTimer = this.pingTimer = null;
  }
}
