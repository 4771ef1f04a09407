/**
 * The Raft state machine of one member (Raft paper; Ongaro's dissertation for pre-vote,
 * check-quorum, ReadIndex, leadership transfer and single-server membership changes). Pure and
 * synchronous: no timers, clock, randomness or I/O. The driver (server/member) feeds it:
 *
 *   tick()                    one unit of logical time (the driver turns milliseconds into ticks)
 *   step(message)             a message from a peer
 *   propose(data) / proposeBatch(data[]) / proposeConfChange(change)
 *   readIndex(context)        a linearizable read barrier
 *   transferLeadership(to)
 *
 * and carries out its output, one Ready at a time:
 *
 *   const rd = raft.ready();
 *   send(rd.messages);                       // may go at once, in parallel with the write below:
 *                                            // only a leader's appends/heartbeats land here, and
 *                                            // a leader counts its own entries only once durable
 *   persist(rd.snapshot, rd.entries, rd.hardState, fsync = rd.mustSync);
 *   send(rd.messagesAfterPersist);           // votes and acks promise what was just persisted
 *   install(rd.snapshot); apply(rd.committedEntries); serve(rd.readStates);
 *   raft.advance();                          // tells the core the write is durable
 *
 * step/tick/propose may be called between ready() and advance(): their output waits for the next
 * Ready. Everything is deterministic: the same inputs in the same order give the same Readies.
 *
 * Role transitions are becomeFollower/PreCandidate/Candidate/Leader; stepX handles a message in a
 * role; handleX handles an inbound message kind; sendX/bcastX produce outbound messages; maybeX
 * may act and returns whether it did.
 */
import { encodeConfChange, validateConfChange, type ConfChange } from './conf-change.js';
import { Progress, ProgressState } from './progress.js';
import { assert } from './raft-assert.js';
import { RaftError } from './raft-errors.js';
import { RaftLog, UNKNOWN_TERM } from './raft-log.js';
import {
  EntryType, MessageType, NONE, Role, emptyHardState, emptySnapshot, entrySizeBytes, makeMessage,
  type ConfState, type Entry, type HardState, type MemberId, type Message, type PersistedState, type ReadState,
  type Ready, type Snapshot, type SoftState,
} from './raft-types.js';
import { ReadOnly, contextKey } from './read-only.js';
import type { RandomSource } from './seeded-random.js';

export interface RaftConfig {
  /** This member's id (> 0). */
  readonly id: MemberId;
  /** A follower campaigns after a random timeout in [electionTicks, 2 * electionTicks). */
  readonly electionTicks: number;
  /** A leader sends heartbeats every heartbeatTicks; must be < electionTicks. */
  readonly heartbeatTicks: number;
  /** Seeded randomness for election timeouts (seeded-random.ts). */
  readonly random: RandomSource;
  /** Pre-vote (dissertation 9.6): a partitioned member cannot disrupt the cluster with a higher term. Default true. */
  readonly preVote?: boolean;
  /** Check-quorum (dissertation 6.2): a leader without contact to a quorum for an election timeout steps down. Default true. */
  readonly checkQuorum?: boolean;
  /** Batching: the byte budget of one MsgApp (at least one entry is always sent). Default 1 MiB. */
  readonly maxMessageBytes?: number;
  /** Pipelining: MsgApps in flight per follower in the replicate state. Default 256. */
  readonly inflightMessagesMax?: number;
  /** Pipelining: bytes in flight per follower. Default 64 MiB. */
  readonly inflightBytesMax?: number;
  /** Committed entries handed out in one Ready, in bytes (at least one entry). Default 64 MiB. */
  readonly maxCommittedBytesPerReady?: number;
  /** ReadIndex requests waiting (for the leader's first commit in its term, or for a quorum). Default 4096. */
  readonly pendingReadIndexMax?: number;
  /** Bytes of entry data the leader holds uncommitted before refusing proposals (queue-full). Default 64 MiB. */
  readonly uncommittedBytesMax?: number;
}

/** A read-only view of the core, for the driver's status endpoints and the simulator's checks. */
export interface RaftStatus {
  readonly id: MemberId;
  readonly role: Role;
  readonly term: number;
  readonly vote: MemberId;
  readonly leader: MemberId;
  readonly committed: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly leadTransferee: MemberId;
  readonly conf: ConfState;
}

/** The Vote context of a campaign started by TimeoutNow: voters skip the leader-lease check. */
const campaignTransferContext = Uint8Array.of(0x74, 0x72); // "tr"

const defaultMaxMessageBytes = 1024 * 1024;
const defaultInflightMessagesMax = 256;
const defaultInflightBytesMax = 64 * 1024 * 1024;
const defaultMaxCommittedBytesPerReady = 64 * 1024 * 1024;
const defaultPendingReadIndexMax = 4096;
const defaultUncommittedBytesMax = 64 * 1024 * 1024;

/**
 * What a Ready asked to persist, handed back by the driver once it is durable (persisted()).
 * Opaque to the driver.
 */
export interface ReadyToken {
  readonly lastEntryIndex: number;
  readonly lastEntryTerm: number;
  readonly snapshotIndex: number;
  readonly hardStateTerm: number;
}

interface OutstandingReady extends ReadyToken {
  readonly appliedTo: number;
}

