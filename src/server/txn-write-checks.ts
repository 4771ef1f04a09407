/**
 * What a txn may write, checked in time that grows as n log n with its ops: the API layer's
 * duplicate-key check before a txn is proposed (etcd's checkIntervals, v3rpc/key.go), the
 * applier's re-check of the path a txn takes, and etcd's read-only test. One home for all three:
 * the API imports them from here (server must not import api).
 *
 * Why not etcd's shape (sets and interval trees built per nesting level and merged upwards):
 * that copies each op once per level above it, and etcd's op budget is per level (maxTxnOps -
 * opc passed down), so a 1.5 MiB txn carries ~70k ops some 100 levels deep. A linear scan per
 * put made a 20,000-op txn hold the event loop for 33 s.
 */
import { KeyCoverage } from '../mvcc/key-coverage.js';
import { KeyraftError } from '../platform/errors.js';
import type { DeleteRangeRequest, RequestOp, TxnRequest } from '../proto/etcd-types.js';

/**
 * etcd's isTxnReadonly: every op of both branches is a range. A nested txn counts as a write even
 * if it only reads (etcd does not look inside), so such a txn is proposed, and its proposal size
 * is checked, as in etcd.
 */
export function isTxnReadOnly(t: TxnRequest): boolean {
  for (const ops of [t.success, t.failure]) {
    if (ops === undefined) continue;
    for (const op of ops) if (!op.request_range) return false;
  }
  return true;
}

