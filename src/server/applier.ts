import type { RangeResult, ReadView, TxnWrite } from '../mvcc/kv.js';
import type { HistoryImageOptions } from '../mvcc/history-image.js';
import { KvStore } from '../mvcc/kv-store.js';
import { Lessor, type LessorOptions } from '../lease/lessor.js';
import { assert } from '../platform/assert.js';
import { KeyraftError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import {
  SortOrder, SortTarget,
  type CompactionRequest, type CompactionResponse, type DeleteRangeRequest, type DeleteRangeResponse,
  type InternalRequest, type KeyValue, type LeaseCheckpointResponse, type LeaseGrantRequest, type LeaseGrantResponse,
  type LeaseRevokeRequest, type LeaseRevokeResponse, type PutRequest, type PutResponse, type RangeRequest,
  type RangeResponse, type RequestOp, type ResponseHeader, type ResponseOp, type TxnRequest, type TxnResponse,
} from '../proto/etcd-types.js';
import { Backend } from '../storage/backend.js';
import { applyCompares } from './txn-compare.js';
import { checkPathWrites, isTxnReadOnly } from './txn-write-checks.js';

/**
 * The applier: turns committed InternalRequests into MVCC reads and writes with etcd 3.4's exact
 * semantics (etcdserver/apply.go, applierV3backend). Synchronous; the member calls it from the
 * apply loop, one entry at a time, and adds the response header (cluster, member, revision, term).
 *
 * A failed request changes nothing: every check that can fail (ignore_value on a missing key, an
 * unknown lease, a txn range at a compacted revision) runs before the first write, as etcd's
 * checkRequests does. Errors are KeyraftError; the entry still consumes its index.
 *
 * Txn, in etcd's order:
 *   1. all compares, the nested txns' too, are evaluated against the state BEFORE the txn, which
 *      fixes the path (success/failure at each level);
 *   2. the ops on that path are checked (puts: key exists for ignore_value/lease, lease exists;
 *      then ranges: revision neither future nor compacted, against the pre-txn revision);
 *   3. the ops run in order in one write transaction: reads see earlier writes, and everything
 *      written takes one revision (none if nothing changed).
 * Inner responses carry a header holding only the revision, nested txns an empty header, as etcd.
 *
 * Ranges at an old revision: the store keeps old values on disk only (mvcc/kv-store.ts). Such a
 * range resolves its index entries synchronously, here, in order with the writes around it; the
 * values come after, asynchronously: range() then returns a Promise, and apply() leaves the
 * response's ranges unfinished until resolveDeferred(), which the caller calls in the same turn
 * (it pins the revisions against compaction) and awaits before answering.
 */

/** A range whose values are being read from the backend; its response is finished afterwards. */
interface DeferredRange {
  readonly result: RangeResult;
  readonly request: RangeRequest;
  readonly response: RangeResponse;
}

export type ApplyResponse = PutResponse | DeleteRangeResponse | TxnResponse | CompactionResponse
  | LeaseGrantResponse | LeaseRevokeResponse | LeaseCheckpointResponse;

export interface ApplierOptions {
  logger: Logger;
  /** --history-cache-bytes (mvcc/history-values.ts); Limits.historyCacheBytes when absent. */
  historyCacheBytes?: number;
  /** The lessor's options (minimum TTL, clock, metrics); defaults to etcd's 2 s minimum. */
  lessor?: Partial<LessorOptions>;
  /** When the mvcc history image is written (mvcc/history-image.ts); Limits' values by default. */
  historyImage?: Partial<HistoryImageOptions>;
}

/** etcd's minimum lease TTL with its default 1 s election timeout: ceil(1.5 x 1 s). */
const DEFAULT_MIN_TTL_SECONDS = 2;

const EMPTY = Buffer.alloc(0);

export class Applier {
  readonly store: KvStore;
  /** Shared with the layers that store their state next to mvcc (lease, auth): they stage into
   * their bucket, and the next commit() writes it in the same batch as the applied index. */
  readonly backend: Backend;
  /** The leases (lessor.ts); lease entries, lease checks and key attachment go through it. */
  readonly lessor: Lessor;
  /** Ranges of the last apply() or range() waiting for old values (see the header). */
  private deferred: DeferredRange[] = [];

  constructor(store: KvStore, backend: Backend, lessor: Lessor) {
    this.store = store;
    this.backend = backend;
    this.lessor = lessor;
  }

  /** Opens (or creates) the backend at `path` and rebuilds the store and the leases from it. */
  static async open(path: string, options: ApplierOptions): Promise<Applier> {
    const backend = await Backend.open(path, { logger: options.logger });
    try {
      const store = await KvStore.open(backend, { logger: options.logger, historyCacheBytes: options.historyCacheBytes, historyImage: options.historyImage });
      const lessor = await Lessor.load(backend, () => allLiveKvs(store), { minTtlSeconds: DEFAULT_MIN_TTL_SECONDS, ...options.lessor });
      return new Applier(store, backend, lessor);
    } catch (err) {
      await backend.close();
      throw err;
    }
  }

  get currentRevision(): number {
    return this.store.currentRevision;
  }

  get compactedRevision(): number {
    return this.store.compactedRevision;
  }

  /** The applied index the backend's state covers (as of the last commit). */
  get appliedIndex(): number {
    return this.store.appliedIndex;
  }

  /** A Range; a Promise only when it reads old values from the backend (the current-revision path stays synchronous). */
  range(request: RangeRequest): RangeResponse | Promise<RangeResponse> {
    this.deferred.length = 0;
    const response = rangeIn(this.store.read(), request, this.deferred);
    const pending = this.resolveDeferred();
    return pending === null ? response : pending.then(() => response);
  }

  /**
   * Reads the old values the last apply() left unread and finishes those ranges' responses, or
   * null when there are none. Call it right after apply(), in the same turn: that pins the
   * revisions read against compaction.
   */
  resolveDeferred(): Promise<void> | null {
    if (this.deferred.length === 0) return null;
    const deferred = this.deferred;
    this.deferred = [];
    const reads: Promise<void>[] = new Array(deferred.length);
    for (let i = 0; i < deferred.length; i++) {
      const d = deferred[i]!;
      // Every unread kv comes from a read at an old revision: the request's.
      reads[i] = this.store.readValues(d.result.kvs, d.request.revision ?? 0).then(() => {
        d.result.unread = 0;
        finishRange(d.result, d.request, d.response);
      });
    }
    return Promise.all(reads).then(() => undefined);
  }

  apply(request: InternalRequest): ApplyResponse {
    // Ranges deferred by a failed apply are dropped with it.
    this.deferred.length = 0;
    if (request.put) return this.applyPut(request.put);
    if (request.delete_range) return this.applyDeleteRange(request.delete_range);
    if (request.txn) return this.applyTxn(request.txn);
    if (request.compaction) return this.applyCompaction(request.compaction);
    if (request.lease_grant) return this.applyLeaseGrant(request.lease_grant);
    if (request.lease_revoke) return this.applyLeaseRevoke(request.lease_revoke);
    if (request.lease_checkpoint) {
      this.lessor.checkpoint(request.lease_checkpoint.checkpoints ?? []);
      return {};
    }
    throw new KeyraftError('InvalidArgument', 'etcdserver: empty internal request');
  }

  /** One backend batch with everything applied since the last commit and this applied index. */
  commit(appliedIndex: number): void {
    this.store.commit(appliedIndex);
  }

  /** Resolves once everything committed (and any running compaction) is durable on disk. */
  flush(): Promise<void> {
    return this.store.flush();
  }

  async close(): Promise<void> {
    await this.store.close();
    await this.backend.close();
  }

  // ---- put / delete ----------------------------------------------------------------------------

  private applyPut(p: PutRequest): PutResponse {
    checkPutFlags(p);
    const lease = p.lease ?? 0n;
    if (lease !== 0n && !this.lessor.exists(lease)) throw new KeyraftError('LeaseNotFound');
    const txn = this.store.write();
    try {
      return putIn(txn, p);
    } finally {
      this.endWrite(txn);
    }
  }

  private applyDeleteRange(d: DeleteRangeRequest): DeleteRangeResponse {
    const txn = this.store.write();
    try {
      return deleteIn(txn, d);
    } finally {
      this.endWrite(txn);
    }
  }

  /** Ends a write transaction and moves the keys it wrote between leases. */
  private endWrite(txn: TxnWrite): void {
    const changes = txn.changes;
    txn.end();
    this.lessor.attachChanges(changes);
  }

  // ---- leases ----------------------------------------------------------------------------------

  /** etcd's LeaseGrant apply: the proposer picked the id (ID 0 is replaced before proposing). */
  private applyLeaseGrant(g: LeaseGrantRequest): LeaseGrantResponse {
    const lease = this.lessor.grant(g.ID ?? 0n, g.TTL ?? 0);
    return { ID: lease.id, TTL: lease.ttlSeconds, error: '' };
  }

  /**
   * etcd's LeaseRevoke apply: every attached key is deleted in one write transaction (one
   * revision, so watchers see one DELETE per key at that revision), then the lease is forgotten;
   * both land in the same backend batch.
   */
  private applyLeaseRevoke(r: LeaseRevokeRequest): LeaseRevokeResponse {
    const id = r.ID ?? 0n;
    const keys = this.lessor.keysOf(id);
    if (keys.length > 0) {
      const txn = this.store.write();
      try {
        for (const key of keys) txn.deleteRange(key, undefined);
      } finally {
        this.endWrite(txn);
      }
    }
    this.lessor.removeLease(id);
    return {};
  }

  private applyCompaction(c: CompactionRequest): CompactionResponse {
    this.store.compact(c.revision ?? 0);
    return {};
  }

  // ---- txn -------------------------------------------------------------------------------------

  private applyTxn(t: TxnRequest): TxnResponse {
    checkTxnFlags(t);
    const view = this.store.read();
    const path: boolean[] = [];
    compareToPath(view, t, path);
    const cursor = { at: 0 };
    if (!isTxnReadOnly(t)) {
      checkPathWrites(t, path);
      this.checkPuts(view, t, path, cursor);
    }
    cursor.at = 0;
    checkRanges(view, t, path, cursor);
    const txn = this.store.write();
    try {
      cursor.at = 0;
      return txnIn(txn, t, path, cursor, this.deferred);
    } finally {
      this.endWrite(txn);
    }
  }

  /** etcd's checkPut over the ops on the path: ignore_value/ignore_lease need the key; leases must exist. */
  private checkPuts(view: ReadView, t: TxnRequest, path: boolean[], cursor: { at: number }): void {
    const ops = path[cursor.at++] ? t.success : t.failure;
    if (ops === undefined) return;
    for (const op of ops) {
      if (op.request_txn) {
        this.checkPuts(view, op.request_txn, path, cursor);
        continue;
      }
      const p = op.request_put;
      if (!p) continue;
      if ((p.ignore_value || p.ignore_lease) && view.range(p.key ?? EMPTY, undefined).count === 0) {
        throw new KeyraftError('KeyNotFound');
      }
      const lease = p.lease ?? 0n;
      if (lease !== 0n && !this.lessor.exists(lease)) throw new KeyraftError('LeaseNotFound');
    }
  }
}

/** Every live key at the current revision (start-up only: attaching keys to their leases). */
function allLiveKvs(store: KvStore): KeyValue[] {
  return store.read().range(Buffer.from([0]), Buffer.from([0])).kvs;
}

// ---- range ---------------------------------------------------------------------------------------

/**
 * Range with every option, as etcd 3.4's applierV3backend.Range. A range that needs old values
 * from the backend returns its response unfinished (kvs empty, count set) and goes on `deferred`:
 * finishRange completes it once the values are in.
 */
export function rangeIn(view: ReadView, r: RangeRequest, deferred: DeferredRange[]): RangeResponse {
  const fetchLimit = rangeFetchLimit(r);
  const rr = view.range(r.key ?? EMPTY, r.range_end, { limit: fetchLimit, revision: r.revision ?? 0, countOnly: r.count_only ?? false });
  // kvs: set by finishRange (until then, of a deferred range, the unread ones: never sent).
  const response: RangeResponse = { kvs: rr.kvs, more: false, count: rr.count };
  // keys_only needs no value, unless it sorts by value.
  if (rr.unread > 0 && (!r.keys_only || r.sort_target === SortTarget.VALUE)) {
    deferred.push({ result: rr, request: r, response });
    return response;
  }
  finishRange(rr, r, response);
  return response;
}

/** Sorting and filtering need every kv; otherwise fetch one past the limit to learn `more`. */
function rangeFetchLimit(r: RangeRequest): number {
  const limit = r.limit ?? 0;
  const filtered = (r.min_mod_revision ?? 0) !== 0 || (r.max_mod_revision ?? 0) !== 0 || (r.min_create_revision ?? 0) !== 0 || (r.max_create_revision ?? 0) !== 0;
  return (r.sort_order ?? SortOrder.NONE) !== SortOrder.NONE || filtered || limit <= 0 ? 0 : limit + 1;
}

/** Filters, sorts and cuts a range's kvs as etcd does, into `response` (kvs, more). */
function finishRange(rr: RangeResult, r: RangeRequest, response: RangeResponse): void {
  const limit = r.limit ?? 0;
  let sortOrder = r.sort_order ?? SortOrder.NONE;
  const sortTarget = r.sort_target ?? SortTarget.KEY;
  const minMod = r.min_mod_revision ?? 0;
  const maxMod = r.max_mod_revision ?? 0;
  const minCreate = r.min_create_revision ?? 0;
  const maxCreate = r.max_create_revision ?? 0;
  const filtered = minMod !== 0 || maxMod !== 0 || minCreate !== 0 || maxCreate !== 0;
  let kvs = rr.kvs;
  if (filtered) {
    // etcd prunes after counting: `count` stays the count of the whole range.
    kvs = kvs.filter((kv) =>
      (maxMod === 0 || kv.mod_revision <= maxMod) &&
      (minMod === 0 || kv.mod_revision >= minMod) &&
      (maxCreate === 0 || kv.create_revision <= maxCreate) &&
      (minCreate === 0 || kv.create_revision >= minCreate));
  }
  // kvs come in ascending key order; NONE keeps it, except that a target other than KEY with
  // NONE sorts ascending (etcd: "sort ASCEND by default only when target is not 'KEY'").
  if (sortTarget !== SortTarget.KEY && sortOrder === SortOrder.NONE) sortOrder = SortOrder.ASCEND;
  // Unknown orders and targets leave key order: the API layer refuses them with etcd 3.5's
  // "invalid sort option" (checkRangeRequest), so only a log entry from elsewhere gets here.
  if (sortOrder === SortOrder.DESCEND && sortTarget === SortTarget.KEY) {
    kvs.reverse();
  } else if ((sortOrder === SortOrder.ASCEND || sortOrder === SortOrder.DESCEND) && sortTarget >= SortTarget.VERSION && sortTarget <= SortTarget.VALUE) {
    // Array.prototype.sort is stable: ties keep ascending key order, in both directions.
    const by = sortBy(sortTarget);
    if (sortOrder === SortOrder.DESCEND) kvs.sort((a, b) => by(b, a));
    else kvs.sort(by);
  }
  let more = false;
  if (limit > 0 && kvs.length > limit) {
    kvs.length = limit;
    more = true;
  }
  if (r.keys_only) kvs = kvs.map(withoutValue);
  response.kvs = kvs;
  response.more = more;
}

function sortBy(target: SortTarget): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case SortTarget.VERSION: return (a, b) => a.version - b.version;
    case SortTarget.CREATE: return (a, b) => a.create_revision - b.create_revision;
    case SortTarget.MOD: return (a, b) => a.mod_revision - b.mod_revision;
    case SortTarget.VALUE: return (a, b) => Buffer.compare(a.value, b.value);
    default: return (a, b) => Buffer.compare(a.key, b.key);
  }
}