export class Raft {
  readonly id: MemberId;
  /** Invariant: term never decreases; it is persisted (hard state) before any message of this term that promises something. */
  term = 0;
  /** Invariant: at most one vote per term (Raft paper 5.2), persisted before the vote is sent. */
  vote: MemberId = NONE;
  leader: MemberId = NONE;
  role = Role.Follower;
  readonly log: RaftLog;
  /** The latest snapshot (from the constructor, compact(), or a leader's MsgSnap): what the leader sends to a lagging follower. */
  private snapshot: Snapshot;
  /** Every member of the configuration, voters and learners, this one included; tracked by any role, used by the leader. */
  private readonly progress = new Map<MemberId, Progress>();
  private conf: ConfState;
  private readonly votes = new Map<MemberId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Leader: the member leadership is being handed to; proposals are refused meanwhile. */
  leadTransferee: MemberId = NONE;
  /**
   * Leader: index of the last ConfChange entry that may be uncommitted. A new change waits until
   * it commits (one change at a time), and until the leader committed an entry of its own term
   * (the dissertation's fix for single-server changes across leader changes).
   */
  private pendingConfIndex = 0;
  private readonly readOnly = new ReadOnly();
  private pendingReadIndex: { context: Uint8Array; from: MemberId }[] = [];
  private readStates: ReadState[] = [];
  private msgs: Message[] = [];
  private msgsAfterPersist: Message[] = [];
  private snapshotToInstall: Snapshot | null = null;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  /** The term of the last hard state made durable: a leader's messages may leave early only at this term. */
  private persistedTerm: number;
  private outstanding: OutstandingReady | null = null;

  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly random: RandomSource;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxMessageBytes: number;
  private readonly inflightMessagesMax: number;
  private readonly inflightBytesMax: number;
  private readonly maxCommittedBytesPerReady: number;
  private readonly pendingReadIndexMax: number;
  private readonly uncommittedBytesMax: number;
  /** Leader: data bytes appended in this term and not yet committed (bounded by uncommittedBytesMax). */
  private uncommittedBytes = 0;
  /** Scratch for quorum computations (sorted match indexes). */
  private matchScratch: number[] = [];

  /**
   * Restarts a member from what it persisted (or, with no state, a member that will join an
   * existing cluster and learn its log and configuration from the leader).
   */
  constructor(config: RaftConfig, persisted: PersistedState = { hardState: emptyHardState, snapshot: emptySnapshot, entries: [] }) {
    assert(config.id > 0n, () => `raft member id must be > 0, got ${config.id}`);
    assert(config.heartbeatTicks > 0 && config.electionTicks > config.heartbeatTicks,
      () => `need 0 < heartbeatTicks (${config.heartbeatTicks}) < electionTicks (${config.electionTicks})`);
    this.id = config.id;
    this.electionTicks = config.electionTicks;
    this.heartbeatTicks = config.heartbeatTicks;
    this.random = config.random;
    this.preVote = config.preVote ?? true;
    this.checkQuorum = config.checkQuorum ?? true;
    this.maxMessageBytes = config.maxMessageBytes ?? defaultMaxMessageBytes;
    this.inflightMessagesMax = config.inflightMessagesMax ?? defaultInflightMessagesMax;
    this.inflightBytesMax = config.inflightBytesMax ?? defaultInflightBytesMax;
    this.maxCommittedBytesPerReady = config.maxCommittedBytesPerReady ?? defaultMaxCommittedBytesPerReady;
    this.pendingReadIndexMax = config.pendingReadIndexMax ?? defaultPendingReadIndexMax;
    this.uncommittedBytesMax = config.uncommittedBytesMax ?? defaultUncommittedBytesMax;

    const { hardState, snapshot, entries } = persisted;
    this.log = new RaftLog(snapshot.metadata, entries);
    this.snapshot = snapshot;
    assert(hardState.commit >= snapshot.metadata.index && hardState.commit <= this.log.lastIndex(),
      () => `persisted commit ${hardState.commit} outside [${snapshot.metadata.index}, ${this.log.lastIndex()}]`);
    this.log.committed = hardState.commit;
    const applied = persisted.applied ?? snapshot.metadata.index;
    assert(applied >= snapshot.metadata.index && applied <= hardState.commit,
      () => `applied ${applied} outside [${snapshot.metadata.index}, ${hardState.commit}]`);
    this.log.applied = applied;
    this.log.applying = applied;
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.prevHardState = hardState;
    this.persistedTerm = hardState.term;
    this.conf = this.log.conf();
    this.rebuildProgress();
    this.becomeFollower(this.term, NONE);
    this.prevSoftState = { leader: NONE, role: Role.Follower };
  }

