/**
 * Output a connection may hold back for a short while, waiting for company: one timer for every
 * connection of a client port, not one each.
 *
 * Why: grpc-go clients (etcdctl, clientv3, Kubernetes) send a BDP PING with the request that follows
 * each reply they read (their window estimator never grows on small replies, so it pings forever),
 * preceded by a WINDOW_UPDATE, all in one write. Answered at once, each PING ACK costs its own
 * socket write, and on these machines a small write on loopback costs 30-100 µs of the main thread:
 * with 500 clients of one call each (`etcdctl check perf --load=l`), 2.5-3 writes per put. Held
 * until the reply of the call that came with it, the ACK rides in the reply's write. Nothing waits
 * on a PING ACK but the client's window estimate (a late ACK makes it a larger sample, which grpc-go
 * reads as more bandwidth, never less) and keepalive (seconds), so a short hold costs them nothing.
 *
 * The bound: the timer is armed when the first connection begins to hold and flushes every holding
 * connection when it fires, so none holds longer than `holdMs`.
 */
export interface HoldingConnection {
  /** Writes what it held (the timer ran out). */
  flushHeld(): void;
}

export class HeldOutput {
  /** Connections holding output. Invariant: each has output waiting and no flush scheduled. */
  private holding = new Set<HoldingConnection>();
  private timer: NodeJS.Timeout | undefined;
  private readonly fire = (): void => this.flushAll();

  constructor(readonly holdMs: number) {}

  add(connection: HoldingConnection): void {
    this.holding.add(connection);
    if (this.timer === undefined) {
      this.timer = setTimeout(this.fire, this.holdMs);
      this.timer.unref();
    }
  }

  /** The connection wrote (or dropped) its held output by itself. */
  delete(connection: HoldingConnection): void {
    this.holding.delete(connection);
  }

  /** Every held connection writes now (the port is closing, or the timer ran out). */
  flushAll(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const due = this.holding;
    this.holding = new Set();
    for (const connection of due) connection.flushHeld();
  }
}
