import { assert } from '../platform/assert.js';
import type { Raft, ReadyToken } from '../raft/raft.js';
import type { Entry, HardState, Message, Ready, ReadState, Snapshot, SoftState } from '../raft/raft-types.js';

/**
 * The one Ready loop: carries out the Raft core's Ready batches against storage, a transport and
 * the state machine. The server's member, the seeded simulator (test/raft/cluster-sim.ts) and the
 * raft benchmark all drive the core through this class, so the ordering below is written once.
 *
 * The Ready contract (src/raft/README.md), in the order this loop keeps it:
 *   1. rd.softState first: a leadership change fails the member's waiters before anything else.
 *   2. rd.messages leave at once: a leader's appends and heartbeats may go before (in parallel with)
 *      its own write, because the core counts the leader's copy toward commit only at advance().
 *   3. rd.snapshot, rd.entries, rd.hardState are handed to storage as ONE save: snapshot, then
 *      entries (replacing any persisted entries from the first one's index), then hard state;
 *      fsync'd when rd.mustSync. Storage may finish synchronously (simulator) or later (the WAL).
 *   4. Only once that save is durable: rd.messagesAfterPersist (votes, appends' acks, heartbeat
 *      answers) leave; they promise what was just written (Raft paper, Figure 2).
 *   5. Then the state machine: the snapshot is installed before the committed entries (which
 *      follow it), then committedEntries in index order (those already durable here before this
 *      Ready's write are applied at step 3, in parallel with the write), then readStates (each waits until
 *      applied >= its index, which the state machine tracks).
 *   6. advance(): the core learns 3 and 5 are done; only then is ready() called again.
 * Only one Ready is outstanding at a time: while a save runs, inputs (step, tick, propose) go
 * into the core and come out together in the next Ready, which is the group commit.
 *
 * Pipelined mode (pipelineDepth > 1, the member's): the disk should never wait for the main
 * thread. After step 3 the Ready is handed off (raft.handOff()) and the next one may start while
 * up to pipelineDepth writes are in flight; the WAL writer merges writes that queue up behind a
 * running fdatasync into one. Each write, once durable and in order: its messagesAfterPersist
 * leave, the core is told (raft.persisted(token): only now do the entries count as stable and
 * toward the leader's commit), and committed entries are applied up to what is durable here.
 * Committed entries beyond the local disk wait in order (they are committed on a quorum, but
 * applying one before it is on this disk could leave the backend ahead of the WAL after a crash).
 * A Ready carrying a snapshot waits until nothing is in flight and is carried out as above.
 */

/** One handed-off Ready whose write is in flight (pipelined mode). */
interface InflightWrite {
  readonly token: ReadyToken;
  /** The last entry index it writes, lowered if a later Ready overwrites from below it; -1 if none. */
  lastIndex: number;
  readonly messagesAfterPersist: readonly Message[];
  /** Storage reported it durable; it completes once every write before it has (completeWritten). */
  durable: boolean;
}

export interface RaftStorage {
  /**
   * Makes snapshot (if any), then entries, then hard state (if any) durable. Returns null when it
   * finished synchronously, else a promise that resolves once durable. A rejection is fatal.
   */
  save(snapshot: Snapshot | null, entries: readonly Entry[], hardState: HardState | null, mustSync: boolean): Promise<void> | null;
}

export interface RaftTransport {
  /** Hands messages to the network; never blocks, may drop (Raft tolerates loss). */
  send(messages: readonly Message[]): void;
}

export interface RaftStateMachine {
  /** The leader is different now (or this member's role changed). Called before anything else of the Ready. */
  onSoftState(state: SoftState): void;
  /** Replace the state with the snapshot's image; resolves once installed. */
  installSnapshot(snapshot: Snapshot): Promise<void> | null;
  /** Apply committed entries, in order (the first follows the last applied). */
  applyEntries(entries: readonly Entry[]): void;
  /** ReadIndex answers: each read may be served once applied >= state.index. */
  onReadStates(states: readonly ReadState[]): void;
}

export class RaftNode {
  /** Invariant: true exactly while a Ready is outstanding (between ready() and advance()). */
  private busy = false;
  private stopped = false;
  /**
   * Highest log index this node's storage holds durably, as far as its own saves tell (0 until the
   * first save returns; restarts pass the persisted last index).
   * Invariant: every entry at or below it is on disk with the content the core has for it.
   */
  private durableIndex: number;
  /** How many of the outstanding Ready's committed entries were applied before its save. */
  private appliedEarly = 0;
  /** Pipelined mode: writes in flight, oldest first (they complete in this order). */
  private readonly inflight: InflightWrite[] = [];
  /** Pipelined mode: committed entries waiting for the local disk, in index order. */
  private pendingApply: Entry[] = [];
  /** Pipelined mode: a Ready with a snapshot, held until the writes before it are durable. */
  private held: Ready | null = null;
  /** Readies carried out (for tests and metrics). */
  readies = 0;

