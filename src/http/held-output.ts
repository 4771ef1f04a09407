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
 * The bound: one timer for the port, ticking every holdMs / 2 while anything is held. A connection
 * that begins to hold joins the current round; a tick writes the connections of the round before
 * (they have held for at least holdMs / 2) and starts a new round. So each holds between holdMs / 2
 * and holdMs: not less (a tick that flushed every holder would cut short the ones that had just
 * begun, and with a thousand connections most ACKs would go alone), never more.
 */
export interface HoldingConnection {
  /** Writes what it held (the timer ran out). */
  flushHeld(): void;
}

export class HeldOutput {
  /** Connections that began to hold since the last tick. Each has output waiting, no flush scheduled. */
  private current = new Set<HoldingConnection>();
  /** Connections that began to hold before the last tick: the next tick writes them. */
  private previous = new Set<HoldingConnection>();
  private timer: NodeJS.Timeout | undefined;
  private readonly fire = (): void => this.tick();

  constructor(readonly holdMs: number) {}

  add(connection: HoldingConnection): void {
    this.current.add(connection);
    if (this.timer === undefined) {
      this.timer = setInterval(this.fire, Math.max(1, this.holdMs / 2));
      this.timer.unref();
    }
  }

  /** The connection wrote (or dropped) its held output by itself. */
  delete(connection: HoldingConnection): void {
    if (!this.current.delete(connection)) this.previous.delete(connection);
  }

  /** Every held connection writes now (the port is closing). */
  flushAll(): void {
    this.stop();
    const due = [...this.previous, ...this.current];
    this.previous = new Set();
    this.current = new Set();
    for (const connection of due) connection.flushHeld();
  }

  /** @internal What the timer runs: writes the round before, starts a new one. */
  tick(): void {
    const due = this.previous;
    this.previous = this.current;
    this.current = new Set();
    if (this.previous.size === 0) this.stop();
    for (const connection of due) connection.flushHeld();
  }

  private stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
