/**
 * The member: the façade the API layer calls (MemberApi), and the composition of what a member
 * is: the Raft core driven by the Ready loop (raft-node.ts), the WAL as its storage
 * (raft-storage.ts), the peer network (an interface: main.ts plugs the peer transport in), the
 * apply loop over the applier (MVCC) and membership, the waiters (wait.ts) and the reads.
 *
 * A write, end to end (DESIGN.md):
 *   1. propose(): the request gets an id (this member + a counter), joins this turn's batch and a
 *      waiter is registered; once per turn the batch goes to the core in one proposeBatch (a
 *      follower's core forwards it to the leader).
 *   2. The Ready loop: the leader's appends leave, the entries and hard state go to the WAL in one
 *      group-committed fdatasync; followers persist before they ack; the leader commits on a
 *      quorum of durable copies (its own counted only once its WAL write returned).
 *   3. Committed entries are applied in index order on every member; one backend batch per
 *      applied batch carries the data and the applied index. The member that proposed an entry
 *      finds its waiter by (member_id, id) and answers the client.
 *
 * Reads: linearizable reads wait for a ReadIndex round (one round for every read waiting when it
 * starts, on the leader or asked of it by a follower), then for the local apply to reach it, then
 * read local state. Serializable reads read local state at once.
 *
 * Invariant: entries are applied exactly once, in index order, after they are committed.
 */
import { randomInt } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
import { assert } from '../platform/assert.js';
import { KeyraftError, isKeyraftError } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import type { Logger } from '../platform/logger.js';
import { encode, decode, messageType } from '../proto/codec.js';
import { LeaseMetrics } from '../lease/lease-metrics.js';
import type {
  AlarmMember, AlarmRequest, AlarmResponse, DefragmentResponse, HashKVRequest, HashKVResponse, HashResponse,
  CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, InternalRequest,
  LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesResponse,
  LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
  MemberAddRequest, MemberAddResponse, MemberListResponse, MemberPromoteRequest, MemberRemoveRequest,
  MembersResponse, MemberUpdateRequest, MoveLeaderRequest, MoveLeaderResponse, PutRequest, PutResponse,
  RangeRequest, RangeResponse, ResponseHeader, StatusResponse, TxnRequest, TxnResponse,
  LockRequest, LockResponse, UnlockRequest, UnlockResponse,
  CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest, ResignResponse,
} from '../proto/etcd-types.js';
import { LockService } from './lock-service.js';
import { ElectionService } from './election-service.js';
import { decodeConfChange, ConfChangeType, type ConfChange } from '../raft/conf-change.js';
import { Raft, type RaftConfig } from '../raft/raft.js';
import {
  EntryType, MessageType, NONE, Role, entrySizeBytes, type Entry, type Message, type PersistedState, type ReadState,
  type Snapshot, type SoftState,
} from '../raft/raft-types.js';
import { SeededRandom } from '../raft/seeded-random.js';
import { readAppliedIndex } from '../mvcc/kv-store.js';
import { UNKNOWN_TERM } from '../raft/raft-log.js';
import { installStateImage } from '../storage/state-image.js';
import { Wal, type SnapshotMarker } from '../storage/wal.js';
import { Applier, type ApplierOptions, type ApplyResponse as AppliedResponse } from './applier.js';
import { LEASE_GRANT_COST_BYTES } from './quota.js';
import { putProposalBytes, writePutProposal } from './put-proposal-encoding.js';
import { computeMemberId, loadOrCreateIdentity, type ClusterIdDiscovery, type ClusterIdentity } from './cluster-identity.js';
import { forwardUnary } from './leader-forward.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { MemberConfig } from './config.js';
import { Membership } from './membership.js';
import { Operations } from './operations.js';
import { toKeyraftError } from './raft-error-map.js';
import { RaftNode, type RaftTransport } from './raft-node.js';
import { decodePutProposal } from './put-proposal-decoding.js';
import { WalRaftStorage } from './raft-storage.js';
import { StateImages } from './state-images.js';
import { openEtcdSnapshot, type EtcdSnapshotStream } from './etcd-snapshots.js';
import type { ApiLimits, LeaderSink, LeaseApi, MemberApi, WatchSink, WatchStreamHandle } from './raft-kv.js';
import { WATCH_PROGRESS_NOTIFY_INTERVAL_MS } from './config.js';
import { StoreWatchHistory } from './watch-history.js';
import { WatchHub } from '../watch/watch-hub.js';
import { WatchMetrics } from '../watch/watch-metrics.js';
import { ReadIndexQueue } from './read-index-queue.js';
import { isTxnReadOnly } from './txn-write-checks.js';
import { Wait } from './wait.js';
import { RecordArena } from '../mvcc/record-arena.js';
import { ETCD_SERVER_VERSION } from '../platform/etcd-version.js';


const internalRequestType = messageType('keyraftpb.InternalRequest');

/** What an applied entry answers: the applier's responses, and the alarms the member applies itself (operations.ts). */
type ApplyResponse = AppliedResponse | AlarmResponse;

/** What the member needs from the peer network (main.ts adapts the peer transport to it). */
export interface MemberNetwork {
  /** Hands messages to the peers; returns the ones it had to drop (unreachable peer, full queue). */
  send(messages: readonly Message[]): readonly Message[];
  /**
   * Streams a state image to a follower on its own connection: `message` is the MsgSnap naming
   * the image's index, term and configuration (its data empty), `source` the image file's bytes.
   * Resolves once the follower verified and took it; rejects otherwise.
   */
  sendSnapshot(to: bigint, message: Message, source: AsyncIterable<Uint8Array>): Promise<void>;
  addPeer(id: bigint, peerUrls: readonly string[]): void;
  removePeer(id: bigint): void;
  close(): Promise<void>;
}

/** Where the network hands inbound traffic. */
export interface MemberInbox {
  step(message: Message): void;
  /** A verified state image from `from`: the MsgSnap it came with, and the file (now the member's). */
  snapshot(from: bigint, message: Message, path: string): void;
  unreachable(id: bigint): void;
  /** A peer refused us because this member was removed from the cluster: stop, as etcd does. */
  removed(by: bigint): void;
}

export type MemberNetworkFactory = (identity: ClusterIdentity, inbox: MemberInbox, options: { snapshotDir: string }) => Promise<MemberNetwork>;

/**
 * Test-only faults, for proving the linearizability checker catches what they break
 * (KEYRAFT_TEST_FAULT; never set in production): `stale-read` serves linearizable reads from
 * local state without a ReadIndex round; `early-ack` answers a write as soon as it is proposed.
 */
export type TestFault = 'stale-read' | 'early-ack' | undefined;

export interface MemberOptions {
  logger: Logger;
  metrics?: Registry;
  /** Called once if the member hits an unrecoverable error (WAL write failed, invariant broken). */
  onFatal?: (err: Error) => void;
  /** The peer network; without it the member runs alone (single-member clusters, tests). */
  network?: MemberNetworkFactory;
  /** How a member joining an existing cluster learns its id (the peer network's discovery). */
  discoverClusterId?: ClusterIdDiscovery;
  testFault?: TestFault;
}

/** etcd's request timeout: 5 s plus two election timeouts (etcdserver ReqTimeout). */
function requestTimeoutMs(config: MemberConfig): number {
  return 5000 + 2 * config.electionTimeoutMs;
}

/**
 * Ready writes handed to the WAL at once (raft-node.ts, pipelined mode): the next Ready is built
 * while earlier ones are being written, so the disk never waits for the main thread; the WAL
 * writer merges what queues behind a running fdatasync into one write.
 */
const WAL_WRITES_IN_FLIGHT_MAX = 4;

/** Backend commits tracked until written (Member.backendCommits); a few are in flight normally. */
const BACKEND_COMMITS_TRACKED_MAX = 1024;

/** A follower's ReadIndex round that got no answer within this is asked again (etcd: 500 ms). */
const READ_INDEX_RETRY_MS = 500;

/**
 * etcd's minimum lease TTL: (3 x election ticks / 2) heartbeats, in whole seconds rounded up
 * (2 s with the default 100 ms heartbeat and 1 s election timeout).
 */
export function minLeaseTtlSeconds(config: Pick<MemberConfig, 'electionTimeoutMs' | 'heartbeatIntervalMs'>): number {
  const electionTicks = Math.max(2, Math.round(config.electionTimeoutMs / config.heartbeatIntervalMs));
  return Math.ceil((Math.floor((3 * electionTicks) / 2) * config.heartbeatIntervalMs) / 1000);
}

/** How the applier is opened (at start-up and after a state image install): the lessor's options. */
function applierOptions(config: MemberConfig, logger: Logger, leaseMetrics: LeaseMetrics): ApplierOptions {
  return {
    logger, historyCacheBytes: config.historyCacheBytes, lessor: { minTtlSeconds: minLeaseTtlSeconds(config), metrics: leaseMetrics },
    historyImage: config.historyImageRecords === undefined ? undefined : { recordsMin: config.historyImageRecords },
  };
}

