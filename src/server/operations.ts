import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { KeyraftError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import {
  AlarmAction, AlarmType, type AlarmRequest, type AlarmResponse, type HashKVResponse, type InternalRequest,
} from '../proto/etcd-types.js';
import type { HashKVResult } from '../mvcc/hash.js';
import type { Applier } from './applier.js';
import { Alarms, alarmText } from './alarms.js';
import { AutoCompactor, type AutoCompactionMode } from './auto-compactor.js';
import { CorruptCheck } from './corrupt-check.js';
import { BackendQuota, costPut, costTxn, QUOTA_MEASURE_INTERVAL_MS } from './quota.js';
import { isTxnReadOnly } from './txn-write-checks.js';

/**
 * The member's operations side (issue 12): alarms and the space quota, defrag, Hash/HashKV and
 * their metrics, kept out of member.ts, which calls in at four points: the API-time quota check
 * (checkQuota), the apply of an AlarmRequest (applyAlarm), the apply-time refusal of writes under
 * an alarm (refusal), and Status (statusFields).
 */

export interface OperationsHost {
  readonly memberId: bigint;
  /** The live applier (an image install replaces it). */
  applier(): Applier;
  /** Proposes an AlarmRequest through the log and resolves with its applied response. */
  proposeAlarm(request: AlarmRequest): Promise<AlarmResponse>;
  hasLeader(): boolean;
  isLeader(): boolean;
  /** Proposes a compaction (auto-compaction); resolves once applied. */
  compact(revision: number): Promise<void>;
  /** The other members with a published client URL (corrupt check). */
  peers(): Array<{ id: bigint; clientUrl: string }>;
  /** Every member, this one included (the initial corrupt check's majority). */
  memberCount(): number;
  peerHashKV(clientUrl: string, revision: number): Promise<HashKVResponse>;
}

export interface OperationsOptions {
  dbDir: string;
  quotaBackendBytes: number;
  autoCompactionMode: AutoCompactionMode;
  autoCompactionRetention: number;
  initialCorruptCheck: boolean;
  corruptCheckTimeMs: number;
  registry: Registry;
  logger: Logger;
}

export class Operations {
  alarms!: Alarms;
  readonly quota: BackendQuota;
  private readonly logger: Logger;
  private readonly metrics: OperationsMetrics;
  private measureTimer: NodeJS.Timeout | null = null;
  private measuring: Promise<void> | null = null;
  /**
   * An ACTIVATE this member proposed and is waiting for, per alarm type and member named (one
   * corrupt check may name several peers: each gets its own proposal).
   */
  private readonly raising = new Set<string>();
  /** Logged once per NOSPACE episode: the size came back under the quota. */
  private underQuotaLogged = false;
  private defragging: Promise<void> | null = null;
  readonly autoCompactor: AutoCompactor;
  readonly corruptCheck: CorruptCheck;
  private initialCheckTimer: NodeJS.Timeout | null = null;

  constructor(private readonly host: OperationsHost, private readonly options: OperationsOptions) {
    this.logger = options.logger.child({ component: 'operations' });
    this.quota = new BackendQuota(options.dbDir, options.quotaBackendBytes);
    this.metrics = new OperationsMetrics(options.registry, this.quota);
    this.autoCompactor = new AutoCompactor(options.autoCompactionMode, options.autoCompactionRetention, {
      isLeader: () => host.isLeader(),
      currentRevision: () => host.applier().currentRevision,
      compact: (revision) => host.compact(revision),
    }, this.logger.child({ component: 'compactor' }));
    this.corruptCheck = new CorruptCheck({
      memberId: host.memberId,
      isLeader: () => host.isLeader(),
      hashKV: (revision) => this.hashKV(revision),
      peers: () => host.peers(),
      memberCount: () => host.memberCount(),
      peerHashKV: (url, revision) => host.peerHashKV(url, revision),
      raiseCorrupt: (id) => this.raise(AlarmType.CORRUPT, id),
      count: (result) => this.countCheck(result),
    }, options.corruptCheckTimeMs, this.logger.child({ component: 'corrupt-check' }));
  }

  /** Loads the alarms and hooks the metrics into the backend; again after an image install. */
  async attach(): Promise<void> {
    const applier = this.host.applier();
    this.alarms = await Alarms.load(applier.backend);
    applier.backend.commitObserver = (seconds) => this.metrics.backendCommit.observe(seconds);
    applier.store.compaction.passObserver = (revision, ms) => {
      this.metrics.compactionDuration.observe(ms);
      this.logger.info({ revision, ms: Math.round(ms) }, 'finished scheduled compaction');
      this.measureSoon();
    };
    await this.measure();
    if (this.alarms.list().length > 0) this.logger.warn({ alarms: this.alarms.list().map(alarmText) }, 'alarms active at start-up');
  }

  start(): void {
    this.measureTimer = setInterval(() => this.measureSoon(), QUOTA_MEASURE_INTERVAL_MS);
    this.measureTimer.unref();
    this.autoCompactor.start();
    this.corruptCheck.start();
    if (this.options.initialCorruptCheck) this.scheduleInitialCheck(0);
  }

  /**
   * The initial corrupt check runs once a leader is known and some peer has published a client
   * URL; a fresh cluster's peers publish theirs moments after the election, so it retries a few
   * times while no peer could be asked.
   */
  private scheduleInitialCheck(attempt: number): void {
    const INITIAL_CHECK_ATTEMPTS = 20;
    const INITIAL_CHECK_RETRY_MS = 500;
    this.initialCheckTimer = setTimeout(() => {
      this.initialCheckTimer = null;
      if (!this.host.hasLeader() || (this.host.peers().length === 0 && attempt < INITIAL_CHECK_ATTEMPTS)) {
        if (attempt < INITIAL_CHECK_ATTEMPTS * 10) this.scheduleInitialCheck(attempt + 1);
        return;
      }
      this.corruptCheck.initial().catch((err: Error) => this.logger.warn({ err: err.message }, 'initial corrupt check could not run'));
    }, attempt === 0 ? 0 : INITIAL_CHECK_RETRY_MS);
    this.initialCheckTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.measureTimer) clearInterval(this.measureTimer);
    this.measureTimer = null;
    if (this.initialCheckTimer) clearTimeout(this.initialCheckTimer);
    this.autoCompactor.stop();
    this.corruptCheck.stop();
    await this.measuring;
    await this.defragging;
  }

  // ---- quota -----------------------------------------------------------------------------------

  /**
   * The API-time check of a write that grows the backend (etcd's quotaKVServer): past the quota
   * it raises NOSPACE (once) and throws "database space exceeded". For the lessor too: a lease
   * grant calls checkQuota(LEASE_GRANT_COST_BYTES) before it proposes (quota.ts).
   */
  checkQuota(costBytes: number): void {
    if (this.quota.available(costBytes)) return;
    this.raise(AlarmType.NOSPACE);
    throw new KeyraftError('NoSpace');
  }

  checkPut(request: InternalRequest): void {
    if (request.put) this.checkQuota(costPut(request.put));
    else if (request.txn) {
      const cost = costTxn(request.txn);
      if (cost > 0) this.checkQuota(cost);
    }
  }

  /** Raises an alarm of a member (this one by default) through the log, unless it is active or being raised. */
  raise(type: AlarmType, memberID: bigint = this.host.memberId): void {
    const raisingKey = `${type}:${memberID.toString(16)}`;
    if (this.raising.has(raisingKey) || this.alarms.list().some((m) => m.memberID === memberID && m.alarm === type)) return;
    this.raising.add(raisingKey);
    this.host.proposeAlarm({ action: AlarmAction.ACTIVATE, memberID, alarm: type })
      // Debug: a member without a leader (or a learner) fails here on every check until that changes.
      .catch((err: Error) => this.logger.debug({ err: err.message, alarm: type }, 'raising an alarm failed; retrying on the next check'))
      .finally(() => this.raising.delete(raisingKey));
  }

  private measureSoon(): void {
    if (this.measuring !== null) return;
    this.measuring = this.measure()
      .catch((err: Error) => this.logger.warn({ err: err.message }, 'measuring the backend size failed'))
      .finally(() => { this.measuring = null; });
  }

  private async measure(): Promise<void> {
    const backend = this.host.applier().backend;
    await this.quota.measure(() => backend.approximateSize());
    if (this.quota.sizeBytes >= this.quota.quotaBytes) {
      this.underQuotaLogged = false;
      // Past the quota without a write to notice it: raise it now (etcd waits for the next write).
      if (this.alarms !== undefined && !this.alarms.has(AlarmType.NOSPACE)) this.raise(AlarmType.NOSPACE);
    } else if (this.alarms?.has(AlarmType.NOSPACE) && !this.underQuotaLogged) {
      this.underQuotaLogged = true;
      this.logger.info({ sizeBytes: this.quota.sizeBytes, quotaBytes: this.quota.quotaBytes },
        'the backend is back under the space quota; `etcdctl alarm disarm` clears NOSPACE');
    }
  }

  // ---- alarms (apply side) ---------------------------------------------------------------------

  /** Applies an AlarmRequest entry (same on every member). */
  applyAlarm(request: AlarmRequest): AlarmResponse {
    const response = this.alarms.apply(request);
    for (const m of response.alarms) {
      if (request.action === AlarmAction.ACTIVATE) {
        this.logger.warn({ alarm: alarmText(m), sizeBytes: this.quota.sizeBytes, quotaBytes: this.quota.quotaBytes }, 'alarm raised');
      } else if (request.action === AlarmAction.DEACTIVATE) {
        this.logger.info({ alarm: alarmText(m) }, 'alarm disarmed');
      }
    }
    if (request.action === AlarmAction.ACTIVATE && request.alarm === AlarmType.NOSPACE) this.underQuotaLogged = false;
    return response;
  }

  /**
   * The apply-time refusal under an active alarm (etcd's applierV3Capped and applierV3Corrupt):
   * NOSPACE refuses puts, txns with puts and lease grants; CORRUPT refuses every write and compaction.
   */
  refusal(request: InternalRequest): KeyraftError | null {
    if (this.alarms.has(AlarmType.CORRUPT) && (request.put || request.delete_range || request.compaction || (request.txn && !isTxnReadOnly(request.txn)))) {
      return new KeyraftError('Corrupt');
    }
    if (this.alarms.has(AlarmType.NOSPACE) && (request.put || request.lease_grant || (request.txn && costTxn(request.txn) > 0))) {
      return new KeyraftError('NoSpace');
    }
    return null;
  }

  /** Whether writes that grow the backend are refused now (for the lessor's grant at apply time). */
  get spaceExceeded(): boolean {
    return this.alarms.has(AlarmType.NOSPACE);
  }

  /** Status's db_size, db_size_in_use and errors (etcd lists the active alarms there). */
  async statusFields(): Promise<{ dbSize: number; dbSizeInUse: number; errors: string[] }> {
    await this.measure();
    return { dbSize: this.quota.sizeBytes, dbSizeInUse: this.quota.inUseBytes, errors: this.alarms.list().map(alarmText) };
  }

  // ---- defrag and hashes -----------------------------------------------------------------------

  /**
   * Defragment (LevelDB's compactRange over everything, off the main thread; backend.ts). One at
   * a time: a second call while one runs waits for it. Logs the size before and after.
   */
  defragment(): Promise<void> {
    this.defragging ??= this.runDefrag().finally(() => { this.defragging = null; });
    return this.defragging;
  }

  /** Resolves when no defrag runs (an image install must not close the backend under one). */
  async idle(): Promise<void> {
    await this.defragging;
  }

  private async runDefrag(): Promise<void> {
    const backend = this.host.applier().backend;
    await this.measure();
    const before = this.quota.sizeBytes;
    const started = performance.now();
    this.logger.info({ sizeBytes: before }, 'defragmenting');
    await backend.defragment();
    const seconds = (performance.now() - started) / 1000;
    this.metrics.defragDuration.observe(seconds);
    await this.measure();
    this.logger.info({ sizeBeforeBytes: before, sizeAfterBytes: this.quota.sizeBytes, inUseBytes: this.quota.inUseBytes, ms: Math.round(seconds * 1000) },
      'finished defragmenting');
  }

  async hashKV(revision: number): Promise<HashKVResult> {
    const started = performance.now();
    const result = await this.host.applier().store.hashKV(revision);
    this.metrics.hashRev.observe((performance.now() - started) / 1000);
    return result;
  }

  async hash(): Promise<number> {
    const started = performance.now();
    const hash = await this.host.applier().store.hashBackend();
    this.metrics.hash.observe((performance.now() - started) / 1000);
    return hash;
  }

  /** Counts a corrupt check's outcome (corrupt-check.ts). */
  countCheck(result: 'ok' | 'mismatch' | 'incomplete'): void {
    this.metrics.corruptChecks.inc({ result });
  }
}

