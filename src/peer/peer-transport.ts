import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Registry } from 'prom-client';
import { assert } from '../platform/assert.js';
import { silentLogger, type Logger } from '../platform/logger.js';
import { InboundConnection, type InboundRegistry } from './inbound-connection.js';
import { MessageStream } from './message-stream.js';
import { parsePeerAddress, type PeerAddress } from './peer-address.js';
import { PeerError } from './peer-error.js';
import { defaultPeerLimits, type PeerLimits } from './peer-limits.js';
import { idLabel, PeerMetrics } from './peer-metrics.js';
import { loadPeerTls, type PeerTlsContext, type PeerTlsOptions } from './peer-tls.js';
import { SampledWarnings } from '../platform/sampled-warnings.js';
import { sendSnapshot, type SnapshotSource } from './snapshot-sender.js';
import type { PeerHandler, TransportContext } from './transport-context.js';

export interface PeerTransportOptions {
  clusterId: bigint;
  memberId: bigint;
  handler: PeerHandler;
  /** Where to listen for peers. Port 0 picks a free port (see `address` after start()). */
  listenHost?: string;
  listenPort?: number;
  tls?: PeerTlsOptions;
  /** Metrics go here; default a fresh Registry, so two transports in one process never collide. */
  registry?: Registry;
  logger?: Logger;
  limits?: Partial<PeerLimits>;
  /**
   * Inbound snapshots are streamed to temporary files here as they arrive and handed up by path
   * (ReceivedSnapshot.path). Without it they are buffered in memory (up to snapshotBytesMax).
   */
  snapshotDir?: string;
}

/**
 * The peer transport of one member: a listener for peers' connections, and per peer one lazily
 * dialed outbound message stream (message-stream.ts) plus a connection per snapshot transfer
 * (snapshot-sender.ts). The member uses:
 *
 *   const t = new PeerTransport({ clusterId, memberId, handler });
 *   await t.start();
 *   t.addPeer(2n, 'https://10.0.0.2:2380');
 *   t.send(2n, [encodedRaftMessage]);             // never blocks; drops (counted) when it must
 *   await t.sendSnapshot(2n, snapshotBytes, meta); // resolves once the peer verified it
 *   await t.close();
 *
 * Inbound traffic reaches handler.onMessages / onSnapshot, only from members added as peers.
 */
export class PeerTransport {
  readonly registry: Registry;
  private readonly ctx: TransportContext & { tlsClient: PeerTlsContext['client'] | undefined };
  private readonly streams = new Map<bigint, MessageStream>();
  private readonly addresses = new Map<bigint, PeerAddress>();
  /** Members removed from the cluster: their handshakes are refused with REMOVED_MEMBER_REASON. */
  private readonly removed = new Set<bigint>();
  private readonly inbound = new Set<InboundConnection>();
  private readonly inboundMessageStreams = new Map<bigint, InboundConnection>();
  private readonly abort = new AbortController();
  private server: Server | null = null;
  private boundAddress: PeerAddress | null = null;
  private closed = false;
  private readonly identity: InboundRegistry;
  /** Inbound connections that may still await their handshake, oldest first. */
  private readonly pendingHandshakes = new Set<InboundConnection>();

  constructor(private readonly options: PeerTransportOptions) {
    assert(options.clusterId > 0n && options.memberId > 0n, () => `cluster and member ids must be non-zero: ${options.clusterId}, ${options.memberId}`);
    this.registry = options.registry ?? new Registry();
    const limits = { ...defaultPeerLimits, ...options.limits };
    this.ctx = {
      clusterId: options.clusterId,
      memberId: options.memberId,
      limits,
      metrics: new PeerMetrics(this.registry),
      logger: (options.logger ?? silentLogger).child({ component: 'peer', memberId: idLabel(options.memberId) }),
      refusalWarnings: new SampledWarnings(),
      handler: options.handler,
      tlsClient: undefined,
      snapshotDir: options.snapshotDir,
    };
    const streams = this.inboundMessageStreams;
    const inbound = this.inbound;
    const pending = this.pendingHandshakes;
    this.identity = {
      clusterId: options.clusterId,
      memberId: options.memberId,
      isKnownPeer: (id) => this.addresses.has(id),
      isRemovedPeer: (id) => this.removed.has(id),
      registerMessageStream(from, connection) {
        const older = streams.get(from);
        streams.set(from, connection);
        // The dialer keeps one stream per peer: an older one is a leftover of a lost connection.
        older?.destroy('replaced by a newer stream from the same peer');
      },
      unregister(connection) {
        inbound.delete(connection);
        pending.delete(connection);
        const from = connection.from;
        if (from !== null && streams.get(from) === connection) streams.delete(from);
      },
    };
  }

