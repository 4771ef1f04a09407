import type { Logger } from '../platform/logger.js';

/**
 * Warnings about hostile or broken dialers, rate-limited per message text. Anyone who can reach
 * the peer port can make us refuse a connection, and each refusal deserves a line in the log, but
 * not 4,000 lines for 3,000 connections of an attack (measured before this existed, by
 * test/cluster/hostile-peers.test.ts): log writes are main-thread work and disk the attacker
 * would control. Per message, at most `perWindow` lines go out in each `windowMs`; the first line
 * of the next window carries `suppressed`, the count left out since. Counters (metrics) still see
 * every event: only the log is sampled.
 *
 * Example (perWindow 2): refusals at t = 0, 1, 2, 3 ms and 10.5 s log lines at 0 and 1 ms, drop
 * the two others, and log the one at 10.5 s with suppressed: 2.
 */
export class SampledWarnings {
  private readonly windows = new Map<string, { startedAt: number; logged: number; suppressed: number }>();

  constructor(private readonly perWindow = 10, private readonly windowMs = 10_000, private readonly now: () => number = () => performance.now()) {}

  warn(log: Logger, fields: object, message: string): void {
    const at = this.now();
    let w = this.windows.get(message);
    if (w === undefined || at - w.startedAt >= this.windowMs) {
      const suppressed = w?.suppressed ?? 0;
      w = { startedAt: at, logged: 0, suppressed: 0 };
      this.windows.set(message, w);
      if (suppressed > 0) fields = { ...fields, suppressed };
    }
    if (w.logged >= this.perWindow) {
      w.suppressed++;
      return;
    }
    w.logged++;
    log.warn(fields, message);
  }
}