  constructor(
    readonly raft: Raft,
    private readonly storage: RaftStorage,
    private readonly transport: RaftTransport,
    private readonly stateMachine: RaftStateMachine,
    private readonly onFatal: (err: Error) => void,
    /**
     * Called after each advance(), before the next Ready. The simulator and the test cluster check
     * the core's invariants there (raft.checkInvariants()); the member passes nothing.
     */
    private readonly onAdvanced: (() => void) | null = null,
    persistedLastIndex = 0,
    /** Writes in flight at once; 1 carries out one Ready at a time (the simulator's mode). */
    private readonly pipelineDepth = 1,
  ) {
    this.durableIndex = persistedLastIndex;
  }

  /**
   * Carries out Ready batches until the core has none left, or until one waits on storage or a
   * snapshot install (that one continues by itself when the write completes).
   */
  process(): void {
    if (this.pipelineDepth > 1) {
      this.processPipelined();
      return;
    }
    while (!this.busy && !this.stopped && this.raft.hasReady()) {
      const rd = this.raft.ready();
      this.busy = true;
      this.readies++;
      if (rd.softState !== null) this.stateMachine.onSoftState(rd.softState);
      // 2. May leave before our own write (the core holds them until its term is durable).
      if (rd.messages.length > 0) this.transport.send(rd.messages);
      // Committed entries that are already durable here need not wait for this Ready's write:
      // applying them now, in parallel with the fsync, saves one fsync of latency per write (etcd's
      // raft node does the same). Only entries below this Ready's first entry qualify: an entry
      // that this write replaces is not the one on disk.
      if (rd.entries.length > 0 && rd.entries[0]!.index <= this.durableIndex) this.durableIndex = rd.entries[0]!.index - 1;
      this.appliedEarly = rd.snapshot === null ? countUpTo(rd.committedEntries, this.durableIndex) : 0;
      // 3. One durable write for snapshot, entries and hard state. Started before the early apply
      // below, so the disk works while the main thread applies and answers clients.
      const saved = this.save(rd, rd.snapshot);
      if (saved === FAILED) return;
      if (this.appliedEarly > 0) {
        this.stateMachine.applyEntries(this.appliedEarly === rd.committedEntries.length ? rd.committedEntries : rd.committedEntries.slice(0, this.appliedEarly));
      }
      // A save that throws (synchronously) is fatal like a rejected one; the simulator injects its
      // crashes this way: nothing after the save (acks, apply, advance) happens.
      if (saved === null) {
        if (!this.afterSave(rd)) return;
        continue;
      }
      saved.then(
        () => {
          if (this.stopped) return;
          if (this.afterSave(rd)) this.process();
        },
        (err: Error) => this.fail(err),
      );
      return;
    }
  }

  private processPipelined(): void {
    while (!this.busy && !this.stopped && this.inflight.length < this.pipelineDepth && this.raft.hasReady()) {
      const rd = this.raft.ready();
      this.readies++;
      if (rd.softState !== null) this.stateMachine.onSoftState(rd.softState);
      if (rd.messages.length > 0) this.transport.send(rd.messages);
      if (rd.snapshot !== null) {
        // Carried out alone, once everything before it is durable (busy holds the loop meanwhile).
        this.held = rd;
        this.busy = true;
        break;
      }
      // An overwrite from below: what is durable there, or being written, is not what the core has.
      if (rd.entries.length > 0) {
        const below = rd.entries[0]!.index - 1;
        if (below < this.durableIndex) this.durableIndex = below;
        for (const w of this.inflight) if (w.lastIndex > below) w.lastIndex = below;
      }
      for (const e of rd.committedEntries) this.pendingApply.push(e);
      const saved = this.save(rd, null);
      if (saved === FAILED) return;
      const write: InflightWrite = {
        token: this.raft.handOff(),
        lastIndex: rd.entries.length > 0 ? rd.entries[rd.entries.length - 1]!.index : -1,
        messagesAfterPersist: rd.messagesAfterPersist,
        durable: false,
      };
      if (rd.readStates.length > 0) this.stateMachine.onReadStates(rd.readStates);
      // A write storage finished at once (nothing to write, e.g. a commit-only Ready) still counts
      // as durable only after every write before it: its messagesAfterPersist may promise entries
      // or a vote that an earlier, still running write holds (a follower's ack of entries it
      // already had, a repeated vote), and the core requires persisted() in hand-off order.
      this.inflight.push(write);
      if (saved === null) {
        write.durable = true;
        this.completeWritten();
        continue;
      }
      saved.then(
        () => {
          if (this.stopped) return;
          write.durable = true;
          this.completeWritten();
          this.process();
        },
        (err: Error) => this.fail(err),
      );
      // The disk has the write; apply what is already durable while it runs.
      this.applyDurable();
    }
    // A held snapshot Ready whose predecessors are now durable.
    if (this.held !== null && this.inflight.length === 0 && !this.stopped) {
      const rd = this.held;
      this.held = null;
      this.carryOutAlone(rd);
    }
  }