export class Member implements MemberApi, LeaseApi {
  readonly limits: ApiLimits;
  readonly clusterId: bigint;
  readonly memberId: bigint;

  private node!: RaftNode;
  private network: MemberNetwork | null = null;
  private appliedIndex = 0;
  private leader: bigint = NONE;
  private role: Role = Role.Follower;
  private stopped = false;
  private ticker: NodeJS.Timeout | null = null;
  private scheduled = false;
  /** Start-up timing until the WAL's entries are applied again (maybeLogStartupPhases), then null. */
  private startupPhases: { walReadMs: number; storeRebuildMs: number; openMs: number; replayFromMs: number; replayEntries: number; replayUntil: number } | null = null;
  /** Proposals of this turn, handed to the core together. */
  private batchData: Uint8Array[] = [];
  private batchIds: number[] = [];
  /**
   * Requests this member proposed, by their entry data: on the leader the same object comes back
   * in the committed entry, so it is applied without a decode. A plain Map (a WeakMap's ephemeron
   * bookkeeping cost more GC than the decode saves): an entry leaves it when applied, and the whole
   * map is dropped on a leader change (what was not applied by then may never be) and whenever no
   * proposal is waiting.
   */
  private ownProposals = new Map<Uint8Array, InternalRequest>();
  /**
   * Memory for the data of the entries this member proposes, which the Raft log keeps until it is
   * trimmed (trimLog: the last 5,000 applied entries and those not applied yet), and of the entries
   * start-up keeps from the WAL. protobufjs hands each encoding out
   * of Node's shared 8 KiB pool, where a slab stays alive while any slice of it does, so each
   * long-lived entry kept some of the transient buffers around it alive too (about 100 B per entry).
   * Entries are compacted in the order they were proposed, so an arena chunk is freed whole.
   * Measured: RSS after 200,000 puts of 256 B to one key (h2load, 100 in flight), 345 -> 325 MiB
   * (when the log still held up to 200,000 entries).
   */
  private readonly entryArena = new RecordArena();
  private readonly wait: Wait<ApplyResponse>;
  private readonly reads: ReadIndexQueue;
  private published = false;
  private releasing = false;
  /**
   * The WAL snapshot marker for the applied index covered by the last completed backend flush
   * (see maybeCompact), described when that flush started: the in-memory log may be trimmed past
   * that index before the marker is written. null: nothing to release yet.
   */
  private flushedMarker: SnapshotMarker | null = null;
  /** Entries, and bytes of entry data, applied since the in-memory log was last trimmed (trimLog). */
  private appliedSinceTrim = 0;
  private appliedBytesSinceTrim = 0;
  /**
   * Backend commits (by Backend.commitSequence) with the applied index each carries, oldest first,
   * not yet known to be written to LevelDB; writtenAppliedIndex is the newest one written. A state
   * image is taken at the backend's written applied index and needs that index's term from the
   * log, so trimLog never trims past it. Bounded (BACKEND_COMMITS_TRACKED_MAX): while LevelDB
   * writes stall, the newest pairs are merged, which only makes writtenAppliedIndex later to move.
   */
  private backendCommits: { sequence: number; index: number }[] = [];
  private writtenAppliedIndex = 0;
  private appliedSinceCompact = 0;
  /** Bytes of entry data applied since the last compaction (Limits.raftLogBytesBetweenCompactionsMax). */
  private appliedBytesSinceCompact = 0;
  private readonly metrics: MemberMetrics;
  /** Alarms, quota, defrag, hashes (operations.ts). */
  readonly ops: Operations;
  /** The Lease service and the leader's expiry and checkpoint rounds. */
  private readonly leases: LeaseKeeper;
  /** Every watcher on this member; the apply loop notifies it (every member applies, so every member serves Watch). */
  private readonly watchHub: WatchHub;
  /** etcd's v3lock recipe over this member's own KV and watch (made on first use: it needs the logger). */
  private lockServiceInstance: LockService | undefined;
  /** etcd's v3election recipe over this member's own KV, leases and watch (made on first use, as the Lock service). */
  private electionServiceInstance: ElectionService | undefined;

  private constructor(
    private readonly config: MemberConfig,
    private readonly identity: ClusterIdentity,
    private readonly wal: Wal,
    private applier: Applier,
    private membership: Membership,
    private readonly images: StateImages,
    private readonly logger: Logger,
    private readonly onFatal: (err: Error) => void,
    private readonly testFault: TestFault,
    registry: Registry,
    private readonly leaseMetrics: LeaseMetrics,
  ) {
    this.limits = { maxRequestBytes: config.maxRequestBytes, maxTxnOps: config.maxTxnOps };
    this.clusterId = identity.clusterId;
    this.memberId = identity.memberId;
    this.wait = new Wait(Limits.pendingProposalsMax, requestTimeoutMs(config));
    this.reads = new ReadIndexQueue(identity.memberId, requestTimeoutMs(config), READ_INDEX_RETRY_MS, Limits.pendingProposalsMax);
    this.metrics = new MemberMetrics(registry, () => this.reads.slowRounds, () => this.wait.size,
      () => (this.node === undefined ? 0 : this.node.raft.log.lastIndex() - this.node.raft.log.offset));
    this.ops = new Operations({
      memberId: identity.memberId,
      applier: () => this.applier,
      proposeAlarm: (request) => this.propose({ id: 0, alarm: request }) as Promise<AlarmResponse>,
      hasLeader: () => !this.stopped && this.leader !== NONE,
      isLeader: () => !this.stopped && this.role === Role.Leader,
      compact: async (revision) => { await this.compact({ revision }); },
      peers: () => this.membership.all()
        .filter((m) => m.id !== this.memberId && m.clientURLs.length > 0)
        .map((m) => ({ id: m.id, clientUrl: m.clientURLs[0]! })),
      memberCount: () => this.membership.all().length,
      peerHashKV: (clientUrl, revision) => forwardUnary<HashKVResponse>(clientUrl, '/etcdserverpb.Maintenance/HashKV',
        messageType('etcdserverpb.HashKVRequest'), messageType('etcdserverpb.HashKVResponse'), { revision }, requestTimeoutMs(config)),
    }, {
      dbDir: join(config.dataDir, 'member', 'db'), quotaBackendBytes: config.quotaBackendBytes,
      autoCompactionMode: config.autoCompactionMode, autoCompactionRetention: config.autoCompactionRetention,
      initialCorruptCheck: config.initialCorruptCheck, corruptCheckTimeMs: config.corruptCheckTimeMs, registry, logger,
    });
    this.leases = new LeaseKeeper({
      lessor: () => this.applier.lessor,
      propose: (request) => this.propose(request),
      isLeader: () => this.isLeader(),
      leaderCaughtUp: () => this.leaderCaughtUp(),
      forwardLease: (method, requestType, responseType, request) => this.forward('Lease', method, requestType, responseType, request),
      header: () => this.header(),
    }, {
      revokeRate: config.leaseRevokeRate, checkpointIntervalMs: config.leaseCheckpointIntervalMs,
      heartbeatIntervalMs: config.heartbeatIntervalMs, logger: logger.child({ component: 'lease' }),
    });
    this.watchHub = new WatchHub({
      history: new StoreWatchHistory(() => this.applier.store),
      header: { clusterId: this.clusterId, memberId: this.memberId, raftTerm: () => this.node.raft.term },
      logger,
      metrics: new WatchMetrics(registry),
      progressNotifyIntervalMs: config.watchProgressNotifyIntervalMs ?? WATCH_PROGRESS_NOTIFY_INTERVAL_MS,
    });
    this.attachWatchHub();
  }

  /** The hub hears every applied transaction's changes from the store (again after an image replaced the store). */
  private attachWatchHub(): void {
    this.applier.store.onChanges((changes, revision, previous) => this.watchHub.notify(changes, revision, previous));
  }

  openWatchStream(sink: WatchSink): WatchStreamHandle {
    this.checkRunning();
    return this.watchHub.newStream(sink, this.config.maxRequestBytes);
  }

  lock(request: LockRequest, signal?: AbortSignal): Promise<LockResponse> {
    return this.lockService().lock(request, signal);
  }

  unlock(request: UnlockRequest): Promise<UnlockResponse> {
    return this.lockService().unlock(request);
  }

  private lockService(): LockService {
    this.lockServiceInstance ??= new LockService(this, this.logger.child({ component: 'lock' }));
    return this.lockServiceInstance;
  }

  campaign(request: CampaignRequest, signal?: AbortSignal): Promise<CampaignResponse> {
    return this.electionService().campaign(request, signal);
  }

  proclaim(request: ProclaimRequest): Promise<ProclaimResponse> {
    return this.electionService().proclaim(request);
  }

  electionLeader(request: LeaderRequest): Promise<LeaderResponse> {
    return this.electionService().leader(request);
  }

  observe(request: LeaderRequest, sink: LeaderSink, signal: AbortSignal): Promise<void> {
    return this.electionService().observe(request, sink, signal);
  }

  resign(request: ResignRequest): Promise<ResignResponse> {
    return this.electionService().resign(request);
  }