function withoutValue(kv: KeyValue): KeyValue {
  return { key: kv.key, create_revision: kv.create_revision, mod_revision: kv.mod_revision, version: kv.version, value: EMPTY, lease: kv.lease };
}

// ---- writes --------------------------------------------------------------------------------------

/** The checks etcd's API layer makes on a put's flags (v3rpc checkPutRequest). */
function checkPutFlags(p: PutRequest): void {
  if (p.ignore_value && p.value !== undefined && p.value.length !== 0) throw new KeyraftError('ValueProvided');
  if (p.ignore_lease && p.lease !== undefined && p.lease !== 0n) throw new KeyraftError('LeaseProvided');
}

function checkTxnFlags(t: TxnRequest): void {
  for (const ops of [t.success, t.failure]) {
    if (ops === undefined) continue;
    for (const op of ops) {
      if (op.request_put) checkPutFlags(op.request_put);
      else if (op.request_txn) checkTxnFlags(op.request_txn);
    }
  }
}

/** Put inside an open write transaction (etcd's applierV3backend.Put with a txn). Lease already checked. */
function putIn(txn: TxnWrite, p: PutRequest): PutResponse {
  const key = p.key ?? EMPTY;
  let value = p.value ?? EMPTY;
  let lease = p.lease ?? 0n;
  let prev: KeyValue | undefined;
  if (p.ignore_value || p.ignore_lease || p.prev_kv) {
    prev = txn.range(key, undefined).kvs[0];
    if ((p.ignore_value || p.ignore_lease) && prev === undefined) throw new KeyraftError('KeyNotFound');
    if (p.ignore_value) value = prev!.value;
    if (p.ignore_lease) lease = prev!.lease;
  }
  txn.put(key, value, lease);
  return p.prev_kv && prev !== undefined ? { prev_kv: prev } : {};
}

