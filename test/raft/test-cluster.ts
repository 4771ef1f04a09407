/**
 * A small, fully controlled cluster for unit and scenario tests: FIFO delivery, explicit ticks,
 * partitions as cut links, in-memory storage that follows the Ready contract exactly. Every
 * message delivered can be recorded as one line of text (formatMessage), which is what the
 * scenario files under testdata/ compare.
 */
import { decodeConfChange, ConfChangeType } from '../../src/raft/conf-change.js';
import { Raft, type RaftConfig } from '../../src/raft/raft.js';
import {
  EntryType, MessageType, emptyHardState, emptySnapshot, type Entry, type HardState, type MemberId, type Message,
  type ReadState, type Snapshot,
} from '../../src/raft/raft-types.js';
import { SeededRandom } from '../../src/raft/seeded-random.js';
import { RaftNode } from '../../src/server/raft-node.js';
import { raftClass, type RaftBugs } from './mutant-raft.js';

export interface TestNode {
  readonly id: MemberId;
  raft: Raft;
  /** The Ready loop driving raft (the server's RaftNode) on the fields below as storage. */
  driver: RaftNode;
  hardState: HardState;
  snapshot: Snapshot;
  entries: Entry[];
  applied: Entry[];
  readStates: ReadState[];
}

export interface ClusterOptions {
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  readonly maxMessageBytes?: number;
  readonly inflightMessagesMax?: number;
  readonly seed?: number;
  readonly uncommittedBytesMax?: number;
  readonly pendingReadIndexMax?: number;
  /** Mutation switches for every member (tests of the mutation checks only). */
  readonly bugs?: RaftBugs;
}

export class TestCluster {
  readonly nodes = new Map<MemberId, TestNode>();
  readonly queue: Message[] = [];
  readonly cut = new Set<string>();
  /** Text of every delivered message, when recording. */
  recorded: string[] | null = null;
  private readonly rng: SeededRandom;
  /** Raft itself, or a mutant with one rule broken (options.bugs). */
  private readonly raftClass: typeof Raft;

  constructor(readonly options: ClusterOptions = {}) {
    this.rng = new SeededRandom(options.seed ?? 1);
    this.raftClass = raftClass(options.bugs);
  }

  static bootstrap(n: number, options: ClusterOptions = {}): TestCluster {
    const cluster = new TestCluster(options);
    const voters: MemberId[] = [];
    for (let i = 1; i <= n; i++) voters.push(BigInt(i));
    for (const id of voters) cluster.addNode(cluster.raftClass.bootstrap(cluster.config(id), voters));
    cluster.processAll();
    return cluster;
  }

  config(id: MemberId): RaftConfig {
    return {
      id,
      electionTicks: this.options.electionTicks ?? 10,
      heartbeatTicks: this.options.heartbeatTicks ?? 1,
      random: new SeededRandom(this.rng.nextInt(0x7fffffff)),
      preVote: this.options.preVote ?? true,
      checkQuorum: this.options.checkQuorum ?? true,
      maxMessageBytes: this.options.maxMessageBytes,
      inflightMessagesMax: this.options.inflightMessagesMax,
      uncommittedBytesMax: this.options.uncommittedBytesMax,
      pendingReadIndexMax: this.options.pendingReadIndexMax,
    };
  }

  addNode(raft: Raft): TestNode {
    const node: TestNode = {
      id: raft.id, raft, driver: this.driverFor(raft), hardState: emptyHardState, snapshot: emptySnapshot, entries: [], applied: [], readStates: [],
    };
    this.nodes.set(raft.id, node);
    return node;
  }

  /**
   * A RaftNode on the node's fields as storage (synchronous: save returns null), the cluster's
   * queue as transport, and the applied / readStates lists as state machine. The core's
   * invariants are checked after every advance.
   */
  private driverFor(raft: Raft): RaftNode {
    return new RaftNode(raft, {
      save: (snapshot, entries, hardState) => {
        const node = this.node(raft.id);
        if (snapshot !== null) {
          node.snapshot = snapshot;
          node.entries = [];
        }
        if (entries.length > 0) {
          node.entries.length = entries[0]!.index - node.snapshot.metadata.index - 1;
          node.entries.push(...entries);
        }
        if (hardState !== null) node.hardState = hardState;
        return null;
      },
    }, {
      send: (messages) => this.send(messages),
    }, {
      onSoftState: () => {},
      installSnapshot: () => null,
      applyEntries: (entries) => { this.node(raft.id).applied.push(...entries); },
      onReadStates: (states) => { this.node(raft.id).readStates.push(...states); },
    }, (err) => {
      throw err;
    }, () => raft.checkInvariants());
  }

  /** A new, empty member (to be added by a conf change). */
  addEmptyNode(id: MemberId): TestNode {
    const node = this.addNode(new this.raftClass(this.config(id)));
    this.process(id);
    return node;
  }