  private electionService(): ElectionService {
    this.electionServiceInstance ??= new ElectionService(this, this.logger.child({ component: 'election' }));
    return this.electionServiceInstance;
  }

  /** Opens the data dir, recovers (backend, then the Raft log from the WAL), joins the peers, starts ticking. */
  static async start(config: MemberConfig, options: MemberOptions): Promise<Member> {
    const logger = options.logger.child({ component: 'member', name: config.name });
    const memberDir = join(config.dataDir, 'member');
    await mkdir(memberDir, { recursive: true });
    const identity = await loadOrCreateIdentity(memberDir, config, options.discoverClusterId);
    const registry = options.metrics ?? new Registry();
    // Components take their own child of the caller's logger, so their `component` field is theirs.
    const images = new StateImages(join(memberDir, 'snap'), options.logger.child({ component: 'state-image' }));
    await images.open();
    const leaseMetrics = new LeaseMetrics(registry);
    // The WAL is read (by its writer thread) while the store is rebuilt from the backend (LevelDB
    // reads in the thread pool, the index on this thread): neither needs the other until both are
    // done, and at 1M keys each takes seconds. Both are awaited before either is used; a failure
    // of one closes the other.
    const startedMs = performance.now();
    let walReadMs = 0;
    let storeRebuildMs = 0;
    const walOpening = Wal.open(join(memberDir, 'wal'), { logger: options.logger, metrics: registry })
      .then((opened) => { walReadMs = performance.now() - startedMs; return opened; });
    const applierOpening = Applier.open(join(memberDir, 'db'), applierOptions(config, options.logger, leaseMetrics))
      .then((opened) => { storeRebuildMs = performance.now() - startedMs; return opened; });
    const [walResult, applierResult] = await Promise.allSettled([walOpening, applierOpening]);
    if (walResult.status === 'rejected' || applierResult.status === 'rejected') {
      if (walResult.status === 'fulfilled') await walResult.value.wal.close();
      if (applierResult.status === 'fulfilled') await applierResult.value.close();
      throw walResult.status === 'rejected' ? walResult.reason : (applierResult as PromiseRejectedResult).reason;
    }
    const { wal, replay } = walResult.value;
    let applier = applierResult.value;
    try {
      applier = await reinstallIfBehind(applier, replay.snapshot?.index ?? 0, memberDir, images, logger, applierOptions(config, options.logger, leaseMetrics));
    } catch (err) {
      await wal.close();
      await applier.close();
      throw err;
    }
    const membership = await Membership.load(applier.backend, identity.initialMembers);
    const member = new Member(
      config, identity, wal, applier, membership, images, logger,
      options.onFatal ?? ((err) => { throw err; }),
      options.testFault, registry, leaseMetrics,
    );
    await member.ops.attach();
    const raft = member.recoverRaft(replay);
    const persistedLastIndex = replay.entries.length > 0 ? replay.entries[replay.entries.length - 1]!.index : (replay.snapshot?.index ?? 0);
    member.startupPhases = {
      walReadMs, storeRebuildMs, openMs: performance.now() - startedMs, replayFromMs: performance.now(),
      // The entries known committed at start-up (a follower's uncommitted tail may be replaced).
      replayEntries: Math.max(0, raft.status().committed - member.appliedIndex), replayUntil: raft.status().committed,
    };
    member.node = new RaftNode(raft, new WalRaftStorage(wal), member.transport(), member.stateMachine(), (err) => member.fail(err), null, persistedLastIndex, WAL_WRITES_IN_FLIGHT_MAX);
    if (options.network) {
      member.network = await options.network(identity, {
        step: (m) => member.step(m),
        snapshot: (from, m, path) => member.receiveSnapshot(from, m, path),
        unreachable: (id) => { if (!member.stopped) member.node.raft.reportUnreachable(id); },
        removed: (by) => member.removedFromCluster(by),
      }, { snapshotDir: images.dir });
      for (const m of membership.all()) if (m.id !== identity.memberId) member.network.addPeer(m.id, m.peerURLs);
    }
    const status = raft.status();
    // A lone voter wins its election at once: no election timeout at start-up.
    if (status.conf.voters.length === 1 && status.conf.voters[0] === identity.memberId) raft.campaign();
    member.startTicker();
    member.ops.start();
    member.schedule();
    logger.info({
      memberId: identity.memberId.toString(16), clusterId: identity.clusterId.toString(16),
      term: status.term, appliedIndex: member.appliedIndex, revision: applier.currentRevision,
      voters: status.conf.voters.map((v) => v.toString(16)),
    }, 'member started');
    member.maybeLogStartupPhases();
    return member;
  }

  /**
   * Logs, once the WAL entries found at start-up are applied again, where start-up went (ms):
   * reading the WAL, rebuilding the store (in parallel), opening as a whole, replaying the WAL
   * entries after the backend's applied index. Once per start; operators and bench/kv/restart-bench.ts read it.
   */
  private maybeLogStartupPhases(): void {
    const p = this.startupPhases;
    if (p === null || this.appliedIndex < p.replayUntil) return;
    this.startupPhases = null;
    this.logger.info({
      walReadMs: Math.round(p.walReadMs), storeRebuildMs: Math.round(p.storeRebuildMs), openMs: Math.round(p.openMs),
      replayMs: Math.round(performance.now() - p.replayFromMs), replayEntries: p.replayEntries,
    }, 'start-up phases');
  }

  /**
   * Builds the Raft core from what is durable. Fresh data dir: the founding members' bootstrap
   * snapshot (or an empty member that waits for the leader, for --initial-cluster-state
   * existing). Restart: the WAL's snapshot marker, entries and hard state, with the backend's
   * applied index (entries up to it are not applied again).
   */
  private recoverRaft(replay: Awaited<ReturnType<typeof Wal.open>>['replay']): Raft {
    const raftConfig = this.raftConfig();
    const backendApplied = this.applier.appliedIndex;
    if (replay.snapshot === undefined && replay.hardState === undefined && replay.entries.length === 0) {
      if (backendApplied > 0) {
        throw new Error(`recovery: the backend has applied index ${backendApplied} but the WAL is empty: the WAL was lost`);
      }
      if (this.config.initialClusterState === 'existing') return new Raft(raftConfig);
      return Raft.bootstrap(raftConfig, this.identity.initialMembers.map((m) => m.id));
    }
    if (replay.snapshot === undefined) {
      throw new Error('recovery: the WAL has no snapshot marker (every format-1 WAL starts with the bootstrap snapshot): refusing to guess');
    }
    const snap = replay.snapshot;
    const lastIndex = replay.entries.length > 0 ? replay.entries[replay.entries.length - 1]!.index : snap.index;
    // start() re-installed the image if the backend was behind the marker (reinstallIfBehind).
    assert(backendApplied >= snap.index || snap.index <= 1,
      () => `recovery: the backend has applied index ${backendApplied}, behind the WAL's snapshot at ${snap.index}, after re-install`);
    if (backendApplied > lastIndex) {
      throw new Error(`recovery: the backend has applied index ${backendApplied}, ahead of the WAL's last index ${lastIndex}: the WAL lost entries`);
    }
    const hs = replay.hardState ?? { term: snap.term, vote: NONE, commit: snap.index };
    const applied = Math.max(backendApplied, snap.index);
    this.appliedIndex = applied;
    this.writtenAppliedIndex = applied;
    // The WAL holds up to two --snapshot-count rounds of entries after its marker; the in-memory
    // log keeps only the catch-up window below the applied index (trimLog). The entries kept are
    // copied out of the WAL's read buffers, which would otherwise stay alive whole for them.
    const firstIndex = snap.index + 1;
    const trimTo = catchUpTrimIndex(snap.index, applied, (i) => replay.entries[i - firstIndex]!);
    const entries = replay.entries.map((e) => (e.index <= trimTo ? e : { ...e, data: this.entryArena.copy(e.data as Buffer) }));
    const persisted: PersistedState = {
      // The commit index is not fsync'd on its own (raft-storage.ts): entries the backend applied
      // were committed, so commit is at least the applied index.
      hardState: { term: hs.term, vote: hs.vote, commit: Math.min(Math.max(hs.commit, applied), lastIndex) },
      snapshot: { metadata: { index: snap.index, term: snap.term, confState: { voters: snap.voters, learners: snap.learners } }, data: new Uint8Array(0) },
      entries,
      applied,
    };
    const raft = new Raft(raftConfig, persisted);
    // The first release after a restart goes to the applied index the backend recovered at.
    this.flushedMarker = markerAt(raft, applied);
    if (trimTo > raft.snapshotIndex()) raft.compact(trimTo, new Uint8Array(0));
    return raft;
  }

  private raftConfig(): RaftConfig {
    return {
      id: this.identity.memberId,
      heartbeatTicks: 1,
      electionTicks: Math.max(2, Math.round(this.config.electionTimeoutMs / this.config.heartbeatIntervalMs)),
      random: new SeededRandom(randomInt(0x7fffffff)),
      maxMessageBytes: Limits.raftMessageBytesMax,
    };
  }