  /**
   * A member of a new cluster: every founding member calls this with the same voters and gets the
   * same initial state, a snapshot at index 1 (term 1) whose configuration holds the voters and
   * whose data is empty. The first Ready carries it (and the hard state) to persist and install.
   *
   * Why a snapshot and not one AddVoter entry per voter: configurations take effect on append, so a
   * member holding only a prefix of such entries (it lost its bootstrap write, or a leader's first
   * MsgApp carried one entry) would see itself as the only voter of {1} and elect itself. A member
   * that lacks the snapshot gets it whole from the leader instead.
   */
  static bootstrap<T extends Raft>(this: new (config: RaftConfig, persisted?: PersistedState) => T, config: RaftConfig, voters: readonly MemberId[]): T {
    assert(voters.length > 0 && voters.includes(config.id), () => `bootstrap voters must include ${config.id}`);
    const sorted = [...new Set(voters)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const snapshot: Snapshot = {
      metadata: { index: 1, term: 1, confState: { voters: sorted, learners: [] } },
      data: new Uint8Array(0),
    };
    const raft = new this(config, { hardState: { term: 1, vote: NONE, commit: 1 }, snapshot, entries: [] });
    // Nothing of this is durable yet: the first Ready persists it, and until then a leader's
    // messages wait (persistedTerm) like everything else.
    raft.snapshotToInstall = snapshot;
    raft.prevHardState = emptyHardState;
    raft.persistedTerm = 0;
    return raft;
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  tick(): void {
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  /** Starts an election now (a lone member calls this at start-up instead of waiting a timeout). */
  campaign(): void {
    this.hup(false);
  }

  /**
   * Proposes one entry. On the leader, returns the index it got; on a follower, forwards it to the
   * leader and returns 0 (the proposer recognizes its entry by an id inside data when applied).
   * @throws RaftError no-leader, transfer-in-progress
   */
  propose(data: Uint8Array): number {
    return this.proposeEntries([data], EntryType.Normal);
  }

  /** Proposes several entries at once (one append, one broadcast); returns the first index or 0. */
  proposeBatch(data: readonly Uint8Array[]): number {
    return this.proposeEntries(data, EntryType.Normal);
  }

  /**
   * Proposes a membership change. Single-server: AddVoter (promotes a learner), AddLearner,
   * RemoveMember. It takes effect on every member as soon as it is appended to its log.
   * @throws RaftError not-leader, conf-change-pending, conf-change-invalid, transfer-in-progress
   */
  proposeConfChange(change: ConfChange): number {
    if (this.role !== Role.Leader) throw new RaftError('not-leader', `member ${this.id} is not the leader (leader ${this.leader})`);
    const refusal = this.confChangeRefusal(change);
    if (refusal !== null) throw refusal;
    return this.proposeEntries([encodeConfChange(change)], EntryType.ConfChange);
  }

  /**
   * Asks for a read index for context (unique per request: the member uses one per batch of
   * reads). The answer arrives as a ReadState in a later Ready; a leader that loses its quorum
   * never answers, so the driver times out and retries.
   * @throws RaftError no-leader, queue-full
   */
  readIndex(context: Uint8Array): void {
    if (this.role === Role.Leader) {
      this.handleReadIndexRequest(context, this.id);
    } else if (this.leader !== NONE) {
      this.send(makeMessage({ type: MessageType.ReadIndex, from: this.id, to: this.leader, term: this.term, context }));
    } else {
      throw new RaftError('no-leader', `member ${this.id} knows no leader in term ${this.term}`);
    }
  }

  /**
   * Hands leadership to a voter (dissertation 3.10): the leader stops taking proposals, brings the
   * transferee up to date and sends it TimeoutNow. Aborted after an election timeout.
   * @throws RaftError no-leader, conf-change-invalid (not a voter)
   */
  transferLeadership(to: MemberId): void {
    if (this.role === Role.Leader) {
      if (!this.conf.voters.includes(to)) throw new RaftError('conf-change-invalid', `transferee ${to} is not a voter`);
      this.handleTransferLeader(to);
    } else if (this.leader !== NONE) {
      this.send(makeMessage({ type: MessageType.TransferLeader, from: this.id, to: this.leader, term: this.term, transferee: to }));
    } else {
      throw new RaftError('no-leader', `member ${this.id} knows no leader in term ${this.term}`);
    }
  }

  /** The driver's transport could not deliver a snapshot (ok false) or did (ok true). */
  reportSnapshot(to: MemberId, ok: boolean): void {
    const pr = this.progress.get(to);
    if (this.role !== Role.Leader || pr === undefined || pr.state !== ProgressState.Snapshot) return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or the next heartbeat answer) before probing.
    pr.probeSent = true;
  }

  /** The driver's transport lost its connection to a peer: stop pipelining to it. */
  reportUnreachable(to: MemberId): void {
    const pr = this.progress.get(to);
    if (this.role === Role.Leader && pr !== undefined && pr.state === ProgressState.Replicate) pr.becomeProbe();
  }

  /** The index of the latest snapshot (the in-memory log holds nothing it needs below it). */
  snapshotIndex(): number {
    return this.snapshot.metadata.index;
  }

  /**
   * The state machine saved an image at index (<= applied): it becomes the snapshot sent to
   * lagging followers, and the log is compacted up to index - retainEntries (entries kept so a
   * slightly slow follower catches up without a snapshot). Returns the snapshot to persist;
   * the driver releases WAL entries only after the snapshot is durable.
   * @throws RaftError unavailable-index (not applied yet), compacted (not newer than the current snapshot)
   */
  compact(index: number, data: Uint8Array, retainEntries = 0): Snapshot {
    if (index > this.log.applied) throw new RaftError('unavailable-index', `snapshot index ${index} > applied ${this.log.applied}`);
    if (index <= this.snapshot.metadata.index) {
      throw new RaftError('compacted', `snapshot index ${index} <= current snapshot ${this.snapshot.metadata.index}`);
    }
    const snapshot: Snapshot = {
      metadata: { index, term: this.log.term(index), confState: this.log.confAt(index) },
      data,
    };
    this.snapshot = snapshot;
    this.log.compact(Math.min(Math.max(index - retainEntries, this.log.offset), this.log.stable));
    return snapshot;
  }

  step(m: Message): void {
    assert(m.to === this.id, () => `message for ${m.to} stepped into ${this.id}`);
    // Indexes and terms come from the wire as uint64: beyond 2^53 they are not exact numbers.
    if (!(Number.isSafeInteger(m.term) && Number.isSafeInteger(m.index) && Number.isSafeInteger(m.commit) && Number.isSafeInteger(m.logTerm))) {
      assert(false, `message from ${m.from} with an unsafe term/index/commit: ${m.term}/${m.index}/${m.commit}/${m.logTerm}`);
    }
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.context !== null && contextKey(m.context) === contextKey(campaignTransferContext);
        const inLease = this.checkQuorum && this.leader !== NONE && this.electionElapsed < this.electionTicks;
        // Dissertation 4.2.3: a member that hears from a live leader ignores vote requests, so a
        // removed or partitioned member cannot depose it.
        if (!force && inLease) return;
      }
      if (m.type === MessageType.PreVote) {
        // A pre-vote does not change our term.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // The term of a granted pre-vote is the one the pre-candidate would campaign at; ours moves only when it does.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A stale leader (partitioned while we moved on without bumping terms through pre-vote)
        // learns our term from this answer and steps down.
        this.send(makeMessage({ type: MessageType.AppResp, from: this.id, to: m.from, term: this.term }));
      } else if (m.type === MessageType.PreVote || m.type === MessageType.Vote) {
        // Raft paper Figure 2: a stale RequestVote is refused with our term, so the candidate
        // catches up. Ignoring it (as etcd-io/raft does for MsgVote) can leave the only candidate
        // with an up-to-date log forever campaigning at terms nobody answers (found by the simulator).
        const type = m.type === MessageType.PreVote ? MessageType.PreVoteResp : MessageType.VoteResp;
        this.send(makeMessage({ type, from: this.id, to: m.from, term: this.term, reject: true }));
      }
      return;
    }

    switch (m.type) {
      case MessageType.Vote:
      case MessageType.PreVote:
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(m);
        return;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        return;
      case Role.Follower:
        this.stepFollower(m);
        return;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Output

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const hs = this.prevHardState;
    return this.msgs.length > 0 || this.msgsAfterPersist.length > 0 || this.log.hasUnstable()
      || this.log.hasNextCommitted() || this.snapshotToInstall !== null || this.readStates.length > 0
      || hs.term !== this.term || hs.vote !== this.vote || hs.commit !== this.log.committed
      || this.prevSoftState.leader !== this.leader || this.prevSoftState.role !== this.role;
  }

  ready(): Ready {
    assert(this.outstanding === null, 'ready() called again before advance()');
    const prevHs = this.prevHardState;
    let hardState: HardState | null = null;
    if (prevHs.term !== this.term || prevHs.vote !== this.vote || prevHs.commit !== this.log.committed) {
      hardState = { term: this.term, vote: this.vote, commit: this.log.committed };
      this.prevHardState = hardState;
    }
    let softState: SoftState | null = null;
    if (this.prevSoftState.leader !== this.leader || this.prevSoftState.role !== this.role) {
      softState = { leader: this.leader, role: this.role };
      this.prevSoftState = softState;
    }
    const snapshot = this.snapshotToInstall;
    this.snapshotToInstall = null;
    const entries = this.log.unstableEntries();
    const lastEntry = entries.length > 0 ? entries[entries.length - 1]! : null;
    this.log.unstableFrom = this.log.lastIndex() + 1;
    const committedEntries = this.log.nextCommitted(this.maxCommittedBytesPerReady);
    if (committedEntries.length > 0) this.log.applying = committedEntries[committedEntries.length - 1]!.index;
    const rd: Ready = {
      softState,
      hardState,
      snapshot,
      entries,
      messages: this.msgs,
      messagesAfterPersist: this.msgsAfterPersist,
      committedEntries,
      readStates: this.readStates,
      mustSync: entries.length > 0 || snapshot !== null || prevHs.term !== this.term || prevHs.vote !== this.vote,
    };
    this.msgs = [];
    this.msgsAfterPersist = [];
    this.readStates = [];
    this.outstanding = {
      lastEntryIndex: lastEntry?.index ?? 0,
      lastEntryTerm: lastEntry?.term ?? 0,
      snapshotIndex: snapshot?.metadata.index ?? 0,
      appliedTo: this.log.applying,
      hardStateTerm: this.prevHardState.term,
    };
    return rd;
  }

  /** The driver carried out the last Ready: its snapshot, entries and hard state are durable and its entries applied. */
  advance(): void {
    this.persisted(this.handOff());
  }

  /**
   * Pipelined storage (etcd's asynchronous storage writes): the driver has taken the last Ready
   * and will apply its committed entries in order; its write may still be running. ready() may be
   * called again at once. The driver reports the write with persisted(token), in the order the
   * Readies were handed off; until then nothing of it counts as durable (stable, the leader's own
   * vote toward commit, the term its early messages may carry).
   */
  handOff(): ReadyToken {
    const done = this.outstanding;
    assert(done !== null, 'advance() or handOff() without an outstanding ready()');
    this.outstanding = null;
    if (done.appliedTo > this.log.applied) this.log.applied = Math.min(done.appliedTo, this.log.applying);
    return done;
  }

  /** The write of a handed-off Ready is durable (see handOff). */
  persisted(done: ReadyToken): void {
    assert(done.hardStateTerm >= this.persistedTerm, () => `persisted() out of order: term ${done.hardStateTerm} after ${this.persistedTerm}`);
    this.persistedTerm = done.hardStateTerm;
    if (done.snapshotIndex > 0) this.log.stable = Math.max(this.log.stable, Math.min(done.snapshotIndex, this.log.lastIndex()));
    if (done.lastEntryIndex > 0) this.log.stableTo(done.lastEntryIndex, done.lastEntryTerm);
    if (this.role === Role.Leader) {
      // The leader's own entries count toward commit only now that they are durable (DESIGN.md, "A write").
      const self = this.progress.get(this.id);
      if (self !== undefined && self.maybeUpdate(this.log.stable) && this.maybeCommit()) this.bcastAppend();
    }
  }

  status(): RaftStatus {
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      committed: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      leadTransferee: this.leadTransferee,
      conf: this.conf,
    };
  }