/** etcd's metric names and help texts where etcd has the metric. */
class OperationsMetrics {
  readonly backendCommit: Histogram;
  readonly compactionDuration: Histogram;
  readonly defragDuration: Histogram;
  readonly hashRev: Histogram;
  readonly hash: Histogram;
  readonly corruptChecks: Counter<'result'>;

  constructor(registry: Registry, quota: BackendQuota) {
    const registers = [registry];
    new Gauge({
      name: 'etcd_mvcc_db_total_size_in_bytes', help: 'Total size of the underlying database physically allocated in bytes.', registers,
      collect() { this.set(quota.sizeBytes); },
    });
    new Gauge({
      name: 'etcd_mvcc_db_total_size_in_use_in_bytes', help: 'Total size of the underlying database logically in use in bytes.', registers,
      collect() { this.set(quota.inUseBytes); },
    });
    new Gauge({
      name: 'etcd_server_quota_backend_bytes', help: 'Current backend storage quota size in bytes.', registers,
      collect() { this.set(quota.quotaBytes); },
    });
    this.backendCommit = new Histogram({
      name: 'etcd_disk_backend_commit_duration_seconds', help: 'The latency distributions of commit called by backend.', registers,
      buckets: exponential(0.001, 2, 14),
    });
    this.compactionDuration = new Histogram({
      name: 'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds', help: 'Bucketed histogram of db compaction total duration.', registers,
      buckets: exponential(100, 2, 14),
    });
    this.defragDuration = new Histogram({
      name: 'etcd_disk_backend_defrag_duration_seconds', help: 'The latency distribution of backend defragmentation.', registers,
      buckets: exponential(0.1, 2, 13),
    });
    this.hashRev = new Histogram({
      name: 'etcd_mvcc_hash_rev_duration_seconds', help: 'The latency distribution of storage hash by revision operation.', registers,
      buckets: exponential(0.01, 2, 15),
    });
    this.hash = new Histogram({
      name: 'etcd_mvcc_hash_duration_seconds', help: 'The latency distribution of storage hash operation.', registers,
      buckets: exponential(0.01, 2, 15),
    });
    this.corruptChecks = new Counter({
      name: 'keyraft_server_corrupt_checks_total', help: 'HashKV comparisons with the peers (corrupt check), by outcome.', registers,
      labelNames: ['result'],
    });
  }
}

function exponential(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}