  // ---- MemberApi -------------------------------------------------------------------------------

  async range(request: RangeRequest): Promise<RangeResponse> {
    this.checkRunning();
    if (request.serializable !== true) {
      this.checkNotLearner();
      if (this.testFault !== 'stale-read') await this.readBarrier();
    }
    if (this.installing !== null) await this.installing;
    let response = this.applier.range(request);
    // A Promise only for a range at an old revision (values read from the backend).
    if (response instanceof Promise) response = await response;
    response.header = this.header();
    return response;
  }

  put(request: PutRequest): Promise<PutResponse> {
    return this.proposeWrite({ id: 0, put: request }) as Promise<PutResponse>;
  }

  deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.propose({ id: 0, delete_range: request }) as Promise<DeleteRangeResponse>;
  }

  /**
   * A txn whose ops are all ranges (etcd's isTxnReadonly: a nested txn counts as a write) is a
   * read, as in etcd: after the ReadIndex barrier it is evaluated against local state, without a
   * log entry; it changes nothing, so no revision is taken. Anything else goes through the log.
   */
  async txn(request: TxnRequest): Promise<TxnResponse> {
    if (!isTxnReadOnly(request)) return this.proposeWrite({ id: 0, txn: request }) as Promise<TxnResponse>;
    this.checkRunning();
    this.checkNotLearner();
    await this.readBarrier();
    if (this.installing !== null) await this.installing;
    const response = this.applier.apply({ id: 0, txn: request }) as TxnResponse;
    const header = this.header();
    // Ranges at an old revision finish once their values are read from the backend.
    const reading = this.applier.resolveDeferred();
    if (reading !== null) await reading;
    response.header = header;
    return response;
  }

  async compact(request: CompactionRequest): Promise<CompactionResponse> {
    const response = (await this.propose({ id: 0, compaction: request })) as CompactionResponse;
    // physical: answer only once the compaction has reached the backend.
    if (request.physical) await this.applier.flush();
    return response;
  }

  // ---- leases (lease-keeper.ts) -----------------------------------------------------------------

  leaseGrant(request: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    // A grant grows the backend: refused past the quota, as etcd's quota check and capped applier do.
    try {
      this.ops.checkQuota(LEASE_GRANT_COST_BYTES);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.leases.leaseGrant(request);
  }

  leaseRevoke(request: LeaseRevokeRequest): Promise<LeaseRevokeResponse> {
    return this.leases.leaseRevoke(request);
  }

  // A learner serves no Lease RPC (etcd 3.4's learner interceptor); grants and revokes are
  // refused by propose().

  async leaseKeepAlive(request: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse> {
    this.checkRunning();
    this.checkNotLearner();
    return this.leases.leaseKeepAlive(request);
  }

  async leaseTimeToLive(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    this.checkRunning();
    this.checkNotLearner();
    return this.leases.leaseTimeToLive(request);
  }

  async leaseLeases(): Promise<LeaseLeasesResponse> {
    this.checkRunning();
    this.checkNotLearner();
    return this.leases.leaseLeases();
  }

  /**
   * Resolves once this leader has applied an entry of its own term, and so everything earlier
   * terms committed (etcd's waitAppliedIndex before a lease renewal): before that it may not
   * know a lease a client already holds.
   */
  private leaderCaughtUp(): Promise<void> {
    const raft = this.node.raft;
    if (this.appliedIndex >= raft.log.offset && raft.log.term(this.appliedIndex) === raft.term) return Promise.resolve();
    return this.readBarrier();
  }

  async memberList(): Promise<MemberListResponse> {
    this.checkRunning();
    return { header: this.clusterHeader(), members: this.membership.toRecords() };
  }

  async snapshot(): Promise<EtcdSnapshotStream> {
    this.checkRunning();
    return openEtcdSnapshot(this.applier.backend, this.images.dir, { members: this.membership.all(), removed: this.membership.removedIds() }, this.logger);
  }

  async status(): Promise<StatusResponse> {
    this.checkRunning();
    const { dbSize, dbSizeInUse, errors } = await this.ops.statusFields();
    const s = this.node.raft.status();
    return {
      header: this.header(),
      version: ETCD_SERVER_VERSION,
      dbSize,
      leader: this.leader,
      raftIndex: s.lastIndex,
      raftTerm: s.term,
      raftAppliedIndex: this.appliedIndex,
      errors,
      dbSizeInUse,
      isLearner: s.conf.learners.includes(this.memberId),
    };
  }

  // ---- operations: alarms, defrag, hashes (operations.ts) ---------------------------------------

  /**
   * etcd's Maintenance.Alarm: every action goes through the log, as etcd 3.4's. Its answer has no
   * header (etcd 3.4's applier builds a bare AlarmResponse and nothing fills it: `alarm list -w
   * json` prints {} there).
   */
  async alarm(request: AlarmRequest): Promise<AlarmResponse> {
    const response = (await this.propose({ id: 0, alarm: { action: request.action ?? 0, memberID: request.memberID ?? 0n, alarm: request.alarm ?? 0 } })) as AlarmResponse;
    return { alarms: response.alarms };
  }

  activeAlarms(): AlarmMember[] {
    return this.ops.alarms.list();
  }

  /** etcd's Maintenance.Defragment: this member's backend only, served while it runs. */
  async defragment(): Promise<DefragmentResponse> {
    this.checkRunning();
    if (this.installing !== null) await this.installing;
    await this.ops.defragment();
    return { header: this.header() };
  }

  /** etcd's Maintenance.HashKV: served from local state, as etcd (no ReadIndex). */
  async hashKV(request: HashKVRequest): Promise<HashKVResponse> {
    this.checkRunning();
    if (this.installing !== null) await this.installing;
    const r = await this.ops.hashKV(request.revision ?? 0);
    return { header: { ...this.header(), revision: r.currentRevision }, hash: r.hash, compact_revision: r.compactRevision };
  }

  /** etcd's Maintenance.Hash: the whole backend (hash.ts). */
  async hash(): Promise<HashResponse> {
    this.checkRunning();
    if (this.installing !== null) await this.installing;
    const revision = this.applier.currentRevision;
    const hash = await this.ops.hash();
    return { header: { ...this.header(), revision }, hash };
  }

  // ---- membership (etcd's Cluster service) and MoveLeader ---------------------------------------

  async memberAdd(request: MemberAddRequest): Promise<MemberAddResponse> {
    const peerURLs = request.peerURLs ?? [];
    if (!this.isLeader()) return this.forward('Cluster', 'MemberAdd', 'MemberAddRequest', 'MemberAddResponse', request);
    for (const url of peerURLs) checkPeerUrl(url);
    const existingUrls = new Set(this.membership.all().flatMap((m) => m.peerURLs));
    if (peerURLs.some((u) => existingUrls.has(u))) throw new KeyraftError('PeerURLExist');
    const id = computeMemberId(peerURLs, this.identity.clusterToken);
    if (this.membership.get(id) !== undefined || this.membership.isRemoved(id)) throw new KeyraftError('MemberExist');
    const isLearner = request.isLearner === true;
    // etcd 3.4 allows one learner at a time (--experimental-max-learners arrived later).
    if (isLearner && this.membership.all().some((m) => m.isLearner)) throw new KeyraftError('TooManyLearners');
    await this.proposeConfChange({ type: isLearner ? ConfChangeType.AddLearner : ConfChangeType.AddVoter, memberId: id }, { peerURLs });
    const member = { ID: id, name: '', peerURLs, clientURLs: [], isLearner };
    return { header: this.clusterHeader(), member, members: this.membership.toRecords() };
  }

  async memberRemove(request: MemberRemoveRequest): Promise<MembersResponse> {
    if (!this.isLeader()) return this.forward('Cluster', 'MemberRemove', 'MemberRemoveRequest', 'MemberRemoveResponse', request);
    const id = request.ID ?? 0n;
    if (this.membership.isRemoved(id)) throw new KeyraftError('MemberNotFound');
    if (this.membership.get(id) === undefined) throw new KeyraftError('MemberNotFound');
    await this.proposeConfChange({ type: ConfChangeType.RemoveMember, memberId: id }, {});
    return { header: this.clusterHeader(), members: this.membership.toRecords() };
  }

  async memberUpdate(request: MemberUpdateRequest): Promise<MembersResponse> {
    const id = request.ID ?? 0n;
    if (this.membership.get(id) === undefined) throw new KeyraftError('MemberNotFound');
    const peerURLs = request.peerURLs ?? [];
    for (const url of peerURLs) checkPeerUrl(url);
    const others = new Set(this.membership.all().filter((m) => m.id !== id).flatMap((m) => m.peerURLs));
    if (peerURLs.some((u) => others.has(u))) throw new KeyraftError('PeerURLExist');
    await this.propose({ id: 0, member_update: { member_id: id, peer_urls: peerURLs } });
    return { header: this.clusterHeader(), members: this.membership.toRecords() };
  }

  async memberPromote(request: MemberPromoteRequest): Promise<MembersResponse> {
    if (!this.isLeader()) return this.forward('Cluster', 'MemberPromote', 'MemberPromoteRequest', 'MemberPromoteResponse', request);
    const id = request.ID ?? 0n;
    const info = this.membership.get(id);
    if (info === undefined) throw new KeyraftError('MemberNotFound');
    if (!info.isLearner) throw new KeyraftError('MemberNotLearner');
    // etcd's isLearnerReady: the learner's match index within 10% of the leader's.
    const raft = this.node.raft;
    const learner = raft.progressOf(id);
    const leaderMatch = raft.progressOf(this.memberId)?.match ?? 0;
    if (learner === undefined || learner.match < leaderMatch * 0.9) throw new KeyraftError('LearnerNotReady');
    await this.proposeConfChange({ type: ConfChangeType.AddVoter, memberId: id }, {});
    return { header: this.clusterHeader(), members: this.membership.toRecords() };
  }

  async moveLeader(request: MoveLeaderRequest): Promise<MoveLeaderResponse> {
    this.checkRunning();
    const target = request.targetID ?? 0n;
    if (!this.isLeader()) throw new KeyraftError('NotLeader');
    const info = this.membership.get(target);
    if (info === undefined || info.isLearner) throw new KeyraftError('BadLeaderTransferee');
    if (target !== this.memberId) {
      try {
        this.node.raft.transferLeadership(target);
      } catch (err) {
        throw toKeyraftError(err);
      }
      this.schedule();
      // etcd waits up to the request timeout for the transferee to take over.
      const deadline = performance.now() + requestTimeoutMs(this.config);
      while (this.leader !== target) {
        if (performance.now() > deadline || this.stopped) throw new KeyraftError('LeaderTransferTimeout');
        await new Promise((r) => setTimeout(r, this.config.heartbeatIntervalMs));
      }
    }
    // etcd 3.4 answers an empty MoveLeaderResponse, without a header (`move-leader -w json` prints {}).
    return {};
  }

  private isLeader(): boolean {
    this.checkRunning();
    if (this.leader === NONE) throw new KeyraftError('NoLeader');
    return this.role === Role.Leader;
  }

  /** Sends a leader-only request to the leader's client URL (a client may call any member, as with etcd). */
  private forward<T>(service: string, method: string, requestType: string, responseType: string, request: object): Promise<T> {
    const url = this.membership.get(this.leader)?.clientURLs[0];
    if (url === undefined) return Promise.reject(new KeyraftError('NoLeader'));
    return forwardUnary<T>(url, `/etcdserverpb.${service}/${method}`, messageType(`etcdserverpb.${requestType}`),
      messageType(`etcdserverpb.${responseType}`), request, requestTimeoutMs(this.config));
  }

  /**
   * Proposes a configuration change and resolves once it is applied here. Its context carries
   * the member's peer URLs and this request's (member, id), so the apply finds the waiter.
   */
  private proposeConfChange(change: Omit<ConfChange, 'context'>, context: { peerURLs?: string[] }): Promise<ApplyResponse> {
    const id = this.wait.newId();
    const body = { ...context, proposer: this.memberId.toString(), requestId: id };
    const promise = this.wait.register(id);
    try {
      this.node.raft.proposeConfChange({ ...change, context: Buffer.from(JSON.stringify(body)) });
    } catch (err) {
      this.wait.fail(id, toKeyraftError(err));
    }
    this.schedule();
    return promise;
  }

  private clusterHeader(): ResponseHeader {
    // etcd's cluster service header names no revision: membership is not part of the keyspace.
    return { ...this.header(), revision: 0 };
  }

  /** True while the member runs and knows a leader (/health, etcd's has_leader). */
  isHealthy(): boolean {
    return !this.stopped && this.leader !== NONE;
  }

  hasLeader(): boolean {
    return this.leader !== NONE;
  }

  /** Stops taking requests, waits for what is in flight, flushes the backend and closes the WAL. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    this.failWaiters(() => new KeyraftError('Stopped'));
    this.watchHub.close(new KeyraftError('Stopped'));
    // Let a save or apply that is running finish before the files close.
    for (let i = 0; i < 1000 && !this.node.idle; i++) await new Promise((resolve) => setTimeout(resolve, 1));
    this.node.stop();
    await this.ops.stop();
    await this.network?.close();
    this.applier.commit(this.appliedIndex);
    await this.applier.flush();
    await this.wal.close();
    await this.applier.close();
    this.logger.info({ appliedIndex: this.appliedIndex }, 'member stopped');
  }

  // ---- inputs ----------------------------------------------------------------------------------

  /** Told by a peer (or by applying our own removal): this member is no longer in the cluster. */
  private removedFromCluster(by: bigint): void {
    if (this.stopped) return;
    this.logger.warn({ by: by.toString(16) }, 'the member has been permanently removed from the cluster; stopping');
    this.fail(new Error('the member has been permanently removed from the cluster'));
  }

  private step(m: Message): void {
    if (this.stopped) return;
    if (m.to !== this.memberId) return;
    this.node.raft.step(m);
    this.schedule();
  }

  private startTicker(): void {
    this.ticker = setInterval(() => {
      if (this.stopped) return;
      this.node.raft.tick();
      this.reads.retryDue(performance.now(), (ctx) => this.issueReadIndex(ctx));
      if (this.role === Role.Leader) this.leases.tick();
      this.schedule();
    }, this.config.heartbeatIntervalMs);
  }

  /** One Ready pass per turn: everything proposed or stepped in this turn goes in one batch. */
  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.stopped) return;
      this.flushProposals();
      this.reads.startRound(performance.now(), (ctx) => this.issueReadIndex(ctx));
      this.node.process();
    });
  }

  // ---- write path ------------------------------------------------------------------------------

  /** A write that grows the backend: the space quota is checked first (operations.ts). */
  private proposeWrite(request: InternalRequest): Promise<ApplyResponse> {
    try {
      this.ops.checkPut(request);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.propose(request);
  }

  private propose(request: InternalRequest): Promise<ApplyResponse> {
    if (this.stopped) return Promise.reject(new KeyraftError('Stopped'));
    // A learner's own attribute publication goes through; clients' writes do not (etcd 3.4).
    if (request.publish === undefined && this.isLearnerNow()) return Promise.reject(new KeyraftError('NotSupportedForLearner'));
    if (this.leader === NONE) return Promise.reject(new KeyraftError('NoLeader'));
    if (this.wait.size + this.batchIds.length >= Limits.pendingProposalsMax) return Promise.reject(new KeyraftError('TooManyRequests'));
    const id = this.wait.newId();
    request.id = id;
    request.member_id = this.memberId;
    let data: Buffer;
    // Puts are encoded by hand straight into the arena (put-proposal-encoding.ts: the same bytes
    // as protobufjs, without its clone of the request, its pooled result and the copy out of it).
    const putBytes = putProposalBytes(request);
    if (putBytes >= 0) {
      if (putBytes > this.config.maxRequestBytes + Limits.grpcOverheadBytes) return Promise.reject(new KeyraftError('RequestTooLarge'));
      data = this.entryArena.alloc(putBytes);
      writePutProposal(request, data);
    } else {
      const encoded = encode(internalRequestType, request);
      if (encoded.length > this.config.maxRequestBytes + Limits.grpcOverheadBytes) return Promise.reject(new KeyraftError('RequestTooLarge'));
      data = this.entryArena.copy(encoded as Buffer);
    }
    const promise = this.wait.register(id);
    this.ownProposals.set(data, request);
    this.batchData.push(data);
    this.batchIds.push(id);
    this.schedule();
    if (this.testFault === 'early-ack') {
      // Planted bug (tests only): answer before the entry is committed anywhere.
      this.wait.trigger(id, { header: this.header() } as ApplyResponse);
    }
    return promise;
  }

  private flushProposals(): void {
    if (this.batchData.length === 0) return;
    const data = this.batchData;
    const ids = this.batchIds;
    this.batchData = [];
    this.batchIds = [];
    try {
      this.node.raft.proposeBatch(data);
    } catch (err) {
      const mapped = toKeyraftError(err);
      for (const id of ids) this.wait.fail(id, mapped);
      this.metrics.failed.inc(ids.length);
    }
  }

  // ---- the state machine: what the Ready loop applies -------------------------------------------

  private stateMachine() {
    return {
      onSoftState: (s: SoftState) => this.onSoftState(s),
      installSnapshot: (s: Snapshot) => this.installSnapshot(s),
      applyEntries: (entries: readonly Entry[]) => this.applyEntries(entries),
      onReadStates: (states: readonly ReadState[]) => this.onReadStates(states),
    };
  }

  private onSoftState(s: SoftState): void {
    const previous = this.leader;
    const wasLeader = this.role === Role.Leader;
    this.leader = s.leader;
    this.role = s.role;
    if (wasLeader !== (s.role === Role.Leader)) this.leases.onLeadership(s.role === Role.Leader, this.config.electionTimeoutMs);
    this.metrics.hasLeader.set(s.leader === NONE ? 0 : 1);
    this.metrics.isLeader.set(s.role === Role.Leader ? 1 : 0);
    if (previous !== s.leader) {
      if (s.leader !== NONE) this.metrics.leaderChanges.inc();
      this.logger.info({ leader: s.leader.toString(16), role: s.role, term: this.node.raft.status().term }, s.leader === NONE ? 'lost the leader' : 'leader elected');
      // Proposals and reads in flight may or may not take effect under the new leader: answer
      // them now with etcd's "leader changed" rather than letting them time out.
      if (previous !== NONE) this.failWaiters(() => new KeyraftError('LeaderChanged'));
      if (s.leader !== NONE) this.publishAttributes();
    }
  }

  /**
   * Installs the snapshot of a Ready. Index 1 (the bootstrap snapshot, or the empty one a joining
   * member gets for it) carries no state. Anything later is a state image the leader streamed
   * (receiveSnapshot kept its file): the WAL's snapshot marker is already durable (raft-node.ts
   * saves before it installs), so a crash from here on re-installs the same file at start-up.
   *
   *   1. build a fresh backend from the image in db.installing (verified: a bad file throws
   *      before anything of ours is touched, and the scratch dir is removed);
   *   2. close the old backend, and swap the directories by rename (db -> db.old,
   *      db.installing -> db, remove db.old);
   *   3. reopen the applier (the MVCC store rebuilt from the new backend) and the membership;
   *      the applied index becomes the image's.
   * The Ready loop waits for the returned promise; reads wait for it too (range()).
   */
  private installSnapshot(s: Snapshot): Promise<void> | null {
    if (s.metadata.index <= 1) {
      assert(s.data.length === 0 && this.appliedIndex <= 1,
        () => `install snapshot at ${s.metadata.index} (${s.data.length} bytes) over applied ${this.appliedIndex}`);
      this.appliedIndex = Math.max(this.appliedIndex, s.metadata.index);
      return null;
    }
    const installing = this.installImage(s).finally(() => { this.installing = null; });
    this.installing = installing;
    return installing;
  }

  private installing: Promise<void> | null = null;

  private async installImage(s: Snapshot): Promise<void> {
    const index = s.metadata.index;
    const path = await this.images.find(index);
    assert(path !== null, () => `install snapshot at ${index}: no state image for it in ${this.images.dir}`);
    const started = performance.now();
    await this.ops.idle();
    this.applier = await swapInImage(this.applier, path, index, join(this.config.dataDir, 'member'), this.logger,
      applierOptions(this.config, this.logger, this.leaseMetrics));
    // The new lessor starts as a follower's; a leader (which does not install images in practice) restarts its clock.
    if (this.role === Role.Leader) this.leases.onLeadership(true, this.config.electionTimeoutMs);
    // The watchers knew the old store: they catch up from the new one's history (etcd's Restore).
    this.attachWatchHub();
    this.watchHub.restore(new StoreWatchHistory(() => this.applier.store));
    this.membership = await Membership.load(this.applier.backend, this.identity.initialMembers);
    await this.ops.attach();
    for (const m of this.membership.all()) if (m.id !== this.memberId) this.network?.addPeer(m.id, m.peerURLs);
    this.appliedIndex = index;
    // The image's own marker is already in the WAL (raft-node.ts saved it before the install).
    this.flushedMarker = null;
    this.lastCompactIndex = Math.max(this.lastCompactIndex, index);
    this.appliedSinceCompact = 0;
    this.appliedBytesSinceCompact = 0;
    // A new backend: its commit sequence starts again, and everything up to the image is written.
    this.backendCommits = [];
    this.writtenAppliedIndex = index;
    this.appliedSinceTrim = 0;
    this.appliedBytesSinceTrim = 0;
    this.reads.applied(index);
    this.metrics.snapshotsInstalled.inc();
    await this.images.removeOlderThan(index);
    this.logger.info({ index, term: s.metadata.term, revision: this.applier.currentRevision, ms: Math.round(performance.now() - started) },
      'installed state image from the leader');
  }

  /** The transport handed over a verified image file: keep it under its index, then let the core decide. */
  private receiveSnapshot(from: bigint, m: Message, path: string): void {
    if (this.stopped || m.to !== this.memberId || m.from !== from || m.snapshot === null || m.snapshot.metadata.index <= 1) {
      this.logger.warn({ from: from.toString(16), index: m.snapshot?.metadata.index }, 'dropping a state image that does not fit its message');
      void this.images.discard(path);
      return;
    }
    this.images.accept(path, m.snapshot.metadata.index).then(
      () => this.step(m),
      (err: Error) => this.logger.error({ err, from: from.toString(16) }, 'keeping a received state image failed; dropped'),
    );
  }

  private applyEntries(entries: readonly Entry[]): void {
    let bytes = 0;
    for (const entry of entries) {
      this.applyEntry(entry);
      bytes += entry.data.length;
    }
    // Counted once per applied batch, not twice per entry: each prom-client inc hashes its labels
    // and looks them up in a Map.
    this.metrics.committed.inc(entries.length);
    this.metrics.applied.inc(entries.length);
    // Proposals whose waiters timed out and that never came back are dropped once none wait.
    if (this.wait.size === 0 && this.ownProposals.size > 0 && this.batchData.length === 0) this.ownProposals = new Map();
    // One backend batch for everything applied in this Ready, with the applied index inside it.
    this.applier.commit(this.appliedIndex);
    this.trackBackendCommit();
    this.reads.applied(this.appliedIndex);
    if (this.startupPhases !== null) this.maybeLogStartupPhases();
    this.appliedSinceCompact += entries.length;
    this.appliedBytesSinceCompact += bytes;
    this.appliedSinceTrim += entries.length;
    this.appliedBytesSinceTrim += bytes;
    if (this.appliedSinceTrim >= Limits.raftLogTrimIntervalEntries || this.appliedBytesSinceTrim >= Limits.raftLogTrimIntervalBytes) this.trimLog();
    if (this.appliedSinceCompact >= this.config.snapshotCount || this.appliedBytesSinceCompact >= Limits.raftLogBytesBetweenCompactionsMax) this.maybeCompact();
  }

  /**
   * Applies one committed entry. Expected failures (a put with an unknown lease ...) consume the
   * index and answer the client with the error, as etcd does; anything else is a bug.
   */
  private applyEntry(entry: Entry): void {
    assert(entry.index === this.appliedIndex + 1, () => `applying index ${entry.index} after ${this.appliedIndex}`);
    this.appliedIndex = entry.index;
    if (entry.type === EntryType.ConfChange) {
      this.applyConfChange(entry);
      return;
    }
    if (entry.data.length === 0) return; // a new leader's no-op
    let request = this.ownProposals.get(entry.data);
    if (request !== undefined) this.ownProposals.delete(entry.data);
    // Followers (and a restart's replay) decode every entry: plain puts by hand, the rest by protobufjs.
    else request = decodePutProposal(entry.data) ?? decode<InternalRequest>(internalRequestType, entry.data);
    const mine = request.member_id === this.memberId && this.wait.has(request.id);
    if (request.member_update) {
      const existing = this.membership.get(request.member_update.member_id);
      if (existing !== undefined) {
        this.membership.set({ ...existing, peerURLs: request.member_update.peer_urls });
        if (existing.id !== this.memberId) this.network?.addPeer(existing.id, request.member_update.peer_urls);
      }
      if (mine) this.wait.trigger(request.id, {} as ApplyResponse);
      return;
    }
    if (request.publish) {
      this.applyPublish(request);
      if (mine) this.wait.trigger(request.id, {} as ApplyResponse);
      return;
    }
    if (request.alarm) {
      const alarmResponse = this.ops.applyAlarm(request.alarm);
      if (mine) this.wait.trigger(request.id, alarmResponse);
      return;
    }
    // Under an alarm, writes fail on every member alike (etcd's capped and corrupt appliers).
    const refused = this.ops.refusal(request);
    if (refused !== null) {
      this.metrics.failed.inc();
      if (mine) this.wait.fail(request.id, refused);
      return;
    }
    let response: ApplyResponse;
    let reading: Promise<void> | null;
    try {
      response = this.applier.apply(request);
      // A txn's ranges at an old revision read their values now (pinned), answered after.
      reading = this.applier.resolveDeferred();
    } catch (err) {
      if (!isKeyraftError(err)) {
        this.fail(err as Error);
        throw err;
      }
      this.metrics.failed.inc();
      if (mine) this.wait.fail(request.id, err);
      return;
    }
    if (reading !== null) {
      const header = this.header();
      const id = request.id;
      reading.then(
        () => {
          response.header = header;
          if (mine) this.wait.trigger(id, response);
        },
        (err: Error) => {
          this.logger.error({ err }, 'reading old values for a txn failed');
          if (mine) this.wait.fail(id, err);
        },
      );
      return;
    }
    if (mine) {
      response.header = this.header();
      this.wait.trigger(request.id, response);
    }
  }

  private applyConfChange(entry: Entry): void {
    const change = decodeConfChange(entry.data);
    const context = change.context.length > 0
      ? JSON.parse(Buffer.from(change.context).toString('utf8')) as { name?: string; peerURLs?: string[]; proposer?: string; requestId?: number }
      : {};
    if (context.proposer === this.memberId.toString() && context.requestId !== undefined) {
      // Answered after the table below is updated (the waiter's continuation runs later).
      const requestId = context.requestId;
      queueMicrotask(() => this.wait.trigger(requestId, {} as ApplyResponse));
    }
    if (change.type === ConfChangeType.RemoveMember) {
      this.membership.remove(change.memberId);
      this.network?.removePeer(change.memberId);
      if (change.memberId === this.memberId) setImmediate(() => this.removedFromCluster(this.memberId));
      return;
    }
    const existing = this.membership.get(change.memberId);
    const info = {
      id: change.memberId,
      name: existing?.name ?? context.name ?? '',
      peerURLs: context.peerURLs ?? existing?.peerURLs ?? [],
      clientURLs: existing?.clientURLs ?? [],
      isLearner: change.type === ConfChangeType.AddLearner,
    };
    this.membership.set(info);
    if (change.memberId !== this.memberId) this.network?.addPeer(change.memberId, info.peerURLs);
  }

  private applyPublish(request: InternalRequest): void {
    const attrs = request.publish!;
    const existing = this.membership.get(attrs.member_id);
    if (existing === undefined) return; // removed meanwhile
    this.membership.set({ ...existing, name: attrs.name, clientURLs: attrs.client_urls });
  }

  /** Once it knows a leader, a member publishes its name and client URLs through the log (etcd's publish). */
  private publishAttributes(): void {
    if (this.published) return;
    const current = this.membership.get(this.memberId);
    const clientUrls = this.config.advertiseClientUrls.map(urlText);
    if (current && current.name === this.config.name && current.clientURLs.join(',') === clientUrls.join(',')) {
      this.published = true;
      return;
    }
    this.propose({ id: 0, publish: { member_id: this.memberId, name: this.config.name, client_urls: clientUrls } }).then(
      () => { this.published = true; },
      (err: Error) => this.logger.debug({ err: err.message }, 'publishing member attributes failed; retrying on the next leader'),
    );
  }

  // ---- reads -----------------------------------------------------------------------------------

  /** Resolves once local state reflects every write acknowledged before the call (ReadIndex). */
  private readBarrier(): Promise<void> {
    if (this.leader === NONE) return Promise.reject(new KeyraftError('NoLeader'));
    const p = this.reads.add();
    this.schedule();
    return p;
  }

  private issueReadIndex(context: Uint8Array): Error | null {
    try {
      this.node.raft.readIndex(context);
      return null;
    } catch (err) {
      return toKeyraftError(err);
    }
  }

  private onReadStates(states: readonly ReadState[]): void {
    for (const rs of states) this.reads.answered(rs.context, rs.index, this.appliedIndex);
  }

  // ---- compaction ------------------------------------------------------------------------------

  /**
   * Every --snapshot-count applied entries: once the backend is synced, the WAL before the
   * backend's durable applied index is no longer needed for recovery. The snapshot marker is made
   * durable, and only then are WAL segments before it released. The in-memory log is trimmed on
   * its own, far more often (trimLog): only the WAL waits for the backend.
   *
   * The release lags one round behind the flush: it covers only what was applied before the
   * *previous* flush. LevelDB switches memtable logs without syncing the old one, so a synced
   * write covers the newest log only until the old memtable reaches a (synced) table file; a
   * whole round of writes in between makes that all but certain before the WAL copy is gone.
   * The marker for the index being flushed is described now (term, configuration), while the
   * in-memory log still holds it: by the next round trimLog has moved far past it.
   */
  private maybeCompact(): void {
    if (this.releasing) return;
    this.releasing = true;
    this.appliedSinceCompact = 0;
    this.appliedBytesSinceCompact = 0;
    const release = this.flushedMarker;
    const flushing = markerAt(this.node.raft, this.appliedIndex);
    this.applier.flush()
      .then(async () => {
        // An image being installed moves the log past the release and resets flushedMarker itself.
        if (this.installing !== null) return;
        if (!this.stopped && release !== null && release.index > 1 && release.index > this.lastCompactIndex) {
          await this.wal.appendSnapshotMarker(release);
          this.lastCompactIndex = release.index;
          await this.wal.releaseTo(release.index);
          this.logger.debug({ index: release.index }, 'released the WAL before the backend\'s durable applied index');
        }
        this.flushedMarker = flushing;
      })
      .catch((err: Error) => this.logger.error({ err, release: release?.index }, 'WAL release failed; WAL segments are kept'))
      .finally(() => { this.releasing = false; });
  }

  /**
   * Drops the in-memory Raft log below the catch-up window (Limits.raftLogCatchUpEntries entries,
   * at most Limits.raftLogCatchUpBytesMax bytes, below the applied index), apart from the WAL,
   * which keeps everything recovery needs (maybeCompact). A follower behind the window gets a
   * state image, as etcd's followers behind its 5,000 catch-up entries get a snapshot. Unapplied
   * entries are never dropped, nor anything the backend has not written yet: a state image is
   * taken at the backend's written applied index, whose term and configuration come from the log.
   */
  private trimLog(): void {
    this.appliedSinceTrim = 0;
    this.appliedBytesSinceTrim = 0;
    const commits = this.backendCommits;
    const writtenSequence = this.applier.backend.writtenSequence;
    let written = 0;
    while (written < commits.length && commits[written]!.sequence <= writtenSequence) {
      this.writtenAppliedIndex = Math.max(this.writtenAppliedIndex, commits[written]!.index);
      written++;
    }
    if (written > 0) commits.splice(0, written);
    const raft = this.node.raft;
    const log = raft.log;
    // log.applied: applied and confirmed by advance() (this Ready's entries are not yet).
    const bound = Math.min(log.applied, log.stable, this.writtenAppliedIndex);
    const trimTo = catchUpTrimIndex(log.offset, bound, (i) => log.entryAt(i));
    if (trimTo > raft.snapshotIndex()) raft.compact(trimTo, new Uint8Array(0));
  }

  private lastCompactIndex = 0;

  /** Notes the backend commit that carries the applied index just committed (see backendCommits). */
  private trackBackendCommit(): void {
    const sequence = this.applier.backend.commitSequence;
    const commits = this.backendCommits;
    const last = commits[commits.length - 1];
    if (last !== undefined && last.sequence === sequence) {
      last.index = this.appliedIndex;
    } else if (last !== undefined && commits.length >= BACKEND_COMMITS_TRACKED_MAX) {
      // Merged into the newest pair: its index counts as written only once this later commit is.
      last.sequence = sequence;
      last.index = this.appliedIndex;
    } else {
      commits.push({ sequence, index: this.appliedIndex });
    }
  }

  // ---- transport -------------------------------------------------------------------------------

  /**
   * Outbound messages. A MsgSnap past the bootstrap snapshot means a follower is behind the
   * compacted log: it goes out as a state image on its own connection (sendStateImage), never on
   * the message stream.
   */
  private transport(): RaftTransport {
    return {
      send: (messages) => {
        const network = this.network;
        if (network === null) return;
        let out = messages;
        if (messages.some(isImageSnap)) {
          out = messages.filter((m) => {
            if (!isImageSnap(m)) return true;
            this.sendStateImage(network, m);
            return false;
          });
        }
        const dropped = network.send(out);
        for (const m of dropped) if (m.type === MessageType.Heartbeat) this.metrics.heartbeatSendFailures.inc();
      },
    };
  }

  /** Followers a state image is being written for or streamed to (one transfer per follower). */
  private readonly imagesInFlight = new Set<bigint>();

  /**
   * Sends a follower a state image at least as new as the core's snapshot, off the main thread's
   * critical path: the image is written (or a recent one reused) and streamed asynchronously, and
   * the core hears the outcome through reportSnapshot. The image's own index, term and
   * configuration replace the core's snapshot metadata in the MsgSnap the follower steps.
   */
  private sendStateImage(network: MemberNetwork, m: Message): void {
    const to = m.to;
    if (this.imagesInFlight.has(to)) return;
    this.imagesInFlight.add(to);
    const started = performance.now();
    let index = 0;
    this.images.forSend(m.snapshot!.metadata.index, this.applier.backend, {
      appliedIndex: (reader) => readAppliedIndex((bucket, key) => reader.get(bucket, key)),
      describe: (i) => this.describeIndex(i),
    })
      .then(async (image) => {
        index = image.index;
        const d = this.describeIndex(image.index);
        const message: Message = {
          ...m,
          snapshot: { metadata: { index: image.index, term: d.term, confState: { voters: d.voters, learners: d.learners } }, data: new Uint8Array(0) },
        };
        await network.sendSnapshot(to, message, this.images.read(image.path));
      })
      .then(
        () => {
          this.metrics.snapshotsSent.inc();
          this.logger.info({ to: to.toString(16), index, ms: Math.round(performance.now() - started) }, 'sent state image');
          if (!this.stopped) this.node.raft.reportSnapshot(to, true);
        },
        (err: Error) => {
          this.logger.warn({ to: to.toString(16), index, err: err.message }, 'sending a state image failed; the core will retry');
          if (!this.stopped) this.node.raft.reportSnapshot(to, false);
        },
      )
      .finally(() => {
        this.imagesInFlight.delete(to);
        this.schedule();
      });
  }

  /** The Raft term and configuration at an applied index still in the log (for an image there). */
  private describeIndex(index: number): { term: number; voters: readonly bigint[]; learners: readonly bigint[] } {
    const log = this.node.raft.log;
    const term = index >= log.offset ? log.term(index) : UNKNOWN_TERM;
    if (term === UNKNOWN_TERM) throw new Error(`state image at ${index}: the raft log no longer holds its term (offset ${log.offset})`);
    const conf = log.confAt(index);
    return { term, voters: conf.voters, learners: conf.learners };
  }

  // ---- failures --------------------------------------------------------------------------------

  private failWaiters(err: () => Error): void {
    this.ownProposals = new Map();
    const n = this.wait.failAll(err);
    if (n > 0) this.metrics.failed.inc(n);
    this.reads.failAll(err);
  }

  private fail(err: Error): void {
    if (this.stopped) return;
    this.logger.fatal({ err }, 'member failed');
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    this.node?.stop();
    this.failWaiters(() => new KeyraftError('Stopped'));
    this.watchHub.close(new KeyraftError('Stopped'));
    this.onFatal(err);
  }

  /** Whether this member is a learner, as the applied membership says. */
  private isLearnerNow(): boolean {
    return this.membership.get(this.memberId)?.isLearner === true;
  }

  private checkNotLearner(): void {
    if (this.isLearnerNow()) throw new KeyraftError('NotSupportedForLearner');
  }

  private checkRunning(): void {
    if (this.stopped) throw new KeyraftError('Stopped');
  }

  private header(): ResponseHeader {
    return { cluster_id: this.clusterId, member_id: this.memberId, revision: this.applier.currentRevision, raft_term: this.node.raft.term };
  }
}

