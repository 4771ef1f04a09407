/**
 * The leader's view of one follower (etcd-io/raft's Progress): how much of the log it has (match)
 * and what to send next (next), in one of three states:
 *   probe      next is a guess; one MsgApp at a time until the follower answers.
 *   replicate  next is known; MsgApps are pipelined up to the inflight limits.
 *   snapshot   a snapshot was sent; nothing else until the follower acks it or it times out.
 *
 * Invariant: match < next.
 */
import { Inflights } from './inflights.js';
import { assert } from './raft-assert.js';

export enum ProgressState {
  Probe = 'probe',
  Replicate = 'replicate',
  Snapshot = 'snapshot',
}

export class Progress {
  match = 0;
  next: number;
  state = ProgressState.Probe;
  /** Probe: a MsgApp is outstanding; wait for its answer (or the next heartbeat answer). */
  probeSent = false;
  /** Snapshot: the index of the snapshot sent. */
  pendingSnapshot = 0;
  /** Snapshot: ticks since it was sent; after an election timeout the leader probes again. */
  snapshotTicks = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(next: number, readonly isLearner: boolean, inflightMessagesMax: number, inflightBytesMax: number) {
    this.next = next;
    this.inflights = new Inflights(inflightMessagesMax, inflightBytesMax);
  }

  becomeProbe(): void {
    // After a snapshot the follower has at least the snapshot: probe from there.
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotTicks = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** An acknowledgement up to index; returns whether match moved. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejection of the MsgApp at index `rejected`, with the follower's hint that entries up to
   * matchHint may match. Returns false when the rejection is stale (answers an older MsgApp).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // Pipelined: a rejection at or below match is from an old message.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // Probe: only the answer to the message we sent (at next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether the leader should hold MsgApps to this follower. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }

  checkInvariants(): void {
    assert(this.match < this.next, () => `progress match ${this.match} >= next ${this.next}`);
  }
}