  /** Pipelined mode: completes the durable writes at the head of the in-flight queue, in hand-off order. */
  private completeWritten(): void {
    while (this.inflight.length > 0 && this.inflight[0]!.durable && !this.stopped) this.written(this.inflight.shift()!);
  }

  /** Pipelined mode: a write is durable, in order. */
  private written(write: InflightWrite): void {
    if (write.lastIndex > this.durableIndex) this.durableIndex = write.lastIndex;
    if (write.messagesAfterPersist.length > 0) this.transport.send(write.messagesAfterPersist);
    this.raft.persisted(write.token);
    this.applyDurable();
    if (this.onAdvanced !== null) this.onAdvanced();
  }

  /** Pipelined mode: applies the committed entries that are durable here, in order. */
  private applyDurable(): void {
    const n = countUpTo(this.pendingApply, this.durableIndex);
    if (n === 0) return;
    const batch = n === this.pendingApply.length ? this.pendingApply : this.pendingApply.slice(0, n);
    this.pendingApply = n === this.pendingApply.length ? [] : this.pendingApply.slice(n);
    this.stateMachine.applyEntries(batch);
  }

  /** Pipelined mode: a snapshot Ready, with nothing in flight, carried out as in the one-at-a-time mode. */
  private carryOutAlone(rd: Ready): void {
    assert(this.inflight.length === 0 && this.pendingApply.length === 0, () => `snapshot Ready with ${this.inflight.length} writes and ${this.pendingApply.length} entries pending`);
    this.busy = true; // until afterSave advances
    this.appliedEarly = 0;
    const saved = this.save(rd, rd.snapshot);
    if (saved === FAILED) return;
    const finish = () => {
      if (this.stopped) return;
      if (this.afterSave(rd)) this.process();
    };
    if (saved === null) finish();
    else saved.then(finish, (err: Error) => this.fail(err));
  }

  /** Stops carrying out Readies (a save or install that is running completes, nothing follows). */
  stop(): void {
    this.stopped = true;
  }

  /** True while no Ready is outstanding (tests: the node is idle once this holds and !hasReady). */
  get idle(): boolean {
    return !this.busy;
  }

  /** Steps 4-6. Returns false when the Ready waits on a snapshot install (it continues by itself). */
  private afterSave(rd: Ready): boolean {
    if (rd.snapshot !== null) this.durableIndex = rd.snapshot.metadata.index;
    if (rd.entries.length > 0) this.durableIndex = rd.entries[rd.entries.length - 1]!.index;
    // 4. Acks and votes promise durability: only now.
    if (rd.messagesAfterPersist.length > 0) this.transport.send(rd.messagesAfterPersist);
    // 5. Snapshot before the entries that follow it.
    if (rd.snapshot !== null) {
      let installed: Promise<void> | null;
      try {
        installed = this.stateMachine.installSnapshot(rd.snapshot);
      } catch (err) {
        this.fail(err as Error);
        return false;
      }
      if (installed !== null) {
        installed.then(
          () => {
            if (this.stopped) return;
            this.applyAndAdvance(rd);
            this.process();
          },
          (err: Error) => this.fail(err),
        );
        return false;
      }
    }
    this.applyAndAdvance(rd);
    return true;
  }

  private applyAndAdvance(rd: Ready): void {
    const rest = rd.committedEntries.length - this.appliedEarly;
    if (rest > 0) this.stateMachine.applyEntries(this.appliedEarly === 0 ? rd.committedEntries : rd.committedEntries.slice(this.appliedEarly));
    if (rd.readStates.length > 0) this.stateMachine.onReadStates(rd.readStates);
    assert(this.busy, 'advance without an outstanding Ready');
    this.busy = false;
    // 6.
    this.raft.advance();
    if (this.onAdvanced !== null) this.onAdvanced();
  }

  /**
   * Hands a Ready's write to storage. A save that throws is fatal like a rejected one (the
   * simulator injects its crashes this way): FAILED tells the caller to do nothing more.
   */
  private save(rd: Ready, snapshot: Snapshot | null): Promise<void> | null | typeof FAILED {
    try {
      return this.storage.save(snapshot, rd.entries, rd.hardState, rd.mustSync);
    } catch (err) {
      this.fail(err as Error);
      return FAILED;
    }
  }

  private fail(err: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.onFatal(err);
  }
}

/** What save() returns when storage threw. */
const FAILED = Symbol('save failed');

/** How many of the (index-ordered) entries have index <= limit. */
function countUpTo(entries: readonly Entry[], limit: number): number {
  let n = 0;
  while (n < entries.length && entries[n]!.index <= limit) n++;
  return n;
}
