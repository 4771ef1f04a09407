/**
 * A TCP proxy for one directed link between cluster members, so that partitions come from the
 * test and not from hooks in the server: member A's peer URL for B points at a proxy whose target
 * is B's real peer port, and the test blocks and heals the proxy.
 *
 *     const aToB = await FaultProxy.start({ targetPort: b.peerPort });
 *     // start A with --initial-cluster b=http://127.0.0.1:${aToB.port} ...
 *     aToB.block();            // A can no longer reach B (B -> A is another proxy)
 *     aToB.heal();
 *     await aToB.close();
 *
 * Two ways to block, because members see partitions two ways in the wild:
 * - 'reset' (default): every current connection is reset (RST to both ends) and every new one is
 *   reset as soon as it is accepted. The peer sees errors at once and reconnects in a loop, which
 *   keeps failing until heal.
 * - 'blackhole': bytes stop flowing both ways but nothing is closed, as when packets are dropped:
 *   current connections stall (the proxy stops reading, so the senders' buffers fill), new ones
 *   are accepted but not connected onward. The peer only notices through its own timeouts. On
 *   heal the stalled bytes flow again, as TCP's retransmissions would deliver them.
 *
 * `setDelay(ms)` holds every chunk for ms before forwarding it, in both directions, keeping order.
 *
 * One proxy is one listening port and the connection pairs it forwards; `close()` destroys them
 * all and releases the port, so a test that closes its proxies leaves no handle behind.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export type BlockMode = 'reset' | 'blackhole';

export interface FaultProxyOptions {
  /** Where connections are forwarded; default 127.0.0.1. */
  targetHost?: string;
  targetPort: number;
  /** Default 127.0.0.1. */
  listenHost?: string;
  /** Default 0: a free port chosen by the OS, read back from `port`. */
  listenPort?: number;
}

export interface FaultProxyStats {
  /** Connections accepted and forwarded (or held, under a blackhole). */
  accepted: number;
  /** Connections reset on accept because the proxy was blocked in 'reset' mode. */
  refused: number;
  /** Bytes read from either side (delivered or still queued for a delay or a blackhole). */
  receivedBytes: number;
  /** Bytes delivered to either side. */
  forwardedBytes: number;
}

export class FaultProxy {
  readonly port: number;
  readonly stats: FaultProxyStats = { accepted: 0, refused: 0, receivedBytes: 0, forwardedBytes: 0 };
  private mode: BlockMode | 'open' = 'open';
  private delayMs = 0;
  private closed = false;
  private readonly links = new Set<Link>();

  private constructor(private readonly server: Server, private readonly options: Required<FaultProxyOptions>) {
    const address = server.address();
    if (address === null || typeof address !== 'object') throw new Error('fault proxy: no listening address');
    this.port = address.port;
    server.on('connection', (socket) => {
      socket.setNoDelay(true);
      this.accept(socket);
    });
  }

  static start(options: FaultProxyOptions): Promise<FaultProxy> {
    const full: Required<FaultProxyOptions> = { targetHost: '127.0.0.1', listenHost: '127.0.0.1', listenPort: 0, ...options };
    // allowHalfOpen: a FIN from one side is passed on as a FIN, not turned into a full close.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(full.listenPort, full.listenHost, () => {
        server.off('error', reject);
        resolve(new FaultProxy(server, full));
      });
    });
  }

  /** 'open', or the mode of the current block. */
  get state(): BlockMode | 'open' {
    return this.mode;
  }

  /** Connection pairs alive now (held ones included). */
  get connectionCount(): number {
    return this.links.size;
  }

  /** Cuts the link: see the header for the two modes. Blocking again switches mode. */
  block(mode: BlockMode = 'reset'): void {
    this.mode = mode;
    for (const link of [...this.links]) {
      if (mode === 'reset') link.destroy(true);
      else link.hold();
    }
  }

  /** Lets bytes flow again: held connections resume (and connect onward if they never did). */
  heal(): void {
    this.mode = 'open';
    for (const link of this.links) link.release();
  }

  /** Delay applied to chunks read from now on, both directions; 0 forwards at once. */
  setDelay(ms: number): void {
    if (!(Number.isFinite(ms) && ms >= 0)) throw new Error(`fault proxy: delay must be a finite ms >= 0, got ${ms}`);
    this.delayMs = ms;
  }

  get delay(): number {
    return this.delayMs;
  }

  /**
   * Stops listening, resets every connection pair (a FIN alone would leave a half-open peer
   * waiting) and resolves once the port is released.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const link of [...this.links]) link.destroy(true);
    return done;
  }

  private accept(client: Socket): void {
    if (this.closed || this.mode === 'reset') {
      this.stats.refused++;
      client.on('error', () => { /* the reset we send may race the peer's own writes */ });
      client.resetAndDestroy();
      return;
    }
    this.stats.accepted++;
    const link = new Link(client, this.options, () => this.delayMs, this.stats, () => this.links.delete(link));
    this.links.add(link);
    if (this.mode === 'blackhole') link.hold();
    else link.release();
  }
}

