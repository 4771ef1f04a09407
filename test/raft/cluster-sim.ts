/**
 * A deterministic cluster simulator for the Raft core. One seed drives everything: the fault
 * schedule, the client load and every member's election timeouts, so a seed replays a run exactly.
 *
 * World: 3, 5 or 7 bootstrapped voters (plus members added later) on a simulated network that
 * drops, duplicates, delays and reorders messages, partitions and heals (one-way links too), and
 * simulated storage where a crash loses whatever the member had not persisted. Members restart
 * from what they persisted. Clients propose writes, ask for ReadIndex reads, change membership,
 * transfer leadership; members compact their logs into snapshots.
 *
 * Invariants, checked after every event:
 *   election safety      at most one leader per term
 *   log matching         an (index, term) pair names one entry, with one predecessor term
 *   leader completeness  a leader of term T holds every entry committed in a term < T
 *   committed survive    an index once committed keeps its term on every member that commits it
 *   state machine safety no two members apply different entries at one index (hash chain of applied state)
 *   linearizable reads   a ReadIndex answer is >= the index of every write acknowledged before the read began
 *   liveness             after all faults heal, a leader is elected and a new write commits on every member within a bound
 *   plus the core's own checkInvariants() on every member.
 *
 * A violation stops the run; runSeed() returns it with the seed, and the CLI replays the seed with
 * tracing on to print the last events.
 */
import { ConfChangeType } from '../../src/raft/conf-change.js';
import { Raft, type RaftConfig } from '../../src/raft/raft.js';
import { isRaftError } from '../../src/raft/raft-errors.js';
import {
  EntryType, MessageType, Role, emptyHardState, emptySnapshot, type Entry, type HardState, type MemberId, type Message,
  type ReadState, type Snapshot,
} from '../../src/raft/raft-types.js';
import { SeededRandom } from '../../src/raft/seeded-random.js';
import { RaftNode, type RaftStateMachine, type RaftStorage, type RaftTransport } from '../../src/server/raft-node.js';
import { raftClass, type RaftBugs } from './mutant-raft.js';

export interface SimOptions {
  readonly seed: number;
  /** Founding voters: 3, 5 or 7. */
  readonly members: number;
  /** Events in the fault phase. */
  readonly steps?: number;
  readonly bugs?: RaftBugs;
  /** Keep the last N events as text (slower; the CLI replays a failing seed with it). */
  readonly traceLimit?: number;
}

export interface SimResult {
  readonly seed: number;
  readonly violation: string | null;
  /** Distinct log indexes committed in the run. */
  readonly committed: number;
  readonly trace: readonly string[];
  readonly stats: SimStats;
}

export interface SimStats {
  messagesDelivered: number;
  writesAcked: number;
  readsChecked: number;
  crashes: number;
  confChanges: number;
  snapshotsInstalled: number;
  leadersElected: number;
}

class Violation extends Error {}

/** Thrown by a member's storage to crash it inside a Ready (RaftNode stops; the member is discarded). */
class InjectedCrash extends Error {}

interface Storage {
  hardState: HardState;
  snapshot: Snapshot;
  entries: Entry[];
}

interface SimMember {
  readonly id: MemberId;
  raft: Raft | null;
  /** The Ready loop driving raft (null while down). */
  node: RaftNode | null;
  /** Readies carried out in the current processReady call (a member that never quiesces is a bug). */
  readiesThisCall: number;
  storage: Storage;
  /** The state machine: applied index and a hash chain over every applied entry. */
  applied: number;
  stateHash: number;
  lastCommitSeen: number;
  wasLeaderInTerm: number;
  /** ReadIndex answers waiting for applied >= index. */
  waitingReads: { index: number; minIndex: number; readId: number }[];
}

interface InFlight {
  readonly m: Message;
  readonly deliverAt: number;
}

const electionTicks = 10;
const heartbeatTicks = 2;
const writeTag = 0x57; // 'W'
const readTag = 0x52; // 'R'