  /** The leader's progress record for a member (tests and status pages). */
  progressOf(id: MemberId): Readonly<Progress> | undefined {
    return this.progress.get(id);
  }

  /** Checks the core's own invariants (the simulator calls this after every step). */
  checkInvariants(): void {
    this.log.checkInvariants();
    assert(this.progress.has(this.id) === (this.conf.voters.includes(this.id) || this.conf.learners.includes(this.id)),
      () => `member ${this.id}: progress of self does not match the configuration`);
    if (this.role === Role.Leader) {
      assert(this.leader === this.id, () => `leader ${this.id} believes the leader is ${this.leader}`);
      for (const pr of this.progress.values()) pr.checkInvariants();
    }
    assert(this.vote === NONE || this.term > 0, () => `vote ${this.vote} in term 0`);
  }

  // ---------------------------------------------------------------------------------------------
  // Role transitions

  private becomeFollower(term: number, leader: MemberId): void {
    this.reset(term);
    this.leader = leader;
    this.role = Role.Follower;
  }

  private becomePreCandidate(): void {
    assert(this.role !== Role.Leader, () => `leader ${this.id} cannot become pre-candidate`);
    // Pre-vote changes neither term nor vote: a member that cannot win does not disturb anyone.
    this.votes.clear();
    this.leader = NONE;
    this.role = Role.PreCandidate;
  }

  private becomeCandidate(): void {
    assert(this.role !== Role.Leader, () => `leader ${this.id} cannot become candidate`);
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
  }