class MemberMetrics {
  readonly committed: Counter;
  readonly applied: Counter;
  readonly failed: Counter;
  /** Proposals of this member waiting to be applied (read from the waiters when scraped). */
  readonly pending: Gauge;
  readonly hasLeader: Gauge;
  readonly isLeader: Gauge;
  readonly leaderChanges: Counter;
  readonly heartbeatSendFailures: Counter;
  readonly snapshotsSent: Counter;
  readonly snapshotsInstalled: Counter;

  constructor(registry: Registry, slowReadIndexes: () => number, waiting: () => number, logEntries: () => number) {
    const registers = [registry];
    this.committed = new Counter({ name: 'etcd_server_proposals_committed_total', help: 'The total number of consensus proposals committed.', registers });
    this.applied = new Counter({ name: 'etcd_server_proposals_applied_total', help: 'The total number of consensus proposals applied.', registers });
    this.failed = new Counter({ name: 'etcd_server_proposals_failed_total', help: 'The total number of failed proposals seen.', registers });
    this.pending = new Gauge({
      name: 'etcd_server_proposals_pending', help: 'The current number of pending proposals to commit.', registers,
      collect() { this.set(waiting()); },
    });
    new Gauge({
      name: 'keyraft_server_raft_log_entries', help: 'Raft log entries held in memory (the catch-up window below the applied index, and what is not applied yet).', registers,
      collect() { this.set(logEntries()); },
    });
    this.hasLeader = new Gauge({ name: 'etcd_server_has_leader', help: 'Whether or not a leader exists. 1 is existence, 0 is not.', registers });
    this.isLeader = new Gauge({ name: 'etcd_server_is_leader', help: 'Whether or not this member is a leader. 1 if is, 0 otherwise.', registers });
    this.leaderChanges = new Counter({ name: 'etcd_server_leader_changes_seen_total', help: 'The number of leader changes seen.', registers });
    this.snapshotsSent = new Counter({ name: 'keyraft_server_state_images_sent_total', help: 'State images streamed to followers behind the compacted log.', registers });
    this.snapshotsInstalled = new Counter({ name: 'keyraft_server_state_images_installed_total', help: 'State images received from the leader and installed.', registers });
    this.heartbeatSendFailures = new Counter({ name: 'etcd_server_heartbeat_send_failures_total', help: 'The total number of leader heartbeat send failures (likely overloaded from slow disk).', registers });
    new Counter({
      name: 'etcd_server_slow_read_indexes_total', help: 'The total number of pending read indexes not in sync with leader\'s or timed out read index requests.', registers,
      collect() { this.reset(); this.inc(slowReadIndexes()); },
    });
  }
}