function deleteIn(txn: TxnWrite, d: DeleteRangeRequest): DeleteRangeResponse {
  const key = d.key ?? EMPTY;
  const prevKvs = d.prev_kv ? txn.range(key, d.range_end).kvs : [];
  const deleted = txn.deleteRange(key, d.range_end);
  return { deleted, prev_kvs: prevKvs };
}

// ---- txn -----------------------------------------------------------------------------------------

/**
 * Appends the outcome of t's compares, then of each nested txn on the taken branch (depth-first,
 * in op order), to `path`, all against the pre-txn view (etcd's compareToPath).
 */
function compareToPath(view: ReadView, t: TxnRequest, path: boolean[]): void {
  const succeeded = applyCompares(view, t.compare);
  path.push(succeeded);
  const ops = succeeded ? t.success : t.failure;
  if (ops === undefined) return;
  for (const op of ops) if (op.request_txn) compareToPath(view, op.request_txn, path);
}

/** etcd's checkRange: a range at a revision must be readable in the pre-txn view. */
function checkRanges(view: ReadView, t: TxnRequest, path: boolean[], cursor: { at: number }): void {
  const ops = path[cursor.at++] ? t.success : t.failure;
  if (ops === undefined) return;
  for (const op of ops) {
    if (op.request_txn) {
      checkRanges(view, op.request_txn, path, cursor);
      continue;
    }
    const rev = op.request_range?.revision ?? 0;
    if (rev === 0) continue;
    if (rev > view.revision) throw new KeyraftError('FutureRevision');
    if (rev < view.compactedRevision) throw new KeyraftError('Compacted');
  }
}