export function runSeed(options: SimOptions): SimResult {
  const sim = new Simulation(options);
  let violation: string | null = null;
  try {
    sim.run();
  } catch (err) {
    if (err instanceof Violation) violation = err.message;
    else violation = `exception: ${(err as Error).stack ?? String(err)}`;
  }
  return { seed: options.seed, violation, committed: sim.committedCount(), trace: sim.trace, stats: sim.stats };
}

class Simulation {
  private readonly rng: SeededRandom;
  private readonly members = new Map<MemberId, SimMember>();
  private network: InFlight[] = [];
  private now = 0;
  private step = 0;
  /** One-way links that are cut: key from * 1024 + to. */
  private readonly cut = new Set<number>();
  private dropRate: number;
  private dupRate: number;
  private maxDelayTicks: number;
  private nextMemberId: number;
  /** Per seed: small batches and windows exercise batching, pipelining and flow control hard. */
  private readonly maxMessageBytes: number;
  private readonly inflightMessagesMax: number;
  /** Per seed: most runs use both, some run plain Raft paths (a partitioned leader then lingers). */
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  /** Per seed: sometimes a tiny uncommitted budget, so refused proposals (queue-full) happen. */
  private readonly uncommittedBytesMax: number | undefined;
  /** Off in the liveness phase: no more crashes injected inside Ready processing. */
  private faultsOn = true;
  private nextWriteId = 1;
  private nextReadId = 1;
  /** Raft itself, or a mutant with one rule broken (the mutation checks). */
  private readonly raftClass: typeof Raft;
  private readonly steps: number;
  private readonly traceLimit: number;
  readonly trace: string[] = [];
  readonly stats: SimStats = {
    messagesDelivered: 0, writesAcked: 0, readsChecked: 0, crashes: 0, confChanges: 0, snapshotsInstalled: 0, leadersElected: 0,
  };

  // Global knowledge for the invariants.
  private readonly leaderOfTerm = new Map<number, MemberId>();
  private readonly logPairs = new Map<number, { dataHash: number; prevTerm: number }>();
  private readonly committedTerm: number[] = [];
  private readonly commitTermAt: number[] = [];
  private readonly appliedHash: number[] = [];
  private readonly appliedTerm: number[] = [];
  /** writeId -> proposer, until acknowledged. */
  private readonly pendingWrites = new Map<number, MemberId>();
  /** Highest log index of a write acknowledged so far. */
  private maxAckedIndex = 0;
  /** readId -> the maxAckedIndex when the read began (kept: a duplicated request may be answered twice). */
  private readonly pendingReads = new Map<number, number>();

  constructor(options: SimOptions) {
    this.rng = new SeededRandom(options.seed * 2654435761 + 1);
    this.raftClass = raftClass(options.bugs);
    this.steps = options.steps ?? 3000;
    this.traceLimit = options.traceLimit ?? 0;
    this.dropRate = this.rng.next() * 0.1;
    this.dupRate = this.rng.next() * 0.05;
    this.maxDelayTicks = this.rng.nextInt(4);
    this.maxMessageBytes = 16 + this.rng.nextInt(100);
    this.inflightMessagesMax = 1 + this.rng.nextInt(8);
    this.preVote = this.rng.chance(0.8);
    this.checkQuorum = this.rng.chance(0.7);
    this.uncommittedBytesMax = this.rng.chance(0.15) ? 10 + this.rng.nextInt(100) : undefined;
    const voters: MemberId[] = [];
    for (let i = 1; i <= options.members; i++) voters.push(BigInt(i));
    this.nextMemberId = options.members + 1;
    for (const id of voters) {
      const member = this.newMember(id);
      this.members.set(id, member);
      this.attach(member, this.raftClass.bootstrap(this.raftConfig(id), voters));
    }
  }

  committedCount(): number {
    return this.committedTerm.length === 0 ? 0 : this.committedTerm.length - 1;
  }

  private raftConfig(id: MemberId): RaftConfig {
    return {
      id, electionTicks, heartbeatTicks, random: new SeededRandom(this.rng.nextInt(0x7fffffff)),
      maxMessageBytes: this.maxMessageBytes, inflightMessagesMax: this.inflightMessagesMax,
      preVote: this.preVote, checkQuorum: this.checkQuorum, uncommittedBytesMax: this.uncommittedBytesMax,
    };
  }