/**
 * One accepted connection and its onward connection to the target. The client socket starts
 * paused (pauseOnConnect) and unconnected onward until the first `release()`.
 */
class Link {
  private upstream: Socket | undefined;
  private held = true;
  private destroyed = false;
  private readonly pipes: Pipe[] = [];

  constructor(
    private readonly client: Socket,
    private readonly options: Required<FaultProxyOptions>,
    private readonly delayMs: () => number,
    private readonly stats: FaultProxyStats,
    private readonly onDestroyed: () => void,
  ) {
    // Any error or close on either side ends the pair: a proxy cannot repair a broken stream.
    client.on('error', () => this.destroy(false));
    client.on('close', () => this.destroy(false));
  }

  hold(): void {
    this.held = true;
    for (const pipe of this.pipes) pipe.hold();
  }

  release(): void {
    if (this.destroyed) return;
    this.held = false;
    if (this.upstream === undefined) {
      this.connectUpstream();
      return;
    }
    for (const pipe of this.pipes) pipe.release();
  }

  private connectUpstream(): void {
    const upstream = connect({ host: this.options.targetHost, port: this.options.targetPort, allowHalfOpen: true });
    // No Nagle on either hop: raft's small messages would otherwise wait for delayed ACKs (~40 ms).
    upstream.setNoDelay(true);
    this.upstream = upstream;
    upstream.pause();
    // Target down: the client sees its connection reset, the nearest we can get to a refusal.
    upstream.on('error', () => this.destroy(true));
    upstream.on('close', () => this.destroy(false));
    upstream.once('connect', () => {
      if (this.destroyed) return;
      this.pipes.push(new Pipe(this.client, upstream, this.delayMs, this.stats), new Pipe(upstream, this.client, this.delayMs, this.stats));
      // A block may have come while connecting.
      for (const pipe of this.pipes) {
        if (this.held) pipe.hold();
        else pipe.release();
      }
    });
  }

  /** Destroys both sockets, with an RST if `reset` (a partition, the proxy closing) or a plain close. */
  destroy(reset: boolean): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const pipe of this.pipes) pipe.stop();
    for (const socket of [this.client, this.upstream]) {
      if (socket === undefined || socket.destroyed) continue;
      socket.on('error', () => { /* already torn down on purpose */ });
      if (reset) socket.resetAndDestroy();
      else socket.destroy();
    }
    this.onDestroyed();
  }
}

/**
 * One direction of a link. Chunks are forwarded in order; each waits until its due time (read
 * time + delay, never before the previous chunk's). While held, the source is paused and queued
 * chunks wait. Backpressure: if the destination's buffer is full, the source pauses until 'drain'.
 */
class Pipe {
  private readonly queue: Array<{ chunk: Buffer; dueMs: number }> = [];
  private lastDueMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private held = true;
  private waitingDrain = false;
  private sourceEnded = false;
  private stopped = false;

  constructor(
    private readonly source: Socket,
    private readonly destination: Socket,
    private readonly delayMs: () => number,
    private readonly stats: FaultProxyStats,
  ) {
    source.on('data', (chunk: Buffer) => this.onData(chunk));
    source.on('end', () => {
      this.sourceEnded = true;
      this.flush();
    });
    destination.on('drain', () => {
      this.waitingDrain = false;
      this.resumeSource();
    });
  }

  hold(): void {
    this.held = true;
    this.source.pause();
  }

  release(): void {
    this.held = false;
    this.resumeSource();
    this.flush();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }

  private resumeSource(): void {
    if (!this.held && !this.waitingDrain && !this.stopped) this.source.resume();
  }

  private onData(chunk: Buffer): void {
    this.stats.receivedBytes += chunk.length;
    const now = performance.now();
    this.lastDueMs = Math.max(now + this.delayMs(), this.lastDueMs);
    this.queue.push({ chunk, dueMs: this.lastDueMs });
    this.flush();
  }

  /** Writes every chunk that is due, then re-arms the timer for the next one. */
  private flush(): void {
    if (this.stopped || this.held) return;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.dueMs <= now) {
      const { chunk } = this.queue.shift()!;
      this.stats.forwardedBytes += chunk.length;
      if (!this.destination.write(chunk) && !this.waitingDrain) {
        this.waitingDrain = true;
        this.source.pause();
      }
    }
    if (this.queue.length > 0) {
      this.timer = setTimeout(() => { this.timer = undefined; this.flush(); }, Math.max(0, this.queue[0]!.dueMs - now));
    } else if (this.sourceEnded && !this.destination.writableEnded) {
      // The source's FIN goes on after its last byte.
      this.destination.end();
    }
  }
}
