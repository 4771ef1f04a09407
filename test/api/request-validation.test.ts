/** Checks before the member, as etcd's v3rpc/key.go and its proposal size limit. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  checkProposalSize, checkPutRequest, checkRangeRequest, checkTxnRequest, proposalSizeBytes,
} from '../../src/api/request-validation.js';
import { isTxnReadOnly } from '../../src/server/txn-write-checks.js';
import { codeOf } from '../error-code.js';
import { KeyraftError, type ErrorCode } from '../../src/platform/errors.js';
import type { RequestOp, TxnRequest } from '../../src/proto/etcd-types.js';

const k = (s: string): Buffer => Buffer.from(s);
const put = (key: string): RequestOp => ({ request_put: { key: k(key), value: k('v') } });
const del = (key: string, end?: string): RequestOp => ({ request_delete_range: { key: k(key), range_end: end === undefined ? undefined : k(end) } });
const range = (key: string): RequestOp => ({ request_range: { key: k(key) } });
const txn = (success: RequestOp[], failure: RequestOp[] = []): RequestOp => ({ request_txn: { success, failure } });

const checkTxn = (r: TxnRequest, max = 128): ErrorCode | 'ok' => codeOf(() => checkTxnRequest(r, max));

test('empty keys are refused everywhere etcd refuses them', () => {
  assert.is(codeOf(() => checkRangeRequest({})), 'EmptyKey');
  assert.is(codeOf(() => checkPutRequest({ key: Buffer.alloc(0), value: k('x') })), 'EmptyKey');
  assert.is(checkTxn({ success: [{ request_put: { value: k('x') } }] }), 'EmptyKey');
  assert.is(checkTxn({ compare: [{ result: 0, target: 0 }] }), 'EmptyKey');
  assert.is(checkTxn({ failure: [txn([{ request_delete_range: {} }])] }), 'EmptyKey');
  assert.is(checkTxn({ success: [{}] }), 'KeyNotFound');
  assert.is(codeOf(() => checkPutRequest({ key: k('a'), value: k('x'), ignore_value: true })), 'ValueProvided');
  assert.is(codeOf(() => checkPutRequest({ key: k('a'), lease: 5n, ignore_lease: true })), 'LeaseProvided');
});

test('sort order or target outside its enum: etcd 3.5\'s "invalid sort option", in txn ranges too', () => {
  const r = (sort_order: number, sort_target: number) => ({ key: k('a'), sort_order, sort_target } as never);
  assert.is(codeOf(() => checkRangeRequest(r(2, 4))), 'ok');
  assert.is(codeOf(() => checkRangeRequest(r(99, 0))), 'InvalidSortOption');
  assert.is(codeOf(() => checkRangeRequest(r(-1, 0))), 'InvalidSortOption');
  assert.is(codeOf(() => checkRangeRequest(r(0, 5))), 'InvalidSortOption');
  assert.is(codeOf(() => checkRangeRequest(r(1, -1))), 'InvalidSortOption');
  // The empty key is reported first, as etcd checks it first.
  assert.is(codeOf(() => checkRangeRequest({ sort_order: 99 } as never)), 'EmptyKey');
  assert.is(checkTxn({ success: [txn([{ request_range: r(0, 99) }])] }), 'InvalidSortOption');
  assert.is(new KeyraftError('InvalidSortOption').message, 'etcdserver: invalid sort option');
});

test('too many ops: each list of a level against the max, nested txns get what the level left', () => {
  const ops = (n: number, prefix: string): RequestOp[] => Array.from({ length: n }, (_, i) => put(`${prefix}${i}`));
  assert.is(checkTxn({ success: ops(4, 's'), failure: ops(4, 'f') }, 4), 'ok');
  assert.is(checkTxn({ success: ops(5, 's') }, 4), 'TooManyOps');
  assert.is(checkTxn({ failure: ops(5, 'f') }, 4), 'TooManyOps');
  assert.is(checkTxn({ compare: Array.from({ length: 5 }, () => ({ key: k('c') })) }, 4), 'TooManyOps');
  // 2 outer ops leave 2 for the nested txn.
  assert.is(checkTxn({ success: [put('a'), txn(ops(2, 'n'))] }, 4), 'ok');
  assert.is(checkTxn({ success: [put('a'), txn(ops(3, 'n'))] }, 4), 'TooManyOps');
});

test('duplicate keys among the writes of one branch (checkIntervals)', () => {
  assert.is(checkTxn({ success: [put('a'), put('a')] }), 'DuplicateKey');
  assert.is(checkTxn({ success: [put('a')], failure: [put('a')] }), 'ok');
  assert.is(checkTxn({ success: [del('a', 'c'), put('b')] }), 'DuplicateKey');
  assert.is(checkTxn({ success: [del('a', 'c'), put('c')] }), 'ok');
  assert.is(checkTxn({ success: [del('a'), put('a')] }), 'DuplicateKey');
  assert.is(checkTxn({ success: [del('a', 'c'), del('b', 'd')] }), 'ok');
  assert.is(checkTxn({ success: [range('a'), put('a')] }), 'ok');
  assert.is(checkTxn({ success: [put('a'), txn([put('a')])] }), 'DuplicateKey');
  assert.is(checkTxn({ success: [txn([put('a')], [put('a')])] }), 'ok');
  assert.is(checkTxn({ success: [txn([put('a')]), txn([], [put('a')])] }), 'DuplicateKey');
  assert.is(checkTxn({ success: [del('a', 'z'), txn([put('m')])] }), 'DuplicateKey');
  assert.is(checkTxn({ success: [txn([del('a', 'z')]), put('m')] }), 'DuplicateKey');
  // The delete's txn comes after the put's: etcd checks a nested txn's puts only against earlier deletes.
  assert.is(checkTxn({ success: [txn([put('m')]), txn([del('a', 'z')])] }), 'ok');
  assert.is(checkTxn({ success: [txn([del('a', 'z')]), txn([put('m')])] }), 'DuplicateKey');
  assert.is(checkTxn({ success: [txn([put('m')], [del('a', 'z')])] }), 'ok');
  // As in etcd, a range_end of "\0" is compared as bytes there and overlaps nothing.
  assert.is(checkTxn({ success: [del('a', '\0'), put('m')] }), 'ok');
});

test('proposal size: etcd 3.4.23 with --max-request-bytes 4096 accepts a 4080-byte PutRequest, refuses 4081', () => {
  assert.is(proposalSizeBytes(4080), 4096);
  assert.is(codeOf(() => checkProposalSize(4080, 4096)), 'ok');
  assert.is(codeOf(() => checkProposalSize(4081, 4096)), 'RequestTooLarge');
});

test("read-only txns are recognised as etcd's isTxnReadonly: ranges only, a nested txn counts as a write", () => {
  assert.ok(isTxnReadOnly({ success: [range('a'), range('b')], failure: [range('c')] }));
  assert.ok(isTxnReadOnly({}));
  // etcd does not look inside a nested txn: this one is proposed, and its size checked.
  assert.not.ok(isTxnReadOnly({ success: [range('a'), txn([range('b')])], failure: [range('c')] }));
  assert.not.ok(isTxnReadOnly({ success: [range('a')], failure: [txn([put('b')])] }));
});

test.run();