  private newMember(id: MemberId): SimMember {
    return {
      id, raft: null, node: null, readiesThisCall: 0, storage: { hardState: emptyHardState, snapshot: emptySnapshot, entries: [] },
      applied: 0, stateHash: 0, lastCommitSeen: 0, wasLeaderInTerm: 0, waitingReads: [],
    };
  }

  /**
   * Runs raft in the member through RaftNode (the server's Ready loop), on the member's simulated
   * storage, the simulated network and the checking state machine below.
   */
  private attach(member: SimMember, raft: Raft): void {
    member.raft = raft;
    member.lastCommitSeen = raft.log.committed;
    const storage: RaftStorage = { save: (snapshot, entries, hardState) => this.save(member, snapshot, entries, hardState) };
    const transport: RaftTransport = { send: (messages) => this.enqueue(messages) };
    const stateMachine: RaftStateMachine = {
      onSoftState: () => {},
      installSnapshot: (snapshot) => {
        this.installSnapshot(member, snapshot);
        this.serveReads(member);
        return null;
      },
      applyEntries: (entries) => {
        for (const entry of entries) this.apply(member, entry);
        this.serveReads(member);
      },
      onReadStates: (states) => this.onReadStates(member, states),
    };
    const onFatal = (err: Error): void => {
      if (!(err instanceof InjectedCrash)) throw err;
    };
    const onAdvanced = (): void => {
      raft.checkInvariants();
      if (++member.readiesThisCall > 1000) throw new Violation(`member ${member.id} keeps producing Ready batches`);
    };
    member.node = new RaftNode(raft, storage, transport, stateMachine, onFatal, onAdvanced);
  }

  private log(text: () => string): void {
    if (this.traceLimit === 0) return;
    this.trace.push(`[${this.step} t${this.now}] ${text()}`);
    if (this.trace.length > this.traceLimit) this.trace.shift();
  }

  run(): void {
    for (const member of this.members.values()) this.processReady(member);
    for (this.step = 0; this.step < this.steps; this.step++) {
      this.randomEvent();
      this.checkAll();
    }
    this.checkLiveness();
  }