  /** Loads TLS files (if any) and starts listening. */
  async start(): Promise<PeerAddress> {
    assert(this.server === null, 'PeerTransport.start called twice');
    let tls: PeerTlsContext | undefined;
    if (this.options.tls) {
      tls = await loadPeerTls(this.options.tls);
      this.ctx.tlsClient = tls.client;
    }
    const onSocket = (socket: Socket) => this.onInboundSocket(socket);
    const server = tls
      ? createTlsServer({ ...tls.server, handshakeTimeout: this.ctx.limits.handshakeTimeoutMs }, onSocket)
      : createNetServer(onSocket);
    server.maxConnections = this.ctx.limits.inboundConnectionsMax;
    if (tls) {
      server.on('tlsClientError', (err: Error, socket: Socket) => {
        this.ctx.metrics.handshakeRefusals.inc({ side: 'listener', reason: 'tls' });
        this.ctx.logger.warn({ remoteAddress: `${socket.remoteAddress}:${socket.remotePort}`, reason: err.message }, 'refusing peer connection: TLS handshake failed');
      });
    }
    this.server = server;
    const host = this.options.listenHost ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.listenPort ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.ctx.logger.error({ err: err.message }, 'peer listener error'));
    const bound = server.address();
    assert(bound !== null && typeof bound === 'object', 'peer listener has no address');
    this.boundAddress = { host, port: bound.port };
    this.ctx.logger.info({ address: `${host}:${bound.port}`, tls: tls !== undefined }, 'listening for peers');
    return this.boundAddress;
  }

  /** Where this transport listens (after start()). */
  get address(): PeerAddress {
    assert(this.boundAddress !== null, 'PeerTransport not started');
    return this.boundAddress;
  }

  get metrics(): PeerMetrics {
    return this.ctx.metrics;
  }

  /** Adds a peer, or moves it to a new address. `address`: "host:port" or a peer URL. */
  addPeer(id: bigint, address: string | PeerAddress): void {
    assert(id !== this.ctx.memberId, () => `member ${idLabel(id)} cannot be its own peer`);
    if (this.closed) return;
    const parsed = typeof address === 'string' ? parsePeerAddress(address) : address;
    this.removed.delete(id);
    this.addresses.set(id, parsed);
    const stream = this.streams.get(id);
    if (stream) stream.setAddress(parsed);
    else this.streams.set(id, new MessageStream(this.ctx, id, parsed));
  }

  /** Removes a peer: its streams close, queued messages are dropped, its dialers are refused. */
  removePeer(id: bigint): void {
    this.addresses.delete(id);
    this.removed.add(id);
    this.streams.get(id)?.close();
    this.streams.delete(id);
    for (const connection of this.inbound) if (connection.from === id) connection.destroy('peer removed');
  }

  hasPeer(id: bigint): boolean {
    return this.addresses.has(id);
  }

  /**
   * Queues raft messages (opaque encoded bytes) for a peer and returns at once. Returns how many
   * were accepted; the rest were dropped and counted (peer unreachable, queue full, too large).
   * The caller must not modify the bytes afterwards (they are written on the next turn).
   */
  send(to: bigint, messages: Uint8Array | readonly Uint8Array[]): number {
    const list = messages instanceof Uint8Array ? [messages] : messages;
    const stream = this.streams.get(to);
    if (stream === undefined) {
      this.ctx.metrics.droppedMessages.inc({ To: idLabel(to), reason: 'unknown_peer' }, list.length);
      this.ctx.metrics.sentFailures.inc({ To: idLabel(to) }, list.length);
      return 0;
    }
    return stream.send(list);
  }

  /** True while the outbound message stream to `to` is connected and past its handshake. */
  isConnected(to: bigint): boolean {
    return this.streams.get(to)?.isReady ?? false;
  }

  /** Inbound connections open right now, authenticated or not (for tests and leak checks). */
  get inboundConnections(): number {
    return this.inbound.size;
  }

  /** Messages waiting in `to`'s queue (for tests and the member's flow control). */
  queuedMessages(to: bigint): number {
    return this.streams.get(to)?.queuedMessages ?? 0;
  }

  /**
   * Streams a snapshot to a peer on its own connection. Resolves once the peer verified the
   * checksum and took it; rejects with PeerError otherwise (Raft's ReportSnapshot failure).
   */
  sendSnapshot(to: bigint, source: SnapshotSource, metadata: Uint8Array = new Uint8Array(0)): Promise<void> {
    const address = this.addresses.get(to);
    if (this.closed) return Promise.reject(new PeerError('Closed', 'peer transport is closed'));
    if (address === undefined) return Promise.reject(new PeerError('UnknownPeer', `member ${idLabel(to)} is not a peer`));
    return sendSnapshot(this.ctx, to, address, source, metadata, this.abort.signal);
  }

  /** Closes every connection and the listener. Sends after close are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    for (const stream of this.streams.values()) stream.close();
    for (const connection of this.inbound) connection.destroy('transport closed');
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private onInboundSocket(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.evictOldestPendingHandshakes();
    const connection = new InboundConnection(this.ctx, this.identity, socket);
    this.inbound.add(connection);
    this.pendingHandshakes.add(connection);
  }

  /**
   * Makes room for one more connection awaiting its handshake: past handshakesPendingMax the
   * oldest waiting one is closed (peer-limits.ts says why). Connections that got through or closed
   * are dropped from the set here; it never holds more than the cap plus the few just settled.
   */
  private evictOldestPendingHandshakes(): void {
    let waiting = 0;
    for (const c of this.pendingHandshakes) {
      if (c.awaitingHandshake) waiting++;
      else this.pendingHandshakes.delete(c);
    }
    for (const c of this.pendingHandshakes) {
      if (waiting < this.ctx.limits.handshakesPendingMax) break;
      this.pendingHandshakes.delete(c);
      waiting--;
      this.ctx.metrics.handshakeRefusals.inc({ side: 'listener', reason: 'evicted' });
      this.ctx.refusalWarnings.warn(this.ctx.logger, { handshakesPendingMax: this.ctx.limits.handshakesPendingMax }, 'closing the oldest peer connection still awaiting its handshake: too many waiting');
      c.destroy('evicted: too many connections awaiting their handshake');
    }
  }
}