  node(id: number | bigint): TestNode {
    const node = this.nodes.get(BigInt(id));
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  raft(id: number | bigint): Raft {
    return this.node(id).raft;
  }

  /** Carries out one member's Ready batches (persist, send, apply, advance). */
  process(id: MemberId): void {
    this.nodes.get(id)!.driver.process();
  }

  processAll(): void {
    for (const id of this.nodes.keys()) this.process(id);
  }

  private send(messages: readonly Message[]): void {
    for (const m of messages) this.queue.push(m);
  }

  isCut(from: MemberId, to: MemberId): boolean {
    return this.cut.has(`${from}->${to}`);
  }

  /** Cuts every link between the two groups, both ways. */
  partition(a: readonly number[], b: readonly number[]): void {
    for (const x of a) for (const y of b) {
      this.cut.add(`${x}->${y}`);
      this.cut.add(`${y}->${x}`);
    }
  }

  /** Isolates one member from all others. */
  isolate(id: number): void {
    const others = [...this.nodes.keys()].map(Number).filter((x) => x !== id);
    this.partition([id], others);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Delivers queued messages in FIFO order until none are left; returns how many were delivered. */
  stabilize(maxMessages = 100_000): number {
    this.processAll();
    let delivered = 0;
    while (this.queue.length > 0) {
      if (delivered++ > maxMessages) throw new Error('stabilize: no quiescence');
      const m = this.queue.shift()!;
      this.deliver(m);
    }
    return delivered;
  }

  /** Delivers only the queued messages matching filter (others stay queued, in order). */
  deliverWhere(filter: (m: Message) => boolean): number {
    const keep: Message[] = [];
    let n = 0;
    const batch = this.queue.splice(0);
    for (const m of batch) {
      if (filter(m)) {
        this.deliver(m);
        n++;
      } else {
        keep.push(m);
      }
    }
    this.queue.unshift(...keep);
    return n;
  }

  /** deliverWhere until no queued message matches (answers to delivered messages included). */
  deliverAllWhere(filter: (m: Message) => boolean): number {
    let total = 0;
    for (let n = this.deliverWhere(filter); n > 0; n = this.deliverWhere(filter)) total += n;
    return total;
  }

  dropWhere(filter: (m: Message) => boolean): number {
    const before = this.queue.length;
    const kept = this.queue.filter((m) => !filter(m));
    this.queue.length = 0;
    this.queue.push(...kept);
    return before - kept.length;
  }

  deliver(m: Message): void {
    if (this.isCut(m.from, m.to)) {
      this.recorded?.push(`${formatMessage(m)}  (dropped: partition)`);
      return;
    }
    const node = this.nodes.get(m.to);
    if (node === undefined) return;
    this.recorded?.push(formatMessage(m));
    node.raft.step(m);
    this.process(m.to);
  }

  tick(id: number | bigint, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.raft(id).tick();
      this.process(BigInt(id));
    }
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) for (const id of this.nodes.keys()) this.tick(id);
  }

  /** Lets time pass: each tick on every member, then every message delivered. */
  run(ticks: number): void {
    for (let i = 0; i < ticks; i++) {
      this.tickAll();
      this.stabilize();
    }
  }

  /** Runs until some member leads (at most maxTicks); returns its id. */
  runUntilLeader(maxTicks = 200): number {
    for (let i = 0; i < maxTicks; i++) {
      const leaders = [...this.nodes.values()].filter((n) => n.raft.role === 'leader');
      if (leaders.length > 0) return Number(leaders[0]!.id);
      this.run(1);
    }
    throw new Error(`no leader after ${maxTicks} ticks`);
  }

  campaign(id: number): void {
    this.raft(id).campaign();
    this.process(BigInt(id));
  }

  /** Campaigns and stabilizes: id becomes leader (asserted by callers that care). */
  elect(id: number): void {
    this.campaign(id);
    this.stabilize();
  }

  propose(id: number, text: string): number {
    const index = this.raft(id).propose(new TextEncoder().encode(text));
    this.process(BigInt(id));
    return index;
  }

  /** Crash and restart from what was persisted. */
  restart(id: number): void {
    const node = this.node(id);
    node.driver.stop();
    node.raft = new this.raftClass(this.config(node.id), { hardState: node.hardState, snapshot: node.snapshot, entries: node.entries.slice() });
    node.driver = this.driverFor(node.raft);
    node.applied = [];
    this.process(node.id);
  }

  /** Data of applied normal entries, as text (no-ops omitted). */
  appliedData(id: number): string[] {
    return this.node(id).applied.filter((e) => e.type === EntryType.Normal && e.data.length > 0).map((e) => new TextDecoder().decode(e.data));
  }

  /** "index/term" pairs of a member's in-memory log after its first index. */
  logOf(id: number): string {
    const log = this.raft(id).log;
    const parts: string[] = [];
    for (let i = log.firstIndex(); i <= log.lastIndex(); i++) parts.push(formatEntry(log.entryAt(i)));
    return parts.join(' ');
  }
}

export function formatEntry(e: Entry): string {
  if (e.type === EntryType.ConfChange) {
    const cc = decodeConfChange(e.data);
    return `${e.term}/${e.index} ${ConfChangeType[cc.type]}(${cc.memberId})`;
  }
  return `${e.term}/${e.index} ${e.data.length === 0 ? '<noop>' : JSON.stringify(new TextDecoder().decode(e.data))}`;
}

export function formatMessage(m: Message): string {
  let s = `${m.from}->${m.to} ${MessageType[m.type]} term=${m.term}`;
  switch (m.type) {
    case MessageType.App:
      s += ` prev=${m.index}/${m.logTerm} commit=${m.commit}`;
      if (m.entries.length > 0) s += ` [${m.entries.map(formatEntry).join(', ')}]`;
      break;
    case MessageType.AppResp:
      s += m.reject ? ` reject index=${m.index} hint=${m.rejectHint}/${m.logTerm}` : ` index=${m.index}`;
      break;
    case MessageType.Vote:
    case MessageType.PreVote:
      s += ` last=${m.index}/${m.logTerm}`;
      break;
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      s += m.reject ? ' rejected' : ' granted';
      break;
    case MessageType.Heartbeat:
      s += ` commit=${m.commit}`;
      break;
    case MessageType.Snap:
      s += ` snapshot=${m.snapshot?.metadata.index}/${m.snapshot?.metadata.term}`;
      break;
    case MessageType.ReadIndexResp:
      s += ` index=${m.index}`;
      break;
    default:
      break;
  }
  return s;
}