  /**
   * One event, by weight. Partitions last a few election timeouts on average (heal is rarer than
   * partition), so a deposed leader can linger while the majority elects and commits: the case
   * ReadIndex and leader completeness must survive.
   */
  private randomEvent(): void {
    const r = this.rng.next();
    if (this.network.length > 0 && (r < 0.62 || this.network.length > 300)) {
      this.deliverRandom();
    } else if (r < 0.76) {
      this.tickAll();
    } else if (r < 0.84) {
      this.clientWrite();
    } else if (r < 0.9) {
      this.clientRead();
    } else if (r < 0.905) {
      this.crashRandom();
    } else if (r < 0.92) {
      this.restartRandom();
    } else if (r < 0.927) {
      this.partitionRandom();
    } else if (r < 0.931) {
      this.heal();
    } else if (r < 0.941) {
      this.confChange();
    } else if (r < 0.948) {
      this.transfer();
    } else if (r < 0.961) {
      this.compactRandom();
    } else if (r < 0.966) {
      this.dropRate = this.rng.next() * 0.2;
      this.dupRate = this.rng.next() * 0.1;
      this.maxDelayTicks = this.rng.nextInt(6);
    } else {
      this.tickAll();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Network

  private enqueue(messages: readonly Message[]): void {
    for (const m of messages) {
      if (this.cut.has(linkKey(m.from, m.to))) continue;
      if (this.rng.chance(this.dropRate)) continue;
      const deliverAt = this.now + (this.maxDelayTicks === 0 ? 0 : this.rng.nextInt(this.maxDelayTicks + 1));
      this.network.push({ m, deliverAt });
      if (this.rng.chance(this.dupRate)) this.network.push({ m, deliverAt: deliverAt + this.rng.nextInt(3) });
    }
  }

  private deliverRandom(): void {
    const i = this.rng.nextInt(this.network.length);
    const item = this.network[i]!;
    if (item.deliverAt > this.now) {
      this.tickAll();
      return;
    }
    this.network[i] = this.network[this.network.length - 1]!;
    this.network.pop();
    this.deliver(item.m);
  }

  private deliver(m: Message): void {
    const to = this.members.get(m.to);
    if (to === undefined || to.raft === null) return;
    if (this.cut.has(linkKey(m.from, m.to))) return; // the partition happened while it was in flight
    this.stats.messagesDelivered++;
    this.log(() => `deliver ${MessageType[m.type]} ${m.from}->${m.to} term ${m.term} idx ${m.index} logTerm ${m.logTerm} commit ${m.commit} n ${m.entries.length}${m.reject ? ' reject hint ' + m.rejectHint : ''}${m.snapshot ? ' snap ' + m.snapshot.metadata.index : ''}`);
    to.raft.step(m);
    this.processReady(to);
  }

  private tickAll(): void {
    this.now++;
    for (const member of this.members.values()) {
      if (member.raft === null) continue;
      member.raft.tick();
      this.processReady(member);
    }
  }

  private partitionRandom(): void {
    const ids = [...this.members.keys()];
    const leader = this.leader();
    if (leader !== null && this.rng.chance(0.4)) {
      // Cut the leader (and a minority with it) off: the deposed-leader cases (stale reads,
      // Figure 8) need a leader that keeps running while the majority moves on.
      const minority = new Set<MemberId>([leader.id]);
      for (const id of ids) if (minority.size < (ids.length - 1) >> 1 && this.rng.chance(0.3)) minority.add(id);
      for (const a of ids) for (const b of ids) if (minority.has(a) !== minority.has(b)) this.cut.add(linkKey(a, b));
      this.log(() => `partition leader side ${[...minority].join(',')}`);
    } else if (this.rng.chance(0.5)) {
      // Split in two groups.
      const side = new Map<MemberId, boolean>();
      for (const id of ids) side.set(id, this.rng.chance(0.5));
      for (const a of ids) for (const b of ids) if (side.get(a) !== side.get(b)) this.cut.add(linkKey(a, b));
      this.log(() => `partition ${ids.filter((id) => side.get(id)).join(',')} | ${ids.filter((id) => !side.get(id)).join(',')}`);
    } else {
      const a = ids[this.rng.nextInt(ids.length)]!;
      const b = ids[this.rng.nextInt(ids.length)]!;
      if (a !== b) this.cut.add(linkKey(a, b));
      this.log(() => `cut one-way ${a}->${b}`);
    }
  }

  private heal(): void {
    this.cut.clear();
    this.log(() => 'heal');
  }

  // ---------------------------------------------------------------------------------------------
  // Members: Ready processing, crashes and restarts

  /** Carries out the member's Readies through its RaftNode (storage is synchronous: all of them, now). */
  private processReady(member: SimMember): void {
    if (member.node === null) return;
    member.readiesThisCall = 0;
    member.node.process();
  }

  private onReadStates(member: SimMember, states: readonly ReadState[]): void {
    for (const rs of states) {
      const readId = decodeTagged(rs.context, readTag);
      // A duplicated MsgReadIndex may be answered twice: each answer must satisfy the read.
      const minIndex = this.pendingReads.get(readId);
      if (minIndex === undefined) throw new Violation(`member ${member.id} got a ReadState for unknown read ${readId}`);
      member.waitingReads.push({ index: rs.index, minIndex, readId });
    }
    this.serveReads(member);
  }

  /**
   * The member's RaftStorage.save: synchronous. A crash may hit before the write (it is lost) or
   * after it, before the acks leave: the storage throws InjectedCrash, so RaftNode stops before
   * sending messagesAfterPersist, applying or advancing, and the member is discarded. The leader's
   * early messages (rd.messages) were already sent, as on a real member.
   */
  private save(member: SimMember, snapshot: Snapshot | null, entries: readonly Entry[], hardState: HardState | null): null {
    if (this.faultsOn && this.rng.chance(0.0015)) {
      this.crash(member, 'before persisting its Ready');
      throw new InjectedCrash();
    }
    const storage = member.storage;
    if (snapshot !== null) {
      storage.snapshot = snapshot;
      storage.entries = [];
    }
    if (entries.length > 0) {
      const first = entries[0]!.index;
      const base = storage.snapshot.metadata.index;
      const keep = first - base - 1;
      if (keep < 0 || keep > storage.entries.length) {
        throw new Violation(`member ${member.id}: Ready entries start at ${first}, storage has (${base}, ${base + storage.entries.length}]`);
      }
      storage.entries.length = keep;
      for (const e of entries) storage.entries.push(e);
      this.checkLogPairs(member, entries);
    }
    if (hardState !== null) storage.hardState = hardState;
    if (this.faultsOn && this.rng.chance(0.001)) {
      this.crash(member, 'after persisting, before sending acks');
      throw new InjectedCrash();
    }
    return null;
  }

  private crash(member: SimMember, when: string): void {
    this.log(() => `crash ${member.id} ${when}`);
    member.node?.stop();
    member.raft = null;
    member.node = null;
    member.waitingReads = [];
    this.stats.crashes++;
  }

  private crashRandom(): void {
    const live = [...this.members.values()].filter((m) => m.raft !== null);
    if (live.length === 0) return;
    this.crash(live[this.rng.nextInt(live.length)]!, 'at random');
  }

  private restartRandom(): void {
    const down = [...this.members.values()].filter((m) => m.raft === null);
    if (down.length === 0) return;
    this.restart(down[this.rng.nextInt(down.length)]!);
  }

  private restart(member: SimMember): void {
    const { hardState, snapshot, entries } = member.storage;
    this.attach(member, new this.raftClass(this.raftConfig(member.id), { hardState, snapshot, entries: entries.slice() }));
    const state = decodeState(snapshot.data, snapshot.metadata.index);
    member.applied = snapshot.metadata.index;
    member.stateHash = state.hash;
    member.lastCommitSeen = hardState.commit;
    member.wasLeaderInTerm = 0;
    this.log(() => `restart ${member.id} term ${hardState.term} commit ${hardState.commit} snap ${snapshot.metadata.index} entries ${entries.length}`);
    this.processReady(member);
  }

  // ---------------------------------------------------------------------------------------------
  // State machine

  private apply(member: SimMember, entry: Entry): void {
    if (entry.index !== member.applied + 1) {
      throw new Violation(`member ${member.id} applies ${entry.index} after ${member.applied}`);
    }
    const hash = mixHash(member.stateHash, entry);
    const known = this.appliedHash[entry.index];
    if (known === undefined) {
      this.appliedHash[entry.index] = hash;
      this.appliedTerm[entry.index] = entry.term;
    } else if (known !== hash) {
      throw new Violation(`state machine safety: member ${member.id} applied term ${entry.term} at ${entry.index}; another member applied term ${this.appliedTerm[entry.index]} there`);
    }
    member.applied = entry.index;
    member.stateHash = hash;
    if (entry.type === EntryType.Normal && entry.data.length === 5 && entry.data[0] === writeTag) {
      const writeId = decodeTagged(entry.data, writeTag);
      if (this.pendingWrites.get(writeId) === member.id) {
        this.pendingWrites.delete(writeId);
        this.maxAckedIndex = Math.max(this.maxAckedIndex, entry.index);
        this.stats.writesAcked++;
      }
    }
  }

  private installSnapshot(member: SimMember, snapshot: Snapshot): void {
    const index = snapshot.metadata.index;
    const state = decodeState(snapshot.data, index);
    if (state.applied !== index) throw new Violation(`snapshot ${index} holds state applied to ${state.applied}`);
    // The bootstrap snapshot (empty data) is the one state no member applied: it defines index 1.
    if (snapshot.data.length === 0 && this.appliedHash[index] === undefined) this.appliedHash[index] = state.hash;
    const known = this.appliedHash[index];
    if (known !== state.hash) {
      throw new Violation(`state machine safety: member ${member.id} installed a snapshot at ${index} whose state differs from what was applied there`);
    }
    member.applied = index;
    member.stateHash = state.hash;
    this.stats.snapshotsInstalled++;
    this.log(() => `member ${member.id} installs snapshot ${index}`);
  }

  private serveReads(member: SimMember): void {
    if (member.waitingReads.length === 0) return;
    const still: SimMember['waitingReads'] = [];
    for (const read of member.waitingReads) {
      if (member.applied < read.index) {
        still.push(read);
        continue;
      }
      // Register model: the state read (applied >= read.index) must contain every write
      // acknowledged before the read began, i.e. read.index >= the highest such write's index.
      if (read.index < read.minIndex) {
        throw new Violation(`linearizability: read ${read.readId} on member ${member.id} got read index ${read.index}, but a write at ${read.minIndex} was acknowledged before it began`);
      }
      this.stats.readsChecked++;
    }
    member.waitingReads = still;
  }

  private compactRandom(): void {
    const live = [...this.members.values()].filter((m) => m.raft !== null);
    if (live.length === 0) return;
    const member = live[this.rng.nextInt(live.length)]!;
    const raft = member.raft!;
    if (member.applied <= member.storage.snapshot.metadata.index || raft.status().applied !== member.applied) return;
    const snapshot = raft.compact(member.applied, encodeState(member.applied, member.stateHash), this.rng.nextInt(4));
    member.storage.snapshot = snapshot;
    member.storage.entries = member.storage.entries.filter((e) => e.index > snapshot.metadata.index);
    this.log(() => `member ${member.id} compacts at ${snapshot.metadata.index}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Clients

  private randomLive(): SimMember | null {
    const live = [...this.members.values()].filter((m) => m.raft !== null);
    return live.length === 0 ? null : live[this.rng.nextInt(live.length)]!;
  }

  private leader(): SimMember | null {
    let best: SimMember | null = null;
    for (const m of this.members.values()) {
      if (m.raft !== null && m.raft.role === Role.Leader && (best === null || m.raft.term > best.raft!.term)) best = m;
    }
    return best;
  }

  private clientWrite(): void {
    const member = this.rng.chance(0.7) ? this.leader() ?? this.randomLive() : this.randomLive();
    if (member === null) return;
    const writeId = this.nextWriteId++;
    try {
      const n = this.rng.chance(0.2) ? 1 + this.rng.nextInt(5) : 1;
      if (n === 1) {
        member.raft!.propose(encodeTagged(writeTag, writeId));
        this.pendingWrites.set(writeId, member.id);
      } else {
        const batch: Uint8Array[] = [];
        for (let i = 0; i < n; i++) {
          const id = i === 0 ? writeId : this.nextWriteId++;
          batch.push(encodeTagged(writeTag, id));
        }
        member.raft!.proposeBatch(batch);
        for (let i = 0; i < n; i++) this.pendingWrites.set(decodeTagged(batch[i]!, writeTag), member.id);
      }
    } catch (err) {
      if (!isRaftError(err)) throw err;
      return;
    }
    this.processReady(member);
  }

  private clientRead(): void {
    const member = this.randomLive();
    if (member === null) return;
    const readId = this.nextReadId++;
    try {
      this.pendingReads.set(readId, this.maxAckedIndex);
      member.raft!.readIndex(encodeTagged(readTag, readId));
    } catch (err) {
      this.pendingReads.delete(readId);
      if (!isRaftError(err)) throw err;
      return;
    }
    this.processReady(member);
  }

  private confChange(): void {
    const leader = this.leader();
    if (leader === null) return;
    const raft = leader.raft!;
    const conf = raft.status().conf;
    const r = this.rng.next();
    let change: { type: ConfChangeType; memberId: MemberId };
    if (r < 0.35 && this.members.size < 10) {
      change = { type: ConfChangeType.AddLearner, memberId: BigInt(this.nextMemberId) };
    } else if (r < 0.65 && conf.learners.length > 0) {
      change = { type: ConfChangeType.AddVoter, memberId: conf.learners[this.rng.nextInt(conf.learners.length)]! };
    } else if (conf.voters.length > 2) {
      const all = [...conf.voters, ...conf.learners];
      change = { type: ConfChangeType.RemoveMember, memberId: all[this.rng.nextInt(all.length)]! };
    } else {
      return;
    }
    try {
      raft.proposeConfChange({ ...change, context: new Uint8Array(0) });
    } catch (err) {
      if (!isRaftError(err)) throw err;
      return;
    }
    this.stats.confChanges++;
    this.log(() => `conf change ${ConfChangeType[change.type]} ${change.memberId} at leader ${leader.id}`);
    if (change.type === ConfChangeType.AddLearner) {
      // The new member starts empty and learns the log (or a snapshot) from the leader.
      const id = BigInt(this.nextMemberId++);
      const member = this.newMember(id);
      this.members.set(id, member);
      this.attach(member, new this.raftClass(this.raftConfig(id)));
    }
    this.processReady(leader);
  }

  private transfer(): void {
    const leader = this.leader();
    if (leader === null) return;
    const voters = leader.raft!.status().conf.voters.filter((v) => v !== leader.id);
    if (voters.length === 0) return;
    const to = voters[this.rng.nextInt(voters.length)]!;
    this.log(() => `transfer leadership ${leader.id} -> ${to}`);
    leader.raft!.transferLeadership(to);
    this.processReady(leader);
  }

  // ---------------------------------------------------------------------------------------------
  // Invariants

  private checkAll(): void {
    for (const member of this.members.values()) {
      const raft = member.raft;
      if (raft === null) continue;
      if (raft.role === Role.Leader && member.wasLeaderInTerm !== raft.term) {
        member.wasLeaderInTerm = raft.term;
        this.onLeaderElected(member);
      }
      if (raft.log.committed > member.lastCommitSeen) {
        this.onCommitAdvanced(member, member.lastCommitSeen, raft.log.committed);
        member.lastCommitSeen = raft.log.committed;
      }
    }
  }

  private onLeaderElected(member: SimMember): void {
    const raft = member.raft!;
    const term = raft.term;
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== member.id) {
      throw new Violation(`election safety: members ${other} and ${member.id} both lead term ${term}`);
    }
    this.leaderOfTerm.set(term, member.id);
    this.stats.leadersElected++;
    this.log(() => `member ${member.id} leads term ${term} (last ${raft.log.lastIndex()}, commit ${raft.log.committed})`);
    // Leader completeness (Raft paper 5.4): every entry committed in an earlier term is in our log.
    for (let i = raft.log.offset + 1; i < this.committedTerm.length; i++) {
      const commitTerm = this.commitTermAt[i]!;
      if (commitTerm >= term) continue;
      if (raft.log.term(i) !== this.committedTerm[i]) {
        throw new Violation(`leader completeness: leader ${member.id} of term ${term} has term ${raft.log.term(i)} at ${i}, committed with term ${this.committedTerm[i]} in term ${commitTerm}`);
      }
    }
  }

  private onCommitAdvanced(member: SimMember, from: number, to: number): void {
    const raft = member.raft!;
    const commitTerm = raft.role === Role.Leader ? raft.term : Number.MAX_SAFE_INTEGER;
    for (let i = Math.max(from + 1, raft.log.offset); i <= to; i++) {
      const t = raft.log.term(i);
      if (t < 0) continue;
      const known = this.committedTerm[i];
      if (known === undefined) {
        if (i > this.committedTerm.length) {
          // Indexes committed elsewhere but never observed with their term (compacted first): fill the gap.
          for (let j = this.committedTerm.length; j < i; j++) {
            this.committedTerm[j] = -1;
            this.commitTermAt[j] = Number.MAX_SAFE_INTEGER;
          }
        }
        this.committedTerm[i] = t;
        this.commitTermAt[i] = commitTerm;
      } else if (known === -1) {
        this.committedTerm[i] = t;
      } else if (known !== t) {
        throw new Violation(`committed entry lost: member ${member.id} commits term ${t} at ${i}, but term ${known} was committed there`);
      } else if (commitTerm < this.commitTermAt[i]!) {
        this.commitTermAt[i] = commitTerm;
      }
    }
  }

  private checkLogPairs(member: SimMember, entries: readonly Entry[]): void {
    const raft = member.raft!;
    for (const e of entries) {
      const key = e.index * 1_000_000 + e.term;
      const dataHash = hashBytes(e.data, e.type);
      const prevTerm = raft.log.term(e.index - 1);
      const known = this.logPairs.get(key);
      if (known === undefined) {
        this.logPairs.set(key, { dataHash, prevTerm });
      } else if (known.dataHash !== dataHash) {
        throw new Violation(`log matching: member ${member.id} has a different entry at index ${e.index} term ${e.term}`);
      } else if (prevTerm >= 0 && known.prevTerm >= 0 && known.prevTerm !== prevTerm) {
        throw new Violation(`log matching: member ${member.id} has term ${prevTerm} before (${e.index}, ${e.term}); another member has ${known.prevTerm}`);
      } else if (known.prevTerm < 0 && prevTerm >= 0) {
        known.prevTerm = prevTerm;
      }
    }
  }

  /**
   * Heal everything, restart every member, stop dropping; within a bound, a leader must exist
   * and a new write must be applied by every member of its configuration.
   */
  private checkLiveness(): void {
    this.step = this.steps;
    this.faultsOn = false;
    this.cut.clear();
    this.dropRate = 0;
    this.dupRate = 0;
    this.maxDelayTicks = 0;
    for (const member of this.members.values()) if (member.raft === null) this.restart(member);
    this.checkAll();
    const boundTicks = 40 * electionTicks;
    let markerId = 0;
    let markerLeader: MemberId = 0n;
    let markerTerm = 0;
    for (let t = 0; t < boundTicks; t++) {
      for (let n = 0; this.network.length > 0 && n < 10_000; n++) {
        this.deliver(this.network.shift()!.m);
        this.checkAll();
      }
      const leader = this.leader();
      if (leader !== null) {
        const raft = leader.raft!;
        if (markerId === 0 || markerLeader !== leader.id || markerTerm !== raft.term) {
          markerId = this.nextWriteId++;
          markerLeader = leader.id;
          markerTerm = raft.term;
          try {
            raft.propose(encodeTagged(writeTag, markerId));
            this.pendingWrites.set(markerId, leader.id);
            this.processReady(leader);
          } catch (err) {
            if (!isRaftError(err)) throw err;
            markerId = 0;
          }
        } else if (!this.pendingWrites.has(markerId)) {
          // Acknowledged on the leader: every member of its configuration must have it applied.
          const conf = raft.status().conf;
          const target = raft.status().applied;
          const all = [...conf.voters, ...conf.learners];
          if (all.every((id) => (this.members.get(id)?.applied ?? 0) >= target)) return;
        }
      }
      this.tickAll();
      this.checkAll();
    }
    const states = [...this.members.values()].map((m) => `${m.id}:${m.raft?.role ?? 'down'}/t${m.raft?.term}/c${m.raft?.log.committed}/a${m.applied}`);
    throw new Violation(`liveness: no leader with a committed write on all members ${boundTicks} ticks after healing (${states.join(' ')})`);
  }
}

function linkKey(from: MemberId, to: MemberId): number {
  return Number(from) * 1024 + Number(to);
}

function encodeTagged(tag: number, id: number): Uint8Array {
  const out = new Uint8Array(5);
  out[0] = tag;
  new DataView(out.buffer).setUint32(1, id);
  return out;
}

function decodeTagged(bytes: Uint8Array, tag: number): number {
  if (bytes.length !== 5 || bytes[0] !== tag) throw new Violation(`malformed tagged payload`);
  return new DataView(bytes.buffer, bytes.byteOffset, 5).getUint32(1);
}

function encodeState(applied: number, hash: number): Uint8Array {
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  view.setFloat64(0, applied);
  view.setInt32(8, hash);
  return out;
}

/** A snapshot's state image; empty data is the bootstrap snapshot (nothing applied, at its index). */
function decodeState(data: Uint8Array, index: number): { applied: number; hash: number } {
  if (data.length === 0) return { applied: index, hash: 0 };
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { applied: view.getFloat64(0), hash: view.getInt32(8) };
}

function hashBytes(data: Uint8Array, type: number): number {
  let h = 0x811c9dc5 ^ type;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i]!, 0x01000193);
  return h | 0;
}

function mixHash(state: number, entry: Entry): number {
  let h = Math.imul(state ^ entry.term, 0x9e3779b1) ^ hashBytes(entry.data, entry.type);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  return (h ^ entry.index) | 0;
}
