/**
 * The member: owns the log, the apply loop and the waiters, and serves MemberApi to the API layer.
 *
 * A write, end to end (DESIGN.md), for the single-member cluster this is today:
 *   1. propose(): the request gets the next log index and joins the batch of this event-loop turn.
 *   2. The batch is flushed once per turn (setImmediate) to the WAL writer as one append; the WAL
 *      groups every append that arrives while an fdatasync runs into the next write (group commit).
 *   3. When the WAL reports the batch durable, its entries are committed (a lone member is its own
 *      quorum) and applied in index order; each waiter is answered after its entry is applied.
 *   4. One backend batch per applied batch carries the data and the applied index together.
 * The Raft core slots in between 1 and 3: it decides the index and term, and commit comes from a
 * quorum of durable acks instead of the local fsync alone. Nothing else here changes.
 *
 * Reads: every acknowledged write is applied before it is acknowledged, so a read of the applied
 * state is linearizable on a lone member; serializable reads take the same path.
 *
 * Invariant: appliedIndex <= durableIndex <= lastIndex.
 * Invariant: entries are applied exactly once, in index order, after they are durable.
 */
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
import { assert } from '../platform/assert.js';
import { KeyraftError, isKeyraftError } from '../platform/errors.js';
import { Limits } from '../platform/limits.js';
import type { Logger } from '../platform/logger.js';
import { encode, decode, messageType } from '../proto/codec.js';
import type {
  CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, InternalRequest,
  MemberListResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
  StatusResponse, TxnRequest, TxnResponse,
} from '../proto/etcd-types.js';
import { Wal, type WalEntry } from '../storage/wal.js';
import { Applier } from './applier.js';
import { loadOrCreateIdentity, type ClusterIdentity } from './cluster-identity.js';
import type { MemberConfig } from './config.js';
import type { ApiLimits, MemberApi } from './raft-kv.js';

/** The etcd version keyraft speaks; clients gate features on it. */
export const ETCD_API_VERSION = '3.4.23';

const internalRequestType = messageType('keyraftpb.InternalRequest');

type ApplyResponse = PutResponse | DeleteRangeResponse | TxnResponse | CompactionResponse;

interface Proposal {
  entry: WalEntry;
  request: InternalRequest;
  resolve: (response: ApplyResponse) => void;
  reject: (err: Error) => void;
}

export interface MemberOptions {
  logger: Logger;
  metrics?: Registry;
  /** Called once if the member hits an unrecoverable error (WAL write failed, invariant broken). */
  onFatal?: (err: Error) => void;
}

export class Member implements MemberApi {
  readonly limits: ApiLimits;
  readonly clusterId: bigint;
  readonly memberId: bigint;

  private term = 0;
  /** Index of the last entry handed to the WAL. */
  private lastIndex = 0;
  /** Index of the last entry the WAL reported durable. */
  private durableIndex = 0;
  private appliedIndex = 0;
  /** Proposals of this event-loop turn, not yet handed to the WAL. */
  private batch: Proposal[] = [];
  private batchScheduled = false;
  private inflight = 0;
  private stopped = false;
  private releasing = false;
  /** Applied index covered by the last completed backend flush (see releaseWal). */
  private flushedIndex = 0;
  private appliedSinceRelease = 0;
  private readonly metrics: MemberMetrics;

  private constructor(
    private readonly config: MemberConfig,
    private readonly identity: ClusterIdentity,
    private readonly wal: Wal,
    private readonly applier: Applier,
    private readonly logger: Logger,
    private readonly onFatal: (err: Error) => void,
    registry: Registry,
  ) {
    this.limits = { maxRequestBytes: config.maxRequestBytes, maxTxnOps: config.maxTxnOps };
    this.clusterId = identity.clusterId;
    this.memberId = identity.memberId;
    this.metrics = new MemberMetrics(registry);
  }

