/**
 * What etcdctl's lock and elect stand on: clientv3's concurrency.Session (a lease granted with the
 * session's TTL and kept alive every TTL/3 over a LeaseKeepAlive stream; `done` once the lease is
 * gone) and the interrupt that ends them (SIGINT or SIGTERM, which etcdctl catches to unlock or
 * resign before it exits).
 *
 * Like clientv3, a broken keep-alive stream is reopened (every half second) and the session ends
 * only when the server says the lease is gone (TTL 0) or no renewal has succeeded for a whole
 * TTL, by which time the server has expired the lease anyway.
 */
import type * as grpc from '@grpc/grpc-js';
import type { LeaseGrantResponse, LeaseKeepAliveResponse } from '../proto/etcd-types.js';
import type { CommandContext } from './ctl-context.js';

const REOPEN_DELAY_MS = 500;

export class Session {
  /** Resolves once the lease is gone (revoked, expired, or unrenewable for a whole TTL). */
  readonly done: Promise<void>;
  private markDone!: () => void;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private stream: grpc.ClientDuplexStream<object, LeaseKeepAliveResponse> | undefined;
  private lastRenewedMs = Date.now();

  private constructor(private readonly ctx: CommandContext, readonly lease: bigint, private readonly ttlSeconds: number) {
    this.done = new Promise<void>((resolve) => { this.markDone = resolve; });
  }

  /** Grants the session's lease (clientv3 NewSession) and starts keeping it alive. */
  static async open(ctx: CommandContext, ttlSeconds: number): Promise<Session> {
    const granted = await ctx.client().call<object, LeaseGrantResponse>('Lease', 'LeaseGrant', { TTL: ttlSeconds, ID: 0n }, { deadlineMs: ctx.deadline() });
    const session = new Session(ctx, granted.ID ?? 0n, Number(granted.TTL ?? ttlSeconds));
    session.renewSoon(0);
    return session;
  }

  /** Stops keeping the lease alive (the lease itself lives out its TTL, as etcdctl leaves it). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.dropStream();
  }

  private renewSoon(delayMs: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.renew(), delayMs);
  }

  private async renew(): Promise<void> {
    if (this.closed) return;
    if (Date.now() - this.lastRenewedMs > this.ttlSeconds * 1000) return this.end();
    try {
      this.stream ??= await this.openStream();
      this.stream.write({ ID: this.lease });
    } catch {
      // No endpoint right now: clientv3 keeps trying until the lease would have expired.
      this.dropStream();
      this.renewSoon(REOPEN_DELAY_MS);
    }
  }

  private async openStream(): Promise<grpc.ClientDuplexStream<object, LeaseKeepAliveResponse>> {
    const stream = await this.ctx.client().stream<object, LeaseKeepAliveResponse>('Lease', 'LeaseKeepAlive', { deadlineMs: this.ctx.deadline() });
    stream.on('data', (response: LeaseKeepAliveResponse) => {
      const ttl = Number(response.TTL ?? 0);
      if (ttl <= 0) return this.end();
      this.lastRenewedMs = Date.now();
      this.renewSoon(Math.max(REOPEN_DELAY_MS, (ttl * 1000) / 3));
    });
    const broken = (): void => {
      if (this.stream !== stream) return;
      this.dropStream();
      this.renewSoon(REOPEN_DELAY_MS);
    };
    stream.on('error', broken);
    stream.on('end', broken);
    return stream;
  }

  private dropStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    if (stream === undefined) return;
    // Cancelling our own stream reports CANCELLED as an 'error': expected, not a failure.
    stream.on('error', () => undefined);
    stream.cancel();
  }

  private end(): void {
    this.close();
    this.markDone();
  }
}

/**
 * SIGINT or SIGTERM as an AbortSignal (etcdctl's signal.Notify for lock and elect), while the
 * command runs; `release` restores the default handling.
 */
export function interruptSignal(): { signal: AbortSignal; interrupted: Promise<void>; release(): void } {
  const abort = new AbortController();
  let release!: () => void;
  const interrupted = new Promise<void>((resolve) => {
    const onSignal = (): void => {
      abort.abort();
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    release = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
  });
  return { signal: abort.signal, interrupted, release };
}