function latin1(bytes: Uint8Array): string {
  return Buffer.isBuffer(bytes) ? bytes.toString('latin1') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/**
 * etcd's checkIntervals over one branch of a txn (its success ops, or its failure ops): throws
 * DuplicateKey when a put touches a key another put touches, or a key inside a deleted range, as
 * etcd decides it. Deletes may overlap each other.
 *
 * etcd's rules, level by level: a level's deletes are collected first; then each nested txn in op
 * order, whose then- and else-puts (alternatives: a key may be put in both) must not hit a put of
 * the level so far, a delete of the level, or a delete of an EARLIER nested txn; then the level's
 * own puts, against every put and delete below and beside them. The two branches of a nested txn
 * never see each other.
 *
 * Examples: [put a, txn{then:[put a]}] -> DuplicateKey; [txn{then:[put a], else:[put a]}] -> fine;
 * [del [a,c), put b] -> DuplicateKey; [txn{then:[put m]}, txn{then:[del [a,z)]}] -> fine (the
 * delete's txn comes later); [txn{then:[del [a,z)]}, put m] -> DuplicateKey. As in etcd, a
 * range_end of "\0" is compared as the byte string "\0" here, so such a delete overlaps nothing.
 *
 * How: one walk in etcd's order over a single set of live puts and live delete ranges (a
 * KeyCoverage over every put key). Entering the second branch of a nested txn takes the first
 * branch's writes out of the live sets, and puts them back after it. The lighter branch goes
 * first, so an op is taken out and put back only when its branch is the lighter one: at most
 * log2(ops) times.
 */
export function checkBranchWrites(ops: RequestOp[]): void {
  // The common txns (compare-and-swap: one put or one delete, no nesting) need no walk at all.
  if (ops.length <= 1 && ops[0]?.request_txn === undefined) return;
  const putKeys: string[] = [];
  const weights = new Map<RequestOp[], number>();
  const writes = collect(ops, putKeys, weights);
  // Without two writes, nothing can collide.
  if (putKeys.length === 0 || writes < 2) return;
  new BranchWalk(new KeyCoverage(putKeys), weights).visit(ops);
}

/** Gathers every put key below `ops` and each op list's weight (its puts and deletes, nested included). */
function collect(ops: RequestOp[], putKeys: string[], weights: Map<RequestOp[], number>): number {
  let weight = 0;
  for (const op of ops) {
    if (op.request_put?.key) {
      putKeys.push(latin1(op.request_put.key));
      weight++;
    } else if (op.request_delete_range?.key) {
      weight++;
    } else if (op.request_txn) {
      weight += collect(op.request_txn.success ?? [], putKeys, weights);
      weight += collect(op.request_txn.failure ?? [], putKeys, weights);
    }
  }
  weights.set(ops, weight);
  return weight;
}

/** A delete as etcd's check sees it: a point (end null) or [start, end) compared as bytes. */
interface DeleteRange {
  start: string;
  end: string | null;
}

function deleteRangeOf(d: DeleteRangeRequest): DeleteRange {
  return { start: latin1(d.key!), end: d.range_end && d.range_end.length > 0 ? latin1(d.range_end) : null };
}

class BranchWalk {
  /** Live puts: key -> how many live puts touch it. */
  private readonly puts = new Map<string, number>();
  /** Live puts and deletes in the order they went live, so a branch's can be taken off the end. */
  private readonly livePuts: string[] = [];
  private readonly liveDeletes: DeleteRange[] = [];

  constructor(private readonly deletes: KeyCoverage, private readonly weights: Map<RequestOp[], number>) {}

  visit(ops: RequestOp[]): void {
    for (const op of ops) {
      const d = op.request_delete_range;
      if (d?.key) this.addDelete(deleteRangeOf(d));
    }
    for (const op of ops) {
      const t = op.request_txn;
      if (!t) continue;
      const then = t.success ?? [];
      const otherwise = t.failure ?? [];
      const thenFirst = (this.weights.get(then) ?? 0) <= (this.weights.get(otherwise) ?? 0);
      const putMark = this.livePuts.length;
      const deleteMark = this.liveDeletes.length;
      this.visit(thenFirst ? then : otherwise);
      const hiddenPuts = this.livePuts.splice(putMark);
      const hiddenDeletes = this.liveDeletes.splice(deleteMark);
      for (const key of hiddenPuts) this.puts.set(key, this.puts.get(key)! - 1);
      for (const r of hiddenDeletes) this.deletes.add(r.start, r.end, -1);
      this.visit(thenFirst ? otherwise : then);
      for (const key of hiddenPuts) this.addPut(key);
      for (const r of hiddenDeletes) this.addDelete(r);
    }
    for (const op of ops) {
      const p = op.request_put;
      if (!p?.key) continue;
      const key = latin1(p.key);
      if ((this.puts.get(key) ?? 0) > 0 || this.deletes.covers(key)) throw new KeyraftError('DuplicateKey');
      this.addPut(key);
    }
  }

  private addPut(key: string): void {
    this.puts.set(key, (this.puts.get(key) ?? 0) + 1);
    this.livePuts.push(key);
  }

  private addDelete(r: DeleteRange): void {
    this.deletes.add(r.start, r.end, 1);
    this.liveDeletes.push(r);
  }
}

/**
 * The applier's check on the path a txn takes (`path`: the outcome of each txn's compares in
 * depth-first order, from compareToPath): the store takes one write per key per revision, so no
 * two puts on the path may touch one key and no put may touch a key a delete on the path removes,
 * in either order. Here a range_end of "\0" means every key from `key` on, as the store reads it.
 * The API layer refuses such txns first (checkBranchWrites); this catches an entry that reached
 * the log by another way with etcd's DuplicateKey instead of the store's assertion.
 */
export function checkPathWrites(t: TxnRequest, path: boolean[]): void {
  const puts: string[] = [];
  const deletes: DeleteRangeRequest[] = [];
  collectPath(t, path, { at: 0 }, puts, deletes);
  if (puts.length === 0 || puts.length + deletes.length < 2) return;
  const seen = new Set<string>();
  for (const key of puts) {
    if (seen.has(key)) throw new KeyraftError('DuplicateKey');
    seen.add(key);
  }
  if (deletes.length === 0) return;
  const coverage = new KeyCoverage(puts);
  for (const d of deletes) {
    const end = d.range_end;
    const to = end === undefined || end.length === 0 ? null : end.length === 1 && end[0] === 0 ? undefined : latin1(end);
    coverage.add(latin1(d.key ?? Buffer.alloc(0)), to, 1);
  }
  for (const key of puts) if (coverage.covers(key)) throw new KeyraftError('DuplicateKey');
}

function collectPath(t: TxnRequest, path: boolean[], cursor: { at: number }, puts: string[], deletes: DeleteRangeRequest[]): void {
  const ops = path[cursor.at++] ? t.success : t.failure;
  if (ops === undefined) return;
  for (const op of ops) {
    if (op.request_txn) collectPath(op.request_txn, path, cursor, puts, deletes);
    else if (op.request_put) puts.push(latin1(op.request_put.key ?? Buffer.alloc(0)));
    else if (op.request_delete_range) deletes.push(op.request_delete_range);
  }
}