/** A peer URL in a membership request: http(s)://host:port, as etcd's types.NewURLs accepts. */
function checkPeerUrl(text: string): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new KeyraftError('InvalidArgument', `etcdserver: invalid peer URL ${JSON.stringify(text)}`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.port || (url.pathname !== '/' && url.pathname !== '')) {
    throw new KeyraftError('InvalidArgument', `etcdserver: invalid peer URL ${JSON.stringify(text)}`);
  }
}

/** The WAL snapshot marker for an index the Raft log still holds (its term and configuration there). */
function markerAt(raft: Raft, index: number): SnapshotMarker {
  const term = raft.log.term(index);
  assert(term !== UNKNOWN_TERM, () => `snapshot marker at ${index}: the raft log no longer holds its term (offset ${raft.log.offset})`);
  const conf = raft.log.confAt(index);
  return { index, term, voters: conf.voters, learners: conf.learners };
}

/**
 * Where the in-memory log may be trimmed to (the new compaction point) so that it keeps the
 * catch-up window below `upTo`: at most Limits.raftLogCatchUpEntries entries and
 * Limits.raftLogCatchUpBytesMax bytes (at least one entry). `offset` is the current compaction
 * point; entryAt reads the entries in (offset, upTo]. Returns offset when nothing can go.
 */
