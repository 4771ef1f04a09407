/**
 * Partitions between real members, from the test's own proxies. Every member advertises a peer
 * URL that is a front proxy (PeerFront) owned by the test, not its real peer port. Member ids are
 * derived from the advertised URLs, so every member must see the same URL for a peer; per-link
 * control therefore happens behind the front: it reads the first frame of each inbound connection
 * (the peer handshake, which names the dialing member), then routes the connection through the
 * FaultProxy of that directed link (dialer -> this member), which forwards to the real port.
 *
 *     dialer A --> front(B) --peek handshake: from A--> FaultProxy(A->B) --> B's peer port
 *
 * `isolate(x)` blocks every link into and out of x; `heal()` opens them all.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { decodeEnvelope, FRAME_HEADER_BYTES } from '../../src/peer/peer-codec.js';
import { FaultProxy, type BlockMode } from './fault-proxy.js';

/** Most bytes a handshake frame may take (the transport's own bound is 1 KiB). */
const HANDSHAKE_BYTES_MAX = 1024;

export class PeerFront {
  readonly port: number;
  /** Directed links into this member, by dialer member id. */
  private readonly links = new Map<bigint, FaultProxy>();
  private readonly pendingLinks = new Map<bigint, Promise<FaultProxy>>();
  private readonly sockets = new Set<Socket>();
  private blockAllMode: BlockMode | null = null;
  private closed = false;

  private constructor(private readonly server: Server, private readonly targetPort: number) {
    const address = server.address();
    if (address === null || typeof address !== 'object') throw new Error('peer front: no address');
    this.port = address.port;
    server.on('connection', (socket) => this.accept(socket));
  }

  static start(targetPort: number): Promise<PeerFront> {
    const server = createServer({ allowHalfOpen: true });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve(new PeerFront(server, targetPort));
      });
    });
  }

  /** Blocks the link from `from` into this member (current connections are cut). */
  async block(from: bigint, mode: BlockMode = 'reset'): Promise<void> {
    (await this.link(from)).block(mode);
  }

  /** Blocks every link into this member, including from dialers not seen yet. */
  blockAll(mode: BlockMode = 'reset'): void {
    this.blockAllMode = mode;
    for (const link of this.links.values()) link.block(mode);
  }

  heal(): void {
    this.blockAllMode = null;
    for (const link of this.links.values()) link.heal();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    await Promise.all([...this.links.values()].map((l) => l.close()));
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private link(from: bigint): Promise<FaultProxy> {
    const existing = this.links.get(from);
    if (existing) return Promise.resolve(existing);
    let pending = this.pendingLinks.get(from);
    if (!pending) {
      pending = FaultProxy.start({ targetPort: this.targetPort }).then((proxy) => {
        this.links.set(from, proxy);
        if (this.blockAllMode !== null) proxy.block(this.blockAllMode);
        return proxy;
      });
      this.pendingLinks.set(from, pending);
    }
    return pending;
  }

  /** Reads the handshake frame, then splices the connection into its directed link. */
  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    // No Nagle on any hop: raft's small messages would otherwise wait for delayed ACKs (~40 ms).
    socket.setNoDelay(true);
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (head.length < FRAME_HEADER_BYTES) return;
      const length = head.readUInt32BE(0);
      if (length > HANDSHAKE_BYTES_MAX) {
        socket.destroy();
        return;
      }
      if (head.length < FRAME_HEADER_BYTES + length) return;
      socket.off('data', onData);
      socket.pause();
      let from: bigint;
      try {
        const envelope = decodeEnvelope(head.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length));
        if (envelope.kind !== 'handshake') throw new Error(`first frame is ${envelope.kind}`);
        from = envelope.handshake.fromMemberId;
      } catch {
        socket.destroy();
        return;
      }
      void this.link(from).then((proxy) => {
        if (socket.destroyed) return;
        const onward = connect(proxy.port, '127.0.0.1');
        onward.setNoDelay(true);
        this.sockets.add(onward);
        onward.on('close', () => { this.sockets.delete(onward); socket.destroy(); });
        onward.on('error', () => onward.destroy());
        socket.on('close', () => onward.destroy());
        onward.write(head);
        socket.pipe(onward);
        onward.pipe(socket);
        socket.resume();
      });
    };
    socket.on('data', onData);
  }
}

/** The fronts of a whole cluster, by member index, with the member ids they belong to. */
export class PeerLinks {
  constructor(readonly fronts: PeerFront[], readonly ids: bigint[]) {}


  /** Cuts member i off from every other member, both directions. */
  async isolate(i: number): Promise<void> {
    this.fronts[i]!.blockAll();
    await Promise.all(this.fronts.map((front, k) => (k === i ? undefined : front.block(this.ids[i]!))));
  }

  heal(): void {
    for (const front of this.fronts) front.heal();
  }

  async close(): Promise<void> {
    await Promise.all(this.fronts.map((f) => f.close()));
  }
}
