/**
 * The values that cross the Raft core's boundary: entries, messages, snapshots, hard state and the
 * Ready batch. protocol/raft/raft.proto (package raftpb) is their wire form; the peer layer
 * converts, the core never sees bytes of its own.
 *
 * Ids: a member id is a `bigint` (etcd's 64-bit member ids, as the codec gives them); 0n means
 * "none" (no leader, no vote). Indexes and terms are `number` (safe integers, asserted where they
 * enter). Every object the core hands out or receives is treated as immutable: the core never
 * mutates an Entry, a Message or an array it was given, so the driver may share them.
 */

export type MemberId = bigint;
/** "No member": no leader known, no vote cast. */
export const NONE: MemberId = 0n;

export enum EntryType {
  /** data is the application's payload; empty data is a leader's no-op. */
  Normal = 0,
  /** data is an encoded ConfChange (conf-change.ts). */
  ConfChange = 1,
}

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

export enum MessageType {
  /** Leader -> follower: entries after (index, logTerm), plus the leader's commit. */
  App = 1,
  /** Follower -> leader: accepted up to index, or rejected with a (rejectHint, logTerm) hint. */
  AppResp = 2,
  Vote = 3,
  VoteResp = 4,
  PreVote = 5,
  PreVoteResp = 6,
  /** Leader -> follower: commit (min of the follower's match and the leader's commit), and context for ReadIndex. */
  Heartbeat = 7,
  HeartbeatResp = 8,
  /** Leader -> follower: the whole state as of snapshot.metadata.index. */
  Snap = 9,
  /** Follower -> leader: a proposal forwarded (entries carry the data). */
  Prop = 10,
  /** Follower -> leader: a ReadIndex request forwarded (context). */
  ReadIndex = 11,
  /** Leader -> follower: the read index (index) for context. */
  ReadIndexResp = 12,
  /** Follower -> leader: please transfer leadership to `transferee` (see transferLeadership). */
  TransferLeader = 13,
  /** Leader -> transferee: campaign now, skipping pre-vote and the leader lease. */
  TimeoutNow = 14,
}

export interface Message {
  readonly type: MessageType;
  readonly from: MemberId;
  readonly to: MemberId;
  readonly term: number;
  /** App: term of the entry at index. AppResp reject: term of the hint entry. Vote: last log term. */
  readonly logTerm: number;
  /** App: index preceding entries. AppResp: last matching index (or the rejected index). Vote: last index. */
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly reject: boolean;
  /** AppResp reject: the follower's guess of the last index that may match (fast backtracking). */
  readonly rejectHint: number;
  readonly snapshot: Snapshot | null;
  /** ReadIndex round id (Heartbeat/HeartbeatResp/ReadIndex/ReadIndexResp), or the transfer marker on Vote. */
  readonly context: Uint8Array | null;
  /** TransferLeader: the member that should become leader. */
  readonly transferee: MemberId;
}

export interface ConfState {
  readonly voters: readonly MemberId[];
  readonly learners: readonly MemberId[];
}

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  /** The configuration as of index: a snapshot replaces the log, so it carries the membership. */
  readonly confState: ConfState;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  /** The application's state image, opaque to the core. */
  readonly data: Uint8Array;
}

/** What must be durable before any vote or acknowledgement that depends on it leaves (Raft paper, Figure 2). */
export interface HardState {
  readonly term: number;
  readonly vote: MemberId;
  readonly commit: number;
}

export enum Role {
  Follower = 'follower',
  PreCandidate = 'pre-candidate',
  Candidate = 'candidate',
  Leader = 'leader',
}

/** Volatile state the driver may want to observe (leader changes for metrics and waiters). */
export interface SoftState {
  readonly leader: MemberId;
  readonly role: Role;
}

/** A ReadIndex answer: once applied >= index, a read of local state is linearizable for context. */
export interface ReadState {
  readonly index: number;
  readonly context: Uint8Array;
}

/**
 * One batch of work for the driver. The contract (README.md, and raft.ts header):
 *   1. Persist snapshot (if any), then entries (they replace any persisted entries at index >= the first
 *      one's index), then hardState (if any); fsync once for all of it when mustSync.
 *      `messages` may be sent before or while this write runs (a leader's appends and heartbeats).
 *   2. After the write is durable: send `messagesAfterPersist` (votes, acks: they promise durability).
 *   3. Install snapshot in the state machine (if any), then apply committedEntries in order.
 *   4. Call advance(). Only one Ready is outstanding: ready() again only after advance().
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly messagesAfterPersist: readonly Message[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** True when hardState (term or vote), entries or snapshot changed: the write needs an fsync. */
  readonly mustSync: boolean;
}

/** What a member persisted: the constructor's input after a restart. */
export interface PersistedState {
  readonly hardState: HardState;
  /** The latest snapshot; for a member that never had one, index 0 and an empty configuration. */
  readonly snapshot: Snapshot;
  /** The entries after snapshot.metadata.index, contiguous. */
  readonly entries: readonly Entry[];
  /** Index the state machine has applied (>= snapshot index); defaults to the snapshot index. */
  readonly applied?: number;
}

export const emptyConfState: ConfState = { voters: [], learners: [] };
export const emptySnapshot: Snapshot = {
  metadata: { index: 0, term: 0, confState: emptyConfState },
  data: new Uint8Array(0),
};
export const emptyHardState: HardState = { term: 0, vote: NONE, commit: 0 };

/** Builds a message with every field present (one object shape: faster, and easy to encode). */
export function makeMessage(fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to' | 'term'>): Message {
  return {
    type: fields.type,
    from: fields.from,
    to: fields.to,
    term: fields.term,
    logTerm: fields.logTerm ?? 0,
    index: fields.index ?? 0,
    entries: fields.entries ?? noEntries,
    commit: fields.commit ?? 0,
    reject: fields.reject ?? false,
    rejectHint: fields.rejectHint ?? 0,
    snapshot: fields.snapshot ?? null,
    context: fields.context ?? null,
    transferee: fields.transferee ?? NONE,
  };
}

export const noEntries: readonly Entry[] = Object.freeze([]) as readonly Entry[];

/** Approximate payload size of an entry, for flow control (bytes of data plus a fixed overhead). */
export function entrySizeBytes(entry: Entry): number {
  return entry.data.length + 16;
}