export function catchUpTrimIndex(offset: number, upTo: number, entryAt: (index: number) => Entry): number {
  if (upTo <= offset) return offset;
  const lowest = Math.max(offset, upTo - Limits.raftLogCatchUpEntries);
  let i = upTo;
  let bytes = 0;
  while (i > lowest) {
    bytes += entrySizeBytes(entryAt(i));
    if (bytes > Limits.raftLogCatchUpBytesMax && i < upTo) break;
    i--;
  }
  return i;
}

function isImageSnap(m: Message): boolean {
  return m.type === MessageType.Snap && m.snapshot !== null && m.snapshot.metadata.index > 1;
}

/**
 * Replaces the backend at memberDir/db with one built from the image at `path` and returns the
 * applier reopened on it. The image is verified while it is installed into db.installing; only
 * then is the old backend closed and the directories swapped by rename. A crash at any point
 * leaves either the old backend or the new one (or none: an empty backend opens at applied 0),
 * and start-up re-installs from the same image while the backend is behind the WAL's marker.
 */
async function swapInImage(applier: Applier, path: string, index: number, memberDir: string, logger: Logger, options: ApplierOptions): Promise<Applier> {
  const dbDir = join(memberDir, 'db');
  const scratch = join(memberDir, 'db.installing');
  const old = join(memberDir, 'db.old');
  const installed = await installStateImage(path, scratch, logger);
  assert(installed.header.index === index, () => `state image ${path} holds index ${installed.header.index}, expected ${index}`);
  await applier.close();
  await rm(old, { recursive: true, force: true });
  await rename(dbDir, old);
  await rename(scratch, dbDir);
  await rm(old, { recursive: true, force: true });
  const reopened = await Applier.open(dbDir, options);
  assert(reopened.appliedIndex === index, () => `backend installed from the image at ${index} reports applied index ${reopened.appliedIndex}`);
  return reopened;
}

/**
 * Start-up: if the WAL's snapshot marker is ahead of the backend (a crash between writing the
 * marker of a received image and the end of its install), install that image again.
 */
async function reinstallIfBehind(
  applier: Applier, markerIndex: number, memberDir: string, images: StateImages, logger: Logger, options: ApplierOptions,
): Promise<Applier> {
  await rm(join(memberDir, 'db.installing'), { recursive: true, force: true });
  if (markerIndex <= 1 || applier.appliedIndex >= markerIndex) return applier;
  const path = await images.find(markerIndex);
  if (path === null) {
    throw new Error(`recovery: the backend has applied index ${applier.appliedIndex}, behind the WAL's snapshot at ${markerIndex}, and the state image for it is missing from ${images.dir}`);
  }
  logger.warn({ appliedIndex: applier.appliedIndex, markerIndex, path }, 'the backend is behind the WAL snapshot marker (interrupted install): re-installing the state image');
  return swapInImage(applier, path, markerIndex, memberDir, logger, options);
}

function urlText(url: URL): string {
  return `${url.protocol}//${url.host}`;
}
