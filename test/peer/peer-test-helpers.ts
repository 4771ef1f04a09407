import { connect, type Socket } from 'node:net';
import { PeerTransport, type PeerTransportOptions } from '../../src/peer/peer-transport.js';
import { FrameDecoder } from '../../src/peer/frame-decoder.js';
import { decodeEnvelope, type Envelope } from '../../src/peer/peer-codec.js';
import type { ReceivedSnapshot } from '../../src/peer/transport-context.js';

export const CLUSTER = 0xc1a55e1dn;

/** Collects what a transport hands up. */
export class Inbox {
  messages: { from: bigint; message: Buffer }[] = [];
  batches = 0;
  snapshots: { from: bigint; snapshot: ReceivedSnapshot }[] = [];
  snapshotFailures: { from: bigint; reason: string }[] = [];
  unreachable: bigint[] = [];
  handler = {
    onMessages: (from: bigint, messages: Uint8Array[]) => {
      this.batches++;
      for (const m of messages) this.messages.push({ from, message: Buffer.from(m) });
    },
    onSnapshot: (from: bigint, snapshot: ReceivedSnapshot) => { this.snapshots.push({ from, snapshot }); },
    onSnapshotFailed: (from: bigint, reason: string) => { this.snapshotFailures.push({ from, reason }); },
    onPeerUnreachable: (to: bigint) => { this.unreachable.push(to); },
  };
}

export async function startTransport(memberId: bigint, inbox: Inbox, extra: Partial<PeerTransportOptions> = {}): Promise<PeerTransport> {
  const t = new PeerTransport({ clusterId: CLUSTER, memberId, handler: inbox.handler, ...extra });
  await t.start();
  return t;
}

/** Polls `condition` until it holds; fails with `what` after a generous bound (no duration asserted). */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** waitFor with an async condition (metrics are read asynchronously). */
export async function waitForAsync(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function metricValue(t: PeerTransport, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await t.registry.getSingleMetric(name)?.get();
  if (!metric) throw new Error(`no metric ${name}`);
  let sum = 0;
  for (const v of metric.values) {
    if (Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want)) sum += v.value;
  }
  return sum;
}

/** A raw TCP client speaking (or abusing) the peer protocol, for refusal and fuzz tests. */
export class RawPeer {
  readonly frames: Envelope[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => this.decoder.push(chunk, (p) => this.frames.push(decodeEnvelope(p))));
    socket.on('error', () => {});
    socket.on('close', () => { this.closed = true; });
  }

  static async connect(port: number): Promise<RawPeer> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawPeer(socket);
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  async waitClosed(): Promise<void> {
    await waitFor(() => this.closed, 'raw peer connection closed');
  }
}

export function randomBytesSeeded(random: () => number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  let i = 0;
  for (; i + 4 <= length; i += 4) b.writeUInt32LE((random() * 4294967296) >>> 0, i);
  for (; i < length; i++) b[i] = (random() * 256) | 0;
  return b;
}

/** mulberry32: a small seeded PRNG so failures reproduce from the printed seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
