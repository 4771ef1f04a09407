/**
 * Reconnect delays: capped exponential backoff with jitter. Attempt n (from 0) waits a random time
 * in [d/2, d] where d = min(maxMs, baseMs * 2^n). The jitter keeps members that lost a peer at the
 * same moment from redialing it in lockstep; the lower half-bound keeps the delay from collapsing
 * to zero. Worked example with base 50, max 5000: attempts wait 25-50, 50-100, 100-200, ...,
 * then 2500-5000 ms from the 7th attempt on. reset() after a successful handshake.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  get attempts(): number {
    return this.attempt;
  }

  nextDelayMs(): number {
    // 2^30 * base is far past any cap; stop doubling there so the number stays finite.
    const exponent = Math.min(this.attempt, 30);
    this.attempt++;
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** exponent);
    return ceiling / 2 + (this.random() * ceiling) / 2;
  }

  reset(): void {
    this.attempt = 0;
  }
}
