/**
 * Checks a request before it reaches the member, as etcd's v3rpc/key.go does (checkRangeRequest,
 * checkPutRequest, checkDeleteRequest, checkTxnRequest; checkIntervals is server/txn-write-checks.ts),
 * and the size limit etcd's server applies to a proposal (ErrRequestTooLarge). Each failure is a KeyraftError whose code the
 * error table maps to etcd's gRPC status and message.
 */
import { KeyraftError } from '../platform/errors.js';
import { varintSize } from '../proto/varint.js';
import { checkBranchWrites } from '../server/txn-write-checks.js';
import {
  SortOrder, SortTarget, type DeleteRangeRequest, type PutRequest, type RangeRequest, type RequestOp, type TxnRequest,
} from '../proto/etcd-types.js';

/**
 * etcd measures a write as the InternalRaftRequest it proposes: the client request wrapped in a
 * length-delimited field (1 tag byte + varint length) plus a RequestHeader{ID} of 13 bytes
 * (2-byte tag for field 100, 1-byte length, 1-byte tag and a 9-byte varint id). Measured against
 * etcd 3.4.23 with --max-request-bytes 4096: a PutRequest of 4080 bytes is accepted, 4081 is
 * "request is too large" (13 + 1 + 2 + 4080 = 4096).
 */
export const raftRequestHeaderBytes = 13;

/** Size etcd compares with --max-request-bytes for a write whose encoded request is `requestBytes`. */
export function proposalSizeBytes(requestBytes: number): number {
  return raftRequestHeaderBytes + 1 + varintSize(requestBytes) + requestBytes;
}

export function checkProposalSize(requestBytes: number, maxRequestBytes: number): void {
  if (proposalSizeBytes(requestBytes) > maxRequestBytes) throw new KeyraftError('RequestTooLarge');
}

function isEmpty(key: Uint8Array | undefined): boolean {
  return key === undefined || key.length === 0;
}

/**
 * An empty key, then a sort order or target outside its enum. The sort check is etcd 3.5's
 * (checkRangeRequest there): etcd 3.4.23 has none and its member panics on sort_order 99 (seen
 * with curl), so 3.5's answer is the one to give.
 */
export function checkRangeRequest(r: RangeRequest): void {
  if (isEmpty(r.key)) throw new KeyraftError('EmptyKey');
  const order = r.sort_order ?? SortOrder.NONE;
  const target = r.sort_target ?? SortTarget.KEY;
  if (order !== SortOrder.NONE && order !== SortOrder.ASCEND && order !== SortOrder.DESCEND) throw new KeyraftError('InvalidSortOption');
  if (!Number.isInteger(target) || target < SortTarget.KEY || target > SortTarget.VALUE) throw new KeyraftError('InvalidSortOption');
}

export function checkPutRequest(r: PutRequest): void {
  if (isEmpty(r.key)) throw new KeyraftError('EmptyKey');
  // etcd checks these combinations in the same place (key.go checkPutRequest).
  if (r.ignore_value && r.value !== undefined && r.value.length !== 0) throw new KeyraftError('ValueProvided');
  if (r.ignore_lease && r.lease !== undefined && r.lease !== 0n) throw new KeyraftError('LeaseProvided');
}

export function checkDeleteRequest(r: DeleteRangeRequest): void {
  if (isEmpty(r.key)) throw new KeyraftError('EmptyKey');
}

/** checkTxnRequest (op counts, keys), then duplicate writes per branch (checkIntervals). */
export function checkTxnRequest(r: TxnRequest, maxTxnOps: number): void {
  checkTxnOps(r, maxTxnOps);
  // etcd checks overlaps only after the cheap checks, which bound the nesting depth.
  checkBranchWrites(r.success ?? []);
  checkBranchWrites(r.failure ?? []);
}

/**
 * The largest of len(compare), len(success), len(failure) may not exceed the budget, and a nested
 * txn gets what its level left: etcd passes maxTxnOps - opc down (key.go checkTxnRequest).
 * Example with max 128: 100 outer ops leave a nested txn at most 28.
 *
 * The budget is per level, not a count over all levels: so in etcd 3.4 and in etcd's main branch
 * alike (key.go), so we keep it. 40 nested txns of 40 nested txns of 26 ops each pass (41,600 ops
 * in ~420 KB). What keeps such a txn cheap is that everything done with its ops is n log n
 * (checkBranchWrites, the applier), and depth is bounded: each level costs at least one op.
 */
function checkTxnOps(r: TxnRequest, maxTxnOps: number): void {
  const compare = r.compare ?? [];
  const success = r.success ?? [];
  const failure = r.failure ?? [];
  const opc = Math.max(compare.length, success.length, failure.length);
  if (opc > maxTxnOps) throw new KeyraftError('TooManyOps');
  for (const c of compare) {
    if (isEmpty(c.key)) throw new KeyraftError('EmptyKey');
  }
  for (const op of success) checkRequestOp(op, maxTxnOps - opc);
  for (const op of failure) checkRequestOp(op, maxTxnOps - opc);
}

function checkRequestOp(op: RequestOp, maxTxnOps: number): void {
  if (op.request_range) checkRangeRequest(op.request_range);
  else if (op.request_put) checkPutRequest(op.request_put);
  else if (op.request_delete_range) checkDeleteRequest(op.request_delete_range);
  else if (op.request_txn) checkTxnOps(op.request_txn, maxTxnOps);
  // An op with none of the four set: etcd answers "key not found".
  else throw new KeyraftError('KeyNotFound');
}
