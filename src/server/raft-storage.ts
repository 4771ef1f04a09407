import type { Entry, HardState, Snapshot } from '../raft/raft-types.js';
import type { Wal } from '../storage/wal.js';
import type { RaftStorage } from './raft-node.js';

/**
 * The Raft core's storage on the WAL (storage/wal.ts): one append per Ready, so the WAL writer's
 * group commit makes snapshot marker, entries and hard state durable with one fdatasync.
 *
 * A Ready that changes only the commit index (mustSync false, nothing else to write) is not
 * written at all: its hard state rides along with the next write. Writing it would cost an
 * fdatasync per round for a fact that recovery does not need: on restart the member raises the
 * commit index to the backend's applied index, and entries committed but not applied are
 * committed again by the leader (member.ts, recoverRaft).
 */
export class WalRaftStorage implements RaftStorage {
  /** The latest hard state not written yet (a commit-only change). */
  private pendingHardState: HardState | null = null;

  constructor(private readonly wal: Wal) {}

  save(snapshot: Snapshot | null, entries: readonly Entry[], hardState: HardState | null, mustSync: boolean): Promise<void> | null {
    if (hardState !== null) this.pendingHardState = hardState;
    if (!mustSync && snapshot === null && entries.length === 0) return null;
    const state = this.pendingHardState ?? undefined;
    this.pendingHardState = null;
    // Marker first, then entries and hard state: the WAL keeps call order, and resolves in it.
    let marker: Promise<void> | null = null;
    if (snapshot !== null) {
      const { index, term, confState } = snapshot.metadata;
      marker = this.wal.appendSnapshotMarker({ index, term, voters: confState.voters, learners: confState.learners });
    }
    const appended = this.wal.append(entries as Entry[], state);
    // A Ready is one write: post it to the writer now, so its fsync runs while the member applies.
    this.wal.flush();
    // Both settle together (one group commit); either failing fails the save.
    return marker === null ? appended : Promise.all([marker, appended]).then(() => undefined);
  }
}
