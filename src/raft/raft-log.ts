/**
 * The in-memory Raft log of one member: the entries after the last compaction point, with the
 * marks that say how far each one has travelled.
 *
 *   offset            stable        committed   applied            last
 *   |  (compacted)    |  durable    |           |                  |
 *   [snap] 11 12 13 14 15 16 17 18 19 20 ...                        ^ unstableFrom..last go to the next Ready
 *
 *   offset        the index just before entries[0] (a compaction point or the snapshot index);
 *                 offsetTerm is its term, kept so a MsgApp with prev = offset can still be matched.
 *   stable        the last index known durable (the driver called advance() after persisting it).
 *   unstableFrom  the first index not yet handed to the driver in a Ready.
 *   committed     the last index known committed (hard state).
 *   applying      the last index handed to the driver to apply; applied: the last one confirmed by advance().
 *
 * Invariant: offset <= applied <= applying <= committed <= last.
 * Invariant: entries[i].index === offset + 1 + i, and terms never decrease along the log.
 * Invariant: nothing at or below committed is ever truncated (it may be compacted).
 *
 * The configuration is kept with the log because it is a function of it (conf-change.ts): the
 * configuration at offset (baseConf) plus every ConfChange entry after it, in order.
 */
import { applyConfChange, decodeConfChange } from './conf-change.js';
import { assert } from './raft-assert.js';
import { EntryType, entrySizeBytes, type ConfState, type Entry, type SnapshotMetadata } from './raft-types.js';

/** term() answer for an index outside the log (compacted away or not yet appended). */
export const UNKNOWN_TERM = -1;

export class RaftLog {
  offset: number;
  offsetTerm: number;
  private entries: Entry[];
  stable: number;
  unstableFrom: number;
  committed: number;
  applying: number;
  applied: number;
  /** The configuration as of offset. */
  private baseConf: ConfState;
  /** The ConfChange entries after offset, in index order. */
  private confEntries: Entry[] = [];
  /** Cache of the latest configuration; replaced (never mutated) when it changes. */
  private latestConf: ConfState;

  constructor(snapshot: SnapshotMetadata, entries: readonly Entry[]) {
    this.offset = snapshot.index;
    this.offsetTerm = snapshot.term;
    this.baseConf = snapshot.confState;
    this.latestConf = snapshot.confState;
    this.entries = [];
    this.stable = snapshot.index;
    this.unstableFrom = snapshot.index + 1;
    this.committed = snapshot.index;
    this.applying = snapshot.index;
    this.applied = snapshot.index;
    if (entries.length > 0) {
      assert(entries[0]!.index === snapshot.index + 1,
        () => `first persisted entry ${entries[0]!.index} does not follow snapshot index ${snapshot.index}`);
      this.append(entries);
      this.stable = this.lastIndex();
      this.unstableFrom = this.lastIndex() + 1;
    }
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length === 0 ? this.offsetTerm : this.entries[this.entries.length - 1]!.term;
  }

  /** The term of the entry at index, or UNKNOWN_TERM if it is compacted or beyond the log. */
  term(index: number): number {
    if (index === this.offset) return this.offsetTerm;
    if (index < this.offset || index > this.lastIndex()) return UNKNOWN_TERM;
    return this.entries[index - this.offset - 1]!.term;
  }

  matchTerm(index: number, term: number): boolean {
    const t = this.term(index);
    return t !== UNKNOWN_TERM && t === term;
  }

  entryAt(index: number): Entry {
    assert(index > this.offset && index <= this.lastIndex(), () => `entry ${index} outside log (${this.offset}, ${this.lastIndex()}]`);
    return this.entries[index - this.offset - 1]!;
  }