  private becomeLeader(): void {
    assert(this.role === Role.Candidate, () => `member ${this.id} becomes leader from ${this.role}`);
    this.reset(this.term);
    this.leader = this.id;
    this.role = Role.Leader;
    for (const [id, pr] of this.progress) {
      if (id === this.id) {
        pr.becomeReplicate();
        pr.maybeUpdate(this.log.stable);
      }
    }
    // Any ConfChange in the log may be uncommitted: none may be proposed before it commits.
    this.pendingConfIndex = this.log.lastIndex();
    // Raft paper 5.4.2 / 8: a no-op of our term commits everything before it and lets ReadIndex start.
    this.appendEntries([{ term: this.term, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }]);
    this.bcastAppend();
  }

  private reset(term: number): void {
    if (this.term !== term) {
      assert(term > this.term, () => `term going back from ${this.term} to ${term}`);
      this.term = term;
      this.vote = NONE;
    }
    this.leader = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTicks + this.random.nextInt(this.electionTicks);
    this.leadTransferee = NONE;
    this.votes.clear();
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.readOnly.reset();
    this.pendingReadIndex = [];
    const last = this.log.lastIndex();
    for (const [id, pr] of this.progress) {
      const fresh = new Progress(last + 1, pr.isLearner, this.inflightMessagesMax, this.inflightBytesMax);
      if (id === this.id) fresh.match = Math.min(this.log.stable, last);
      this.progress.set(id, fresh);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Ticks and elections

  private tickElection(): void {
    this.electionElapsed++;
    // Only a member that may campaign restarts its timer. A learner, a removed member, or a voter
    // that does not know it is one yet keeps counting: once past the election timeout it is out of
    // the leader lease and answers (pre-)votes. Resetting it here would keep such a member in the
    // lease forever and, when a quorum needs its vote, stall elections (found by the simulator).
    if (this.electionElapsed >= this.randomizedElectionTimeout && this.promotable()) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const [id, pr] of this.progress) {
      if (id !== this.id && pr.state === ProgressState.Snapshot && ++pr.snapshotTicks >= this.electionTicks) {
        // No answer to the snapshot within an election timeout: presume it lost and probe again.
        pr.becomeProbe();
      }
    }
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, NONE);
          return;
        }
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
      }
      if (this.leadTransferee !== NONE) this.leadTransferee = NONE;
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(null);
    }
  }

  /** Only a voter campaigns; a learner or a removed member never does. */
  private promotable(): boolean {
    return this.conf.voters.includes(this.id);
  }

  private hup(transfer: boolean): void {
    if (this.role === Role.Leader || !this.promotable()) return;
    if (this.preVote && !transfer) this.campaignFor(Role.PreCandidate, false);
    else this.campaignFor(Role.Candidate, transfer);
  }

  private campaignFor(role: Role.PreCandidate | Role.Candidate, transfer: boolean): void {
    let voteType: MessageType;
    let term: number;
    if (role === Role.PreCandidate) {
      this.becomePreCandidate();
      voteType = MessageType.PreVote;
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = MessageType.Vote;
      term = this.term;
    }
    this.votes.set(this.id, true);
    const result = this.pollResult();
    if (result === 'won') {
      if (role === Role.PreCandidate) this.campaignFor(Role.Candidate, transfer);
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const voter of this.conf.voters) {
      if (voter === this.id) continue;
      this.send(makeMessage({
        type: voteType, from: this.id, to: voter, term, index: lastIndex, logTerm: lastTerm,
        context: transfer ? campaignTransferContext : null,
      }));
    }
  }

  private pollResult(): 'won' | 'lost' | 'pending' {
    const voters = this.conf.voters;
    const quorum = (voters.length >> 1) + 1;
    let granted = 0;
    let rejected = 0;
    for (const voter of voters) {
      const v = this.votes.get(voter);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    if (granted >= quorum) return 'won';
    if (rejected > voters.length - quorum) return 'lost';
    return 'pending';
  }

  private handleVoteRequest(m: Message): void {
    const preVote = m.type === MessageType.PreVote;
    const respType = preVote ? MessageType.PreVoteResp : MessageType.VoteResp;
    // Raft paper 5.2: one vote per term (repeated to the same candidate); a member that knows a
    // leader of this term does not vote. A pre-vote is granted for a future term without a vote.
    const canVote = this.mayVote(m);
    // Raft paper 5.4.1: only for a candidate whose log is at least as up-to-date as ours.
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.send(makeMessage({ type: respType, from: this.id, to: m.from, term: m.term }));
      if (!preVote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(makeMessage({ type: respType, from: this.id, to: m.from, term: this.term, reject: true }));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Messages, by role

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        this.handleForwardedProposal(m);
        return;
      case MessageType.ReadIndex:
        if (m.context !== null) this.handleReadIndexRequest(m.context, m.from);
        return;
      case MessageType.TransferLeader:
        if (this.conf.voters.includes(m.transferee)) this.handleTransferLeader(m.transferee);
        return;
      case MessageType.AppResp:
        this.handleAppendResponse(m);
        return;
      case MessageType.HeartbeatResp:
        this.handleHeartbeatResponse(m);
        return;
      default:
        // Vote answers after winning, or an App of our own term (impossible with one leader per term).
        return;
    }
  }

  private stepCandidate(m: Message): void {
    const myRespType = this.role === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myRespType: {
        if (!this.conf.voters.includes(m.from)) return;
        this.votes.set(m.from, !m.reject);
        const result = this.pollResult();
        if (result === 'won') {
          if (this.role === Role.PreCandidate) this.campaignFor(Role.Candidate, false);
          else this.becomeLeader();
        } else if (result === 'lost') {
          // A pre-candidate that lost keeps its term (pre-vote changed nothing); a candidate its new one.
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      default:
        // Proposals and reads need a leader: there is none; the driver refuses them (no-leader).
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TimeoutNow:
        // Dissertation 3.10: the leader asks us to campaign now, skipping pre-vote.
        this.hup(true);
        return;
      case MessageType.ReadIndexResp:
        if (m.context !== null) this.readStates.push({ index: m.index, context: m.context });
        return;
      case MessageType.Prop:
      case MessageType.ReadIndex:
      case MessageType.TransferLeader:
        // Forwarded to us by a member that thought we lead: pass it on if we know who does.
        if (this.leader !== NONE && this.leader !== m.from) {
          this.send({ ...m, from: this.id, to: this.leader, term: this.term });
        }
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Inbound handlers

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      // Everything up to our commit matches the leader's log: tell it where we are.
      this.send(makeMessage({ type: MessageType.AppResp, from: this.id, to: m.from, term: this.term, index: this.log.committed }));
      return;
    }
    const hadConfChange = this.log.confIndex();
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew >= 0) {
      if (this.log.confIndex() !== hadConfChange || this.log.conf() !== this.conf) this.maybeUpdateConfig();
      this.send(makeMessage({ type: MessageType.AppResp, from: this.id, to: m.from, term: this.term, index: lastNew }));
      return;
    }
    // Reject with a hint (dissertation 5.3 optimization): the last index whose term is <= the
    // leader's term at m.index; the leader skips every entry of a term we cannot have.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send(makeMessage({
      type: MessageType.AppResp, from: this.id, to: m.from, term: this.term, index: m.index, reject: true,
      rejectHint: hintIndex, logTerm: Math.max(this.log.term(hintIndex), 0),
    }));
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(our match, its commit): every index up to it is in our log.
    this.log.commitTo(m.commit);
    this.send(makeMessage({ type: MessageType.HeartbeatResp, from: this.id, to: m.from, term: this.term, context: m.context }));
  }

  private handleSnapshot(m: Message): void {
    const snapshot = m.snapshot;
    if (snapshot === null) return;
    if (this.restore(snapshot)) {
      this.send(makeMessage({ type: MessageType.AppResp, from: this.id, to: m.from, term: this.term, index: this.log.lastIndex() }));
    } else {
      this.send(makeMessage({ type: MessageType.AppResp, from: this.id, to: m.from, term: this.term, index: this.log.committed }));
    }
  }

  /** Installs a leader's snapshot unless our log already covers it; returns whether it did. */
  private restore(snapshot: Snapshot): boolean {
    const meta = snapshot.metadata;
    if (meta.index <= this.log.committed) return false;
    if (this.log.matchTerm(meta.index, meta.term)) {
      // Our log has the snapshot's last entry, so everything up to it matches: just commit.
      this.log.commitTo(meta.index);
      return false;
    }
    this.log.restore(meta);
    this.snapshot = snapshot;
    this.snapshotToInstall = snapshot;
    this.maybeUpdateConfig();
    return true;
  }

  private handleAppendResponse(m: Message): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (m.reject) {
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    switch (pr.state) {
      case ProgressState.Probe:
        pr.becomeReplicate();
        break;
      case ProgressState.Snapshot:
        if (pr.match >= pr.pendingSnapshot) {
          pr.becomeProbe();
          pr.becomeReplicate();
        }
        break;
      case ProgressState.Replicate:
        pr.inflights.freeLE(m.index);
        break;
    }
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else if (wasPaused) {
      this.sendAppend(m.from, false);
    }
    if (this.role !== Role.Leader) return; // maybeCommit may have stepped us down (removed leader)
    // Pipelining: keep the follower's window full.
    while (this.sendAppend(m.from, false)) { /* send until paused or caught up */ }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResponse(m: Message): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.probeSent = false;
    // A full window answered by a heartbeat: a MsgApp was lost; free one slot to resend.
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex() || pr.state === ProgressState.Probe) this.sendAppend(m.from, true);
    if (m.context === null) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === null || !this.hasQuorum(acks)) return;
    for (const round of this.readOnly.advance(m.context)) this.respondReadIndex(round.index, round.context, round.from);
  }

  private handleForwardedProposal(m: Message): void {
    if (this.leadTransferee !== NONE) return; // refused; the proposer's client times out and retries
    const data: Uint8Array[] = [];
    let bytes = 0;
    for (const entry of m.entries) {
      if (entry.type === EntryType.ConfChange) continue; // conf changes are proposed on the leader only
      data.push(entry.data);
      bytes += entry.data.length;
    }
    // Over the uncommitted budget a forwarded proposal is dropped (a local one gets queue-full).
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.uncommittedBytesMax) return;
    if (data.length > 0) this.proposeEntries(data, EntryType.Normal);
  }

  private handleReadIndexRequest(context: Uint8Array, from: MemberId): void {
    if (this.log.term(this.log.committed) !== this.term) {
      // Dissertation 6.4 step 1: the leader's commit index is only current once it committed an
      // entry of its term (its no-op); until then reads wait here.
      if (this.pendingReadIndex.length >= this.pendingReadIndexMax) {
        if (from === this.id) throw new RaftError('queue-full', `${this.pendingReadIndex.length} ReadIndex requests waiting for the first commit of term ${this.term}`);
        return;
      }
      this.pendingReadIndex.push({ context, from });
      return;
    }
    if (!this.readIndexNeedsHeartbeatRound()) {
      this.respondReadIndex(this.log.committed, context, from);
      return;
    }
    if (this.readOnly.size >= this.pendingReadIndexMax) {
      // Rounds pile up only while no quorum answers (without check-quorum a cut-off leader stays).
      if (from === this.id) throw new RaftError('queue-full', `${this.readOnly.size} ReadIndex rounds waiting for a quorum`);
      return;
    }
    if (!this.readOnly.add(this.log.committed, context, from)) return; // duplicate context: already in flight
    const acks = this.readOnly.recvAck(this.id, context);
    if (acks !== null && this.hasQuorum(acks)) {
      for (const round of this.readOnly.advance(context)) this.respondReadIndex(round.index, round.context, round.from);
      return;
    }
    this.bcastHeartbeat(context);
  }

  private respondReadIndex(index: number, context: Uint8Array, from: MemberId): void {
    if (from === this.id) this.readStates.push({ index, context });
    else this.send(makeMessage({ type: MessageType.ReadIndexResp, from: this.id, to: from, term: this.term, index, context }));
  }

  private handleTransferLeader(transferee: MemberId): void {
    if (transferee === this.id) return;
    if (this.leadTransferee === transferee) return;
    const pr = this.progress.get(transferee);
    if (pr === undefined || pr.isLearner) return;
    this.leadTransferee = transferee;
    // Bounded: tickHeartbeat aborts the transfer after an election timeout.
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(transferee);
    else this.sendAppend(transferee, true);
  }

  // ---------------------------------------------------------------------------------------------
  // Leader: log and replication

  private proposeEntries(data: readonly Uint8Array[], type: EntryType): number {
    if (this.role === Role.Leader) {
      if (this.leadTransferee !== NONE) {
        throw new RaftError('transfer-in-progress', `leader ${this.id} is transferring leadership to ${this.leadTransferee}`);
      }
      let bytes = 0;
      for (let i = 0; i < data.length; i++) bytes += data[i]!.length;
      // A leader that cannot commit (no quorum) must not grow its log without bound. An empty
      // log tail always accepts one batch, however large, so a big entry is never stuck.
      if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.uncommittedBytesMax) {
        throw new RaftError('queue-full', `${this.uncommittedBytes} bytes proposed and not yet committed (max ${this.uncommittedBytesMax})`);
      }
      this.uncommittedBytes += bytes;
      const first = this.log.lastIndex() + 1;
      if (type === EntryType.Normal) {
        // Hot path: build the final entries once (appendEntries would copy them to stamp term and index).
        const entries: Entry[] = new Array<Entry>(data.length);
        for (let i = 0; i < data.length; i++) entries[i] = { term: this.term, index: first + i, type, data: data[i]! };
        this.log.append(entries);
      } else {
        this.appendEntries(data.map((d) => ({ term: this.term, index: 0, type, data: d })));
      }
      this.bcastAppend();
      return first;
    }
    if (this.leader === NONE) throw new RaftError('no-leader', `member ${this.id} knows no leader in term ${this.term}`);
    const entries: Entry[] = data.map((d) => ({ term: 0, index: 0, type, data: d }));
    this.send(makeMessage({ type: MessageType.Prop, from: this.id, to: this.leader, term: this.term, entries }));
    return 0;
  }

  private confChangeRefusal(change: ConfChange): RaftError | null {
    if (this.leadTransferee !== NONE) {
      return new RaftError('transfer-in-progress', `leader ${this.id} is transferring leadership to ${this.leadTransferee}`);
    }
    // Dissertation 4.1 (and its errata for single-server changes): a leader changes the
    // configuration only after committing an entry of its own term, and one change at a time.
    if (this.pendingConfIndex > this.log.committed || this.log.hasConfChangeAfter(this.log.committed)
      || this.log.term(this.log.committed) !== this.term) {
      return new RaftError('conf-change-pending',
        `a configuration change (index ${this.pendingConfIndex}) or this leader's first entry is not committed yet (commit ${this.log.committed})`);
    }
    const invalid = validateConfChange(this.conf, change);
    return invalid === null ? null : new RaftError('conf-change-invalid', invalid);
  }

  /** Leader: stamps entries with our term and the next indexes, appends them (not yet durable). */
  private appendEntries(entries: Entry[]): void {
    let index = this.log.lastIndex();
    let hasConf = false;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      index++;
      entries[i] = { term: this.term, index, type: e.type, data: e.data };
      if (e.type === EntryType.ConfChange) {
        hasConf = true;
        this.pendingConfIndex = index;
      }
    }
    this.log.append(entries);
    if (hasConf) this.maybeUpdateConfig();
  }

  private bcastAppend(): void {
    // A removed leader steps down inside maybeCommit (onLeaderCommit); its callers then broadcast nothing.
    if (this.role !== Role.Leader) return;
    for (const id of this.progress.keys()) {
      if (id !== this.id) this.sendAppend(id, true);
    }
  }

  private bcastHeartbeat(context: Uint8Array | null): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      this.send(makeMessage({
        type: MessageType.Heartbeat, from: this.id, to: id, term: this.term,
        commit: Math.min(pr.match, this.log.committed), context,
      }));
    }
  }

  /** Sends the follower what it lacks (or a snapshot); returns whether a message went out. */
  private sendAppend(to: MemberId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === UNKNOWN_TERM || prevIndex < this.log.offset) return this.sendSnapshot(to, pr);
    const last = this.log.lastIndex();
    const entries = pr.next <= last ? this.log.slice(pr.next, last + 1, this.maxMessageBytes) : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send(makeMessage({
      type: MessageType.App, from: this.id, to, term: this.term, index: prevIndex, logTerm: prevTerm,
      entries, commit: this.log.committed,
    }));
    if (entries.length > 0 && pr.state === ProgressState.Replicate) {
      const lastSent = entries[entries.length - 1]!.index;
      let bytes = 0;
      for (const e of entries) bytes += entrySizeBytes(e);
      pr.next = lastSent + 1;
      pr.inflights.add(lastSent, bytes);
    } else if (pr.state === ProgressState.Probe) {
      pr.probeSent = true;
    }
    return true;
  }

  private sendSnapshot(to: MemberId, pr: Progress): boolean {
    // A member we have not heard from lately may be down: do not ship it a whole state image.
    if (!pr.recentActive) return false;
    const snapshot = this.snapshot;
    assert(snapshot.metadata.index >= this.log.offset,
      () => `snapshot ${snapshot.metadata.index} older than the compacted log (offset ${this.log.offset})`);
    this.send(makeMessage({ type: MessageType.Snap, from: this.id, to, term: this.term, snapshot }));
    pr.becomeSnapshot(snapshot.metadata.index);
    return true;
  }

  private sendTimeoutNow(to: MemberId): void {
    this.send(makeMessage({ type: MessageType.TimeoutNow, from: this.id, to, term: this.term }));
  }

  /**
   * Raft paper 5.3/5.4.2: the highest index a quorum of voters holds durably, committed only if its
   * entry is of the current term (Figure 8: counting replicas of an older term's entry is unsafe).
   */
  private maybeCommit(): boolean {
    const voters = this.conf.voters;
    if (voters.length === 0) return false;
    const matches = this.matchScratch;
    matches.length = voters.length;
    for (let i = 0; i < voters.length; i++) matches[i] = this.progress.get(voters[i]!)?.match ?? 0;
    matches.sort(descending);
    const quorumIndex = matches[voters.length >> 1]!;
    if (quorumIndex <= this.log.committed) return false;
    if (!this.mayCommitByCounting(quorumIndex)) return false;
    if (this.uncommittedBytes > 0) {
      for (let i = Math.max(this.log.committed + 1, this.log.firstIndex()); i <= quorumIndex && this.uncommittedBytes > 0; i++) {
        if (this.log.term(i) === this.term) this.uncommittedBytes -= this.log.entryAt(i).data.length;
      }
      if (this.uncommittedBytes < 0) this.uncommittedBytes = 0;
    }
    this.log.commitTo(quorumIndex);
    this.onLeaderCommit();
    return true;
  }

  private onLeaderCommit(): void {
    if (this.pendingReadIndex.length > 0 && this.log.term(this.log.committed) === this.term) {
      const waiting = this.pendingReadIndex;
      this.pendingReadIndex = [];
      for (const w of waiting) this.handleReadIndexRequest(w.context, w.from);
    }
    // Dissertation 4.2.2: a leader that removed itself manages the cluster until the change
    // commits, then steps down (it is not promotable, so it will not campaign again).
    if (!this.conf.voters.includes(this.id) && this.log.committed >= this.log.confIndex()) {
      this.bcastAppend(); // let the others learn the commit before we go quiet
      this.becomeFollower(this.term, NONE);
    }
  }

  private hasQuorum(acks: Set<MemberId>): boolean {
    const voters = this.conf.voters;
    let n = 0;
    for (const v of voters) if (acks.has(v)) n++;
    return n >= (voters.length >> 1) + 1;
  }

  private quorumActive(): boolean {
    const voters = this.conf.voters;
    let n = 0;
    for (const v of voters) {
      if (v === this.id || this.progress.get(v)?.recentActive === true) n++;
    }
    return n >= (voters.length >> 1) + 1;
  }

  // ---------------------------------------------------------------------------------------------
  // Configuration

  /** Follows the latest configuration in the log (append-time, conf-change.ts). */
  private maybeUpdateConfig(): void {
    const conf = this.log.conf();
    if (conf === this.conf) return;
    this.conf = conf;
    this.rebuildProgress();
    if (this.role === Role.Leader) {
      if (this.leadTransferee !== NONE && !conf.voters.includes(this.leadTransferee)) this.leadTransferee = NONE;
      // A smaller quorum may commit at once.
      if (this.maybeCommit()) this.bcastAppend();
    } else if (this.role !== Role.Follower && !this.promotable()) {
      this.becomeFollower(this.term, NONE);
    }
  }

  private rebuildProgress(): void {
    const conf = this.conf;
    const next = this.log.lastIndex() + 1;
    const members = new Map<MemberId, boolean>();
    for (const v of conf.voters) members.set(v, false);
    for (const l of conf.learners) members.set(l, true);
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
    for (const [id, isLearner] of members) {
      const old = this.progress.get(id);
      if (old !== undefined && old.isLearner === isLearner) continue;
      const pr = new Progress(next, isLearner, this.inflightMessagesMax, this.inflightBytesMax);
      if (old !== undefined) {
        // A promotion keeps what the leader knows of the member's log.
        pr.match = old.match;
        pr.next = old.next;
        pr.recentActive = old.recentActive;
      } else if (id === this.id) {
        pr.match = Math.min(this.log.stable, this.log.lastIndex());
      } else {
        // A new member: the leader has not heard from it yet; let the first probe (and a snapshot if needed) through.
        pr.recentActive = true;
      }
      if (id === this.id && this.role === Role.Leader) pr.becomeReplicate();
      this.progress.set(id, pr);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Rules as seams. Each method states one safety rule and returns what the rule allows. Production
  // never overrides them; test/raft/mutant-raft.ts does, to break exactly one rule, so the
  // simulator's mutation checks can show they catch the violation (a silent simulator cannot pass).

  /**
   * Raft paper 5.2: one vote per term (repeated to the same candidate), none while a leader of this
   * term is known; a pre-vote (m.type PreVote) for a future term is granted without a vote.
   */
  protected mayVote(m: Message): boolean {
    return this.vote === m.from || (this.vote === NONE && this.leader === NONE) || (m.type === MessageType.PreVote && m.term > this.term);
  }

  /** Raft paper 5.4.2 (Figure 8): only an entry of the current term commits by counting replicas. */
  protected mayCommitByCounting(index: number): boolean {
    return this.log.term(index) === this.term;
  }

  /** Dissertation 6.4: a ReadIndex needs a heartbeat round to prove leadership, unless we are the only voter. */
  protected readIndexNeedsHeartbeatRound(): boolean {
    return !(this.conf.voters.length === 1 && this.conf.voters[0] === this.id);
  }

  // ---------------------------------------------------------------------------------------------

  /**
   * Queues an outgoing message. Only a leader's appends, heartbeats, snapshots, TimeoutNow and
   * ReadIndex answers may leave before the pending write is durable, and only once its term is
   * durable: they promise nothing about our own disk (the leader counts itself only after advance).
   * Forwarded requests promise nothing either. Everything else (votes, acks) waits for the write.
   */
  private send(m: Message): void {
    assert(m.to !== this.id, () => `member ${this.id} sending ${MessageType[m.type]} to itself`);
    const early = (this.role === Role.Leader && this.persistedTerm === this.term && (m.type === MessageType.App
      || m.type === MessageType.Heartbeat || m.type === MessageType.Snap || m.type === MessageType.TimeoutNow
      || m.type === MessageType.ReadIndexResp))
      || m.type === MessageType.Prop || m.type === MessageType.ReadIndex || m.type === MessageType.TransferLeader;
    if (early) this.msgs.push(m);
    else this.msgsAfterPersist.push(m);
  }
}

function descending(a: number, b: number): number {
  return b - a;
}