function txnIn(txn: TxnWrite, t: TxnRequest, path: boolean[], cursor: { at: number }, deferred: DeferredRange[]): TxnResponse {
  const succeeded = path[cursor.at++];
  assert(succeeded !== undefined, 'txn path shorter than the txn');
  const ops: RequestOp[] = (succeeded ? t.success : t.failure) ?? [];
  const responses: ResponseOp[] = new Array(ops.length);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.request_range) {
      const resp = rangeIn(txn, op.request_range, deferred);
      resp.header = revisionHeader(txn.revision);
      responses[i] = { response_range: resp };
    } else if (op.request_put) {
      const resp = putIn(txn, op.request_put);
      resp.header = revisionHeader(txn.startRevision + 1);
      responses[i] = { response_put: resp };
    } else if (op.request_delete_range) {
      const resp = deleteIn(txn, op.request_delete_range);
      // etcd: the write's revision if this or an earlier op changed something, else the current one.
      resp.header = revisionHeader(txn.revision);
      responses[i] = { response_delete_range: resp };
    } else if (op.request_txn) {
      const resp = txnIn(txn, op.request_txn, path, cursor, deferred);
      resp.header = revisionHeader(0);
      responses[i] = { response_txn: resp };
    } else {
      // An op with no request set: etcd answers it with an empty ResponseOp.
      responses[i] = {};
    }
  }
  return { succeeded, responses };
}

function revisionHeader(revision: number): ResponseHeader {
  return { cluster_id: 0n, member_id: 0n, revision, raft_term: 0 };
}