  /** Raft paper 5.4.1: a candidate's log is at least as up-to-date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Follower side of AppendEntries (Raft paper Figure 2, receiver rules 2-5). Returns the index of
   * the last new entry, or -1 if the log does not contain (index, logTerm).
   */
  maybeAppend(index: number, logTerm: number, leaderCommit: number, entries: readonly Entry[]): number {
    if (!this.matchTerm(index, logTerm)) return -1;
    const lastNew = index + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, () => `entry ${conflict} conflicts with committed entry (committed ${this.committed})`);
      this.append(entries.slice(conflict - index - 1));
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /** The index of the first entry that is not already in the log with the same term; 0 if none. */
  private findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * Fast backtracking (etcd-io/raft findConflictByTerm): the largest index <= index whose term is
   * <= term. Entries above it cannot match a log whose entry at index has that term.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    while (i > this.offset) {
      const t = this.term(i);
      if (t <= term) break;
      i--;
    }
    return i;
  }

  /** Appends entries, replacing any suffix that starts at entries[0].index. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const after = entries[0]!.index;
    assert(after > this.committed, () => `append at ${after} would overwrite committed ${this.committed}`);
    const last = this.lastIndex();
    assert(after <= last + 1, () => `append at ${after} leaves a gap after ${last}`);
    if (after <= last) {
      // Truncate the conflicting suffix, and the configurations it carried.
      this.entries.length = after - this.offset - 1;
      this.unstableFrom = Math.min(this.unstableFrom, after);
      this.stable = Math.min(this.stable, after - 1);
      let keep = this.confEntries.length;
      while (keep > 0 && this.confEntries[keep - 1]!.index >= after) keep--;
      if (keep !== this.confEntries.length) {
        this.confEntries.length = keep;
        this.latestConf = this.confAt(this.lastIndex());
      }
    }
    let prevTerm = this.lastTerm();
    let expected = after;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      // Checked inline, not with assert(): this loop is the hot path and a message closure per entry shows in profiles.
      if (entry.index !== expected || entry.term < prevTerm) {
        assert(false, `append: entry ${entry.index}/${entry.term}, expected index ${expected} and term >= ${prevTerm}`);
      }
      this.entries.push(entry);
      if (entry.type === EntryType.ConfChange) {
        this.confEntries.push(entry);
        this.latestConf = applyConfChange(this.latestConf, decodeConfChange(entry.data));
      }
      prevTerm = entry.term;
      expected++;
    }
  }

  /** Entries [lo, hi) limited to about maxBytes (always at least one entry when lo < hi). */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    assert(lo > this.offset && hi <= this.lastIndex() + 1, () => `slice [${lo}, ${hi}) outside log (${this.offset}, ${this.lastIndex()}]`);
    if (lo >= hi) return [];
    const start = lo - this.offset - 1;
    let end = start;
    const endMax = hi - this.offset - 1;
    let bytes = 0;
    while (end < endMax) {
      bytes += entrySizeBytes(this.entries[end]!);
      if (bytes > maxBytes && end > start) break;
      end++;
    }
    return this.entries.slice(start, end);
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), () => `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex();
  }

  unstableEntries(): Entry[] {
    if (!this.hasUnstable()) return [];
    return this.entries.slice(this.unstableFrom - this.offset - 1);
  }

  /** The driver persisted entries up to (index, term); a later truncation may have replaced them. */
  stableTo(index: number, term: number): void {
    if (index > this.stable && this.matchTerm(index, term)) this.stable = index;
  }

  hasNextCommitted(): boolean {
    return this.committed > this.applying;
  }

  /** Committed entries not yet handed out for apply, up to about maxBytes (at least one). */
  nextCommitted(maxBytes: number): Entry[] {
    if (!this.hasNextCommitted()) return [];
    return this.slice(this.applying + 1, this.committed + 1, maxBytes);
  }

  /** Replaces the whole log by a snapshot (the follower's InstallSnapshot). */
  restore(snapshot: SnapshotMetadata): void {
    assert(snapshot.index > this.committed, () => `restore of snapshot ${snapshot.index} at or below commit ${this.committed}`);
    this.offset = snapshot.index;
    this.offsetTerm = snapshot.term;
    this.entries = [];
    this.baseConf = snapshot.confState;
    this.latestConf = snapshot.confState;
    this.confEntries = [];
    this.stable = snapshot.index;
    this.unstableFrom = snapshot.index + 1;
    this.committed = snapshot.index;
    this.applying = snapshot.index;
    this.applied = snapshot.index;
  }

  /** Drops the entries up to index (they are covered by a snapshot). */
  compact(index: number): void {
    if (index <= this.offset) return;
    assert(index <= this.applied && index <= this.stable,
      () => `compact to ${index} beyond applied ${this.applied} or stable ${this.stable}`);
    this.baseConf = this.confAt(index);
    this.offsetTerm = this.term(index);
    this.entries = this.entries.slice(index - this.offset);
    this.offset = index;
    this.confEntries = this.confEntries.filter((e) => e.index > index);
  }

  /** The latest configuration in the log (committed or not). The same object until it changes. */
  conf(): ConfState {
    return this.latestConf;
  }

  /** The index of the entry that set the latest configuration (offset if it comes from there). */
  confIndex(): number {
    const n = this.confEntries.length;
    return n === 0 ? this.offset : this.confEntries[n - 1]!.index;
  }

  /** The configuration as of index (for a snapshot taken there). */
  confAt(index: number): ConfState {
    assert(index >= this.offset, () => `configuration at ${index} is compacted (offset ${this.offset})`);
    let conf = this.baseConf;
    for (const entry of this.confEntries) {
      if (entry.index > index) break;
      conf = applyConfChange(conf, decodeConfChange(entry.data));
    }
    return conf;
  }

  /** Whether any ConfChange entry lies in (after, last]. */
  hasConfChangeAfter(after: number): boolean {
    const n = this.confEntries.length;
    return n > 0 && this.confEntries[n - 1]!.index > after;
  }

  checkInvariants(): void {
    assert(this.offset <= this.applied && this.applied <= this.applying && this.applying <= this.committed
      && this.committed <= this.lastIndex(),
      () => `log marks out of order: offset ${this.offset} applied ${this.applied} applying ${this.applying} committed ${this.committed} last ${this.lastIndex()}`);
  }
}
