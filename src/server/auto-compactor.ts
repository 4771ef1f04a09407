import type { Logger } from '../platform/logger.js';
import { parseGoDurationMs } from '../platform/go-duration.js';

/**
 * Auto-compaction (--auto-compaction-mode, --auto-compaction-retention), etcd 3.4's
 * etcdserver/api/v3compactor, run by the leader only (followers apply the compaction from the log).
 *
 * periodic, retention P (flag "1" = 1 hour, or a duration "30m", "1h30m", "10s"):
 *   every P/10 (at most 6 min) the current revision is sampled, keeping the last P/(P/10) + 1
 *   samples, so the oldest is the revision of about P ago. Once P has passed since the last
 *   successful compaction, compact at that oldest sample; after the first one, every min(P, 1 h).
 *   Example, P = 1 h: samples every 6 min; at 1 h, compact at the revision of 1 h ago; then each
 *   hour at the revision of an hour before.
 * revision, retention R (an integer): every 5 minutes, compact at current - R when that is
 *   positive and differs from the last one. Example, R = 1000 at revision 5,500: compact at 4,500.
 *
 * A compaction that fails because the revision is already compacted counts as done, as etcd.
 * Time comes from `now` and the owner calls step() on its timer, so a test can drive it.
 */

export type AutoCompactionMode = 'periodic' | 'revision';

export interface AutoCompactorHost {
  isLeader(): boolean;
  currentRevision(): number;
  /** Proposes a compaction at `revision`; resolves once applied. */
  compact(revision: number): Promise<void>;
}

const HOUR_MS = 60 * 60 * 1000;
/** etcd's revision-mode check interval. */
export const REVISION_CHECK_INTERVAL_MS = 5 * 60 * 1000;

export class AutoCompactor {
  private samples: number[] = [];
  private lastSuccessMs: number;
  private baseIntervalMs: number;
  private lastRevision = 0;
  private running = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly mode: AutoCompactionMode,
    /** Periodic: the retention in ms. Revision: the number of revisions kept. */
    readonly retention: number,
    private readonly host: AutoCompactorHost,
    private readonly logger: Logger,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.lastSuccessMs = now();
    this.baseIntervalMs = retention;
  }

  /** Time between two steps. */
  get stepIntervalMs(): number {
    return this.mode === 'periodic' ? Math.max(1, Math.floor(Math.min(this.retention, HOUR_MS) / 10)) : REVISION_CHECK_INTERVAL_MS;
  }

  start(): void {
    if (this.retention <= 0) return;
    this.timer = setInterval(() => void this.step(), this.stepIntervalMs);
    this.timer.unref();
    this.logger.info({ mode: this.mode, retention: this.retention, intervalMs: this.stepIntervalMs }, 'auto-compaction enabled');
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One check; returns the revision it compacted at, or 0. */
  async step(): Promise<number> {
    if (this.running || this.retention <= 0) return 0;
    this.running = true;
    try {
      return this.mode === 'periodic' ? await this.stepPeriodic() : await this.stepRevision();
    } finally {
      this.running = false;
    }
  }

  private async stepPeriodic(): Promise<number> {
    const retentions = Math.floor(this.retention / this.stepIntervalMs) + 1;
    this.samples.push(this.host.currentRevision());
    if (this.samples.length > retentions) this.samples.shift();
    const now = this.now();
    if (now - this.lastSuccessMs < this.baseIntervalMs) return 0;
    if (!this.host.isLeader()) return 0;
    this.baseIntervalMs = Math.min(this.retention, HOUR_MS);
    const revision = this.samples[0]!;
    if (await this.compactAt(revision)) {
      this.lastSuccessMs = now;
      return revision;
    }
    return 0;
  }

  private async stepRevision(): Promise<number> {
    if (!this.host.isLeader()) return 0;
    const revision = this.host.currentRevision() - this.retention;
    if (revision <= 0 || revision === this.lastRevision) return 0;
    if (await this.compactAt(revision)) {
      this.lastRevision = revision;
      return revision;
    }
    return 0;
  }

  private async compactAt(revision: number): Promise<boolean> {
    this.logger.info({ revision, mode: this.mode, retention: this.retention }, 'starting auto-compaction');
    try {
      await this.host.compact(revision);
    } catch (err) {
      if ((err as { code?: string }).code === 'Compacted') return true;
      this.logger.warn({ revision, err: (err as Error).message }, 'auto-compaction failed; retrying later');
      return false;
    }
    this.logger.info({ revision }, 'completed auto-compaction');
    return true;
  }
}

/**
 * etcd's parseCompactionRetention: a bare non-negative integer is hours in periodic mode and a
 * revision count in revision mode; otherwise a Go duration (periodic only here).
 * Returns ms (periodic) or revisions (revision); throws a message on bad input.
 */
export function parseRetention(mode: AutoCompactionMode, text: string): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    return mode === 'periodic' ? n * HOUR_MS : n;
  }
  if (mode === 'revision') throw new Error(`--auto-compaction-retention: "${text}" is not a revision count`);
  return parseGoDuration(text, 'auto-compaction-retention');
}

/** A Go duration flag in ms (platform/go-duration.ts), failures named for the flag. */
export function parseGoDuration(text: string, flag: string): number {
  let ms: number;
  try {
    ms = parseGoDurationMs(text);
  } catch (err) {
    throw new Error(`--${flag}: invalid duration "${text}" (${(err as Error).message})`);
  }
  if (ms < 0) throw new Error(`--${flag}: invalid duration "${text}" (negative)`);
  return ms;
}