  /** Opens the data dir, recovers (backend, then WAL replay after the applied index), and starts a new term. */
  static async start(config: MemberConfig, options: MemberOptions): Promise<Member> {
    const logger = options.logger.child({ component: 'member', name: config.name });
    const memberDir = join(config.dataDir, 'member');
    await mkdir(memberDir, { recursive: true });
    const identity = await loadOrCreateIdentity(memberDir, config);
    const registry = options.metrics ?? new Registry();
    // Components take their own child of the caller's logger, so their `component` field is theirs.
    const applier = await Applier.open(join(memberDir, 'db'), { logger: options.logger });
    let wal: Wal;
    let replay;
    try {
      ({ wal, replay } = await Wal.open(join(memberDir, 'wal'), { logger: options.logger, metrics: registry }));
    } catch (err) {
      await applier.close();
      throw err;
    }
    const member = new Member(
      config, identity, wal, applier, logger,
      options.onFatal ?? ((err) => { throw err; }),
      registry,
    );
    await member.recover(replay.entries, replay.hardState?.term ?? 1, replay.firstIndex);
    logger.info({
      memberId: identity.memberId.toString(16), clusterId: identity.clusterId.toString(16),
      term: member.term, appliedIndex: member.appliedIndex, revision: applier.currentRevision,
    }, 'member started');
    return member;
  }

  /** Replays WAL entries the backend has not applied, then begins a new term with a no-op entry. */
  private async recover(entries: WalEntry[], lastTerm: number, firstIndex: number): Promise<void> {
    const backendApplied = this.applier.appliedIndex;
    const lastWalIndex = entries.length > 0 ? entries[entries.length - 1]!.index : firstIndex - 1;
    if (backendApplied > lastWalIndex && entries.length > 0) {
      throw new Error(`recovery: backend applied index ${backendApplied} is ahead of the WAL's last index ${lastWalIndex}: the WAL lost entries`);
    }
    if (entries.length > 0 && entries[0]!.index > backendApplied + 1) {
      throw new Error(`recovery: WAL starts at index ${entries[0]!.index} but the backend has applied only ${backendApplied}: entries ${backendApplied + 1}..${entries[0]!.index - 1} are missing`);
    }
    this.appliedIndex = backendApplied;
    let replayed = 0;
    for (const entry of entries) {
      if (entry.index <= backendApplied) continue;
      this.applyEntry(entry, undefined);
      replayed++;
    }
    this.lastIndex = Math.max(lastWalIndex, backendApplied);
    this.durableIndex = this.lastIndex;
    if (replayed > 0) {
      this.applier.commit(this.appliedIndex);
      this.logger.info({ replayed, appliedIndex: this.appliedIndex }, 'replayed WAL entries');
    }
    // A lone member wins its election at once: a new term, made durable with a no-op entry
    // (Raft's leader no-op) before any request is served, so terms never repeat after a restart.
    this.term = Math.max(lastTerm, 1) + 1;
    const noop: WalEntry = { term: this.term, index: ++this.lastIndex, type: 0, data: new Uint8Array(0) };
    await this.wal.append([noop], { term: this.term, vote: 1, commit: this.lastIndex });
    this.durableIndex = this.lastIndex;
    this.applyEntry(noop, undefined);
    this.applier.commit(this.appliedIndex);
  }

  // ---- MemberApi -------------------------------------------------------------------------------

  async range(request: RangeRequest): Promise<RangeResponse> {
    this.checkRunning();
    const response = this.applier.range(request);
    response.header = this.header();
    return response;
  }

  put(request: PutRequest): Promise<PutResponse> {
    return this.propose({ id: 0, put: request }) as Promise<PutResponse>;
  }

  deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.propose({ id: 0, delete_range: request }) as Promise<DeleteRangeResponse>;
  }

  txn(request: TxnRequest): Promise<TxnResponse> {
    return this.propose({ id: 0, txn: request }) as Promise<TxnResponse>;
  }

  async compact(request: CompactionRequest): Promise<CompactionResponse> {
    const response = (await this.propose({ id: 0, compaction: request })) as CompactionResponse;
    // physical: answer only once the compaction has reached the backend.
    if (request.physical) await this.applier.flush();
    return response;
  }

  async memberList(): Promise<MemberListResponse> {
    this.checkRunning();
    // etcd's cluster service header names no revision: membership is not part of the keyspace.
    return {
      header: { ...this.header(), revision: 0 },
      members: [{
        ID: this.memberId,
        name: this.identity.name,
        peerURLs: this.identity.peerUrls,
        clientURLs: this.config.advertiseClientUrls.map(urlText),
        isLearner: false,
      }],
    };
  }

  async status(): Promise<StatusResponse> {
    this.checkRunning();
    const dbSize = await directorySize(join(this.config.dataDir, 'member', 'db'));
    return {
      header: this.header(),
      version: ETCD_API_VERSION,
      dbSize,
      leader: this.memberId,
      raftIndex: this.lastIndex,
      raftTerm: this.term,
      raftAppliedIndex: this.appliedIndex,
      errors: [],
      dbSizeInUse: dbSize,
      isLearner: false,
    };
  }

  isHealthy(): boolean {
    return !this.stopped;
  }

  /** Stops taking requests, waits for what is in flight, flushes the backend and closes the WAL. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.batch.length > 0) this.flushBatch();
    while (this.inflight > 0) await new Promise((resolve) => setImmediate(resolve));
    this.applier.commit(this.appliedIndex);
    await this.applier.flush();
    await this.wal.close();
    await this.applier.close();
    this.logger.info({ appliedIndex: this.appliedIndex }, 'member stopped');
  }

  // ---- write path ------------------------------------------------------------------------------

  private propose(request: InternalRequest): Promise<ApplyResponse> {
    if (this.stopped) return Promise.reject(new KeyraftError('Stopped'));
    if (this.inflight + this.batch.length >= Limits.pendingProposalsMax) {
      return Promise.reject(new KeyraftError('TooManyRequests'));
    }
    const index = ++this.lastIndex;
    request.id = index;
    const entry: WalEntry = { term: this.term, index, type: 0, data: encode(internalRequestType, request) };
    return new Promise<ApplyResponse>((resolve, reject) => {
      this.batch.push({ entry, request, resolve, reject });
      this.metrics.pending.inc();
      if (!this.batchScheduled) {
        this.batchScheduled = true;
        // setImmediate runs after this turn's I/O callbacks: every request parsed in this turn
        // joins one WAL append.
        setImmediate(() => this.flushBatch());
      }
    });
  }

  private flushBatch(): void {
    this.batchScheduled = false;
    const proposals = this.batch;
    if (proposals.length === 0) return;
    this.batch = [];
    this.inflight += proposals.length;
    const entries = proposals.map((p) => p.entry);
    this.wal.append(entries).then(
      () => this.applyDurable(proposals),
      (err: Error) => this.fail(new Error(`WAL append failed: ${err.message}`), proposals),
    );
  }

  /** The WAL made `proposals` durable: commit and apply them in order, answering each waiter. */
  private applyDurable(proposals: Proposal[]): void {
    const first = proposals[0]!.entry.index;
    // Ordering: the WAL resolves appends in call order, so batches arrive in index order.
    assert(first === this.durableIndex + 1, () => `durable batch starts at ${first}, expected ${this.durableIndex + 1}`);
    this.durableIndex = proposals[proposals.length - 1]!.entry.index;
    for (const proposal of proposals) {
      this.inflight--;
      this.metrics.pending.dec();
      this.applyEntry(proposal.entry, proposal);
    }
    // One backend batch for everything applied in this batch, with the applied index inside it.
    this.applier.commit(this.appliedIndex);
    this.appliedSinceRelease += proposals.length;
    if (this.appliedSinceRelease >= WAL_RELEASE_EVERY_ENTRIES) this.releaseWal();
  }

  /**
   * Applies one durable entry. Expected failures (a put with an unknown lease ...) consume the
   * index and answer the client with the error, as etcd does; anything else is a bug.
   */
  private applyEntry(entry: WalEntry, proposal: Proposal | undefined): void {
    assert(entry.index === this.appliedIndex + 1, () => `applying index ${entry.index} after ${this.appliedIndex}`);
    this.appliedIndex = entry.index;
    this.metrics.committed.inc();
    this.metrics.applied.inc();
    if (entry.data.length === 0) return; // leader no-op
    const request = proposal?.request ?? decode<InternalRequest>(internalRequestType, entry.data);
    let response: ApplyResponse;
    try {
      response = this.applier.apply(request);
    } catch (err) {
      if (!isKeyraftError(err)) {
        this.fail(err as Error, []);
        throw err;
      }
      this.metrics.failed.inc();
      proposal?.reject(err);
      return;
    }
    if (proposal) {
      response.header = this.header();
      proposal.resolve(response);
    }
  }

  /**
   * Once the backend is synced, WAL segments holding only applied entries are no longer needed
   * for recovery: release them so restarts replay little. Runs in the background, one at a time.
   *
   * The release lags one round behind the flush: it frees only what was applied before the
   * *previous* flush. LevelDB switches memtable logs without syncing the old one, so a synced
   * write covers the newest log only until the old memtable reaches a (synced) table file; a
   * whole round of writes in between makes that all but certain before the WAL copy is gone.
   */
  private releaseWal(): void {
    if (this.releasing) return;
    this.releasing = true;
    this.appliedSinceRelease = 0;
    const releasable = this.flushedIndex;
    const flushing = this.appliedIndex;
    this.applier.flush()
      .then(async () => {
        if (releasable > 0) await this.wal.releaseTo(releasable);
        this.flushedIndex = flushing;
      })
      .catch((err: Error) => this.logger.error({ err, releasable }, 'WAL release failed; segments are kept'))
      .finally(() => { this.releasing = false; });
  }

  private fail(err: Error, proposals: Proposal[]): void {
    if (this.stopped && proposals.length === 0) return;
    this.logger.fatal({ err }, 'member failed');
    this.stopped = true;
    for (const p of [...proposals, ...this.batch]) p.reject(new KeyraftError('Stopped'));
    this.batch = [];
    this.onFatal(err);
  }

  private checkRunning(): void {
    if (this.stopped) throw new KeyraftError('Stopped');
  }

  private header(): ResponseHeader {
    return { cluster_id: this.clusterId, member_id: this.memberId, revision: this.applier.currentRevision, raft_term: this.term };
  }
}

/** Release WAL segments after this many applied entries (a sync of the backend comes first). */
const WAL_RELEASE_EVERY_ENTRIES = 50_000;

class MemberMetrics {
  readonly committed: Counter;
  readonly applied: Counter;
  readonly failed: Counter;
  readonly pending: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.committed = new Counter({ name: 'etcd_server_proposals_committed_total', help: 'The total number of consensus proposals committed.', registers });
    this.applied = new Counter({ name: 'etcd_server_proposals_applied_total', help: 'The total number of consensus proposals applied.', registers });
    this.failed = new Counter({ name: 'etcd_server_proposals_failed_total', help: 'The total number of failed proposals seen.', registers });
    this.pending = new Gauge({ name: 'etcd_server_proposals_pending', help: 'The current number of pending proposals to commit.', registers });
    new Gauge({ name: 'etcd_server_has_leader', help: 'Whether or not a leader exists. 1 is existence, 0 is not.', registers }).set(1);
    new Gauge({ name: 'etcd_server_is_leader', help: 'Whether or not this member is a leader. 1 if is, 0 otherwise.', registers }).set(1);
  }
}

function urlText(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

async function directorySize(dir: string): Promise<number> {
  let total = 0;
  try {
    for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return total;
}
