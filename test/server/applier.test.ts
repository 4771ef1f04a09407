import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Applier } from '../../src/server/applier.js';
import {
  CompareResult, CompareTarget, SortOrder, SortTarget,
  type Compare, type DeleteRangeResponse, type PutRequest, type PutResponse, type RangeRequest, type RangeResponse, type TxnRequest, type TxnResponse,
} from '../../src/proto/etcd-types.js';
import { b, plain, throwsCode, withApplier } from '../mvcc/helpers.js';

const put = (a: Applier, key: string, value: string, extra: Partial<PutRequest> = {}): PutResponse =>
  a.apply({ id: 1, put: { key: b(key), value: b(value), ...extra } }) as PutResponse;
const del = (a: Applier, key: string, rangeEnd?: string, prevKv = false): DeleteRangeResponse =>
  a.apply({ id: 1, delete_range: { key: b(key), range_end: rangeEnd === undefined ? undefined : b(rangeEnd), prev_kv: prevKv } }) as DeleteRangeResponse;
/** A txn as the member applies it: ranges at an old revision finish once their values are read. */
const txn = (a: Applier, t: TxnRequest): TxnResponse => a.apply({ id: 1, txn: t }) as TxnResponse;
const txnRead = async (a: Applier, t: TxnRequest): Promise<TxnResponse> => {
  const r = txn(a, t);
  await a.resolveDeferred();
  return r;
};
const keys = async (a: Applier, r: RangeRequest): Promise<string[]> => (await a.range(r)).kvs.map((kv) => kv.key.toString('latin1'));
/** Keys of a range at the current revision: answered synchronously, from memory. */
const keysNow = (a: Applier, r: RangeRequest): string[] => {
  const res = a.range(r);
  assert.not.instance(res, Promise);
  return (res as RangeResponse).kvs.map((kv) => kv.key.toString('latin1'));
};
const get = async (a: Applier, key: string, rev = 0) => plain((await a.range({ key: b(key), revision: rev })).kvs[0]);

test('revisions: empty store at 1, first put at 2, versions reset after delete', () => withApplier(async (a) => {
  assert.is(a.currentRevision, 1);
  assert.equal((await a.range({ key: b('x') })), { kvs: [], more: false, count: 0 });
  put(a, 'a', '1');
  assert.equal((await get(a, 'a')), { key: 'a', create_revision: 2, mod_revision: 2, version: 1, value: '1', lease: '0' });
  put(a, 'a', '2');
  assert.equal((await get(a, 'a')), { key: 'a', create_revision: 2, mod_revision: 3, version: 2, value: '2', lease: '0' });
  assert.is(del(a, 'a').deleted, 1);
  assert.is(a.currentRevision, 4);
  assert.is((await get(a, 'a')), undefined);
  put(a, 'a', '3');
  assert.equal((await get(a, 'a')), { key: 'a', create_revision: 5, mod_revision: 5, version: 1, value: '3', lease: '0' });
  // Changing nothing does not bump the revision.
  assert.is(del(a, 'nope').deleted, 0);
  assert.is(del(a, 'b', 'c').deleted, 0);
  txn(a, { compare: [], success: [{ request_range: { key: b('a') } }] });
  txn(a, { success: [{ request_delete_range: { key: b('zz') } }] });
  assert.is(a.currentRevision, 5);
  // Reads at every past revision.
  assert.is((await get(a, 'a', 1)), undefined);
  assert.is(((await get(a, 'a', 2)) as { value: string }).value, '1');
  assert.is(((await get(a, 'a', 3)) as { value: string }).value, '2');
  assert.is((await get(a, 'a', 4)), undefined);
  throwsCode(() => a.range({ key: b('a'), revision: 6 }), 'FutureRevision');
}));

async function seedRange(a: Applier): Promise<void> {
  // keys: a(v1) b(v3) c(v1) d(v2, value 'a') e ; \x00-prefixed and high bytes too
  put(a, 'b', 'zz'); // 2
  put(a, 'a', 'm'); // 3
  put(a, 'c', 'k'); // 4
  put(a, 'b', 'y'); // 5
  put(a, 'd', 'a'); // 6
  put(a, 'b', 'x'); // 7
  put(a, 'd', 'b'); // 8
  put(a, 'e', 'm'); // 9
  put(a, '\xff', 'h'); // 10
  put(a, 'ab', 'q'); // 11
}

test('range forms: single key, [key, end), prefix, from-key, everything', () => withApplier(async (a) => {
  await seedRange(a);
  assert.equal((await keys(a, { key: b('a') })), ['a']);
  assert.equal((await keys(a, { key: b('a'), range_end: b('c') })), ['a', 'ab', 'b']);
  assert.equal((await keys(a, { key: b('a'), range_end: b('b') })), ['a', 'ab']); // prefix "a"
  assert.equal((await keys(a, { key: b('c'), range_end: b('\0') })), ['c', 'd', 'e', '\xff']);
  assert.equal((await keys(a, { key: b('\0'), range_end: b('\0') })), ['a', 'ab', 'b', 'c', 'd', 'e', '\xff']);
  assert.equal((await keys(a, { key: b('c'), range_end: b('a') })), []);
  assert.equal((await keys(a, { key: b('zz') })), []);
  assert.is((await a.range({ key: b('\0'), range_end: b('\0') })).count, 7);
}));

test('range limit, more and count; count_only; keys_only', () => withApplier(async (a) => {
  await seedRange(a);
  const all = { key: b('a'), range_end: b('f') };
  let r = (await a.range({ ...all, limit: 2 }));
  assert.equal(r.kvs.map((kv) => kv.key.toString()), ['a', 'ab']);
  assert.is(r.more, true);
  assert.is(r.count, 6);
  r = (await a.range({ ...all, limit: 6 }));
  assert.is(r.kvs.length, 6);
  assert.is(r.more, false);
  r = (await a.range({ ...all, limit: 7 }));
  assert.is(r.more, false);
  r = (await a.range({ ...all, count_only: true, limit: 1 }));
  assert.equal(r, { kvs: [], more: false, count: 6 });
  r = (await a.range({ ...all, keys_only: true, limit: 1 }));
  assert.equal(plain(r.kvs[0]), { key: 'a', create_revision: 3, mod_revision: 3, version: 1, value: '', lease: '0' });
  // keys_only must not strip the stored value.
  assert.is((await get(a, 'a'))!.hasOwnProperty('value') && ((await get(a, 'a')) as { value: string }).value, 'm');
}));

test('range sort: every order x target, NONE with a non-KEY target sorts ascending', () => withApplier(async (a) => {
  await seedRange(a);
  const all = { key: b('a'), range_end: b('f') };
  const sorted = (order: SortOrder, target: SortTarget, limit = 0) => keysNow(a, { ...all, sort_order: order, sort_target: target, limit });
  // versions: a1 ab1 b3 c1 d2 e1; create: a3 ab11 b2 c4 d6 e9; mod: a3 ab11 b7 c4 d8 e9; values: a=m ab=q b=x c=k d=b e=m
  assert.equal(sorted(SortOrder.NONE, SortTarget.KEY), ['a', 'ab', 'b', 'c', 'd', 'e']);
  assert.equal(sorted(SortOrder.ASCEND, SortTarget.KEY), ['a', 'ab', 'b', 'c', 'd', 'e']);
  assert.equal(sorted(SortOrder.DESCEND, SortTarget.KEY), ['e', 'd', 'c', 'b', 'ab', 'a']);
  for (const order of [SortOrder.NONE, SortOrder.ASCEND]) {
    assert.equal(sorted(order, SortTarget.VERSION), ['a', 'ab', 'c', 'e', 'd', 'b']);
    assert.equal(sorted(order, SortTarget.CREATE), ['b', 'a', 'c', 'd', 'e', 'ab']);
    assert.equal(sorted(order, SortTarget.MOD), ['a', 'c', 'b', 'd', 'e', 'ab']);
    assert.equal(sorted(order, SortTarget.VALUE), ['d', 'c', 'a', 'e', 'ab', 'b']);
  }
  assert.equal(sorted(SortOrder.DESCEND, SortTarget.VERSION), ['b', 'd', 'a', 'ab', 'c', 'e']);
  assert.equal(sorted(SortOrder.DESCEND, SortTarget.CREATE), ['ab', 'e', 'd', 'c', 'a', 'b']);
  assert.equal(sorted(SortOrder.DESCEND, SortTarget.MOD), ['ab', 'e', 'd', 'b', 'c', 'a']);
  assert.equal(sorted(SortOrder.DESCEND, SortTarget.VALUE), ['b', 'ab', 'a', 'e', 'c', 'd']);
  // Sorting happens before the limit: the top 2 by mod revision, descending.
  const r = (await a.range({ ...all, sort_order: SortOrder.DESCEND, sort_target: SortTarget.MOD, limit: 2 }));
  assert.equal(r.kvs.map((kv) => kv.key.toString()), ['ab', 'e']);
  assert.is(r.more, true);
  assert.is(r.count, 6);
}));

test('range filters on mod/create revision prune after counting', () => withApplier(async (a) => {
  await seedRange(a);
  const all = { key: b('a'), range_end: b('f') };
  // mod: a3 ab11 b7 c4 d8 e9; create: a3 ab11 b2 c4 d6 e9
  assert.equal((await keys(a, { ...all, min_mod_revision: 8 })), ['ab', 'd', 'e']);
  assert.equal((await keys(a, { ...all, max_mod_revision: 4 })), ['a', 'c']);
  assert.equal((await keys(a, { ...all, min_mod_revision: 4, max_mod_revision: 8 })), ['b', 'c', 'd']);
  assert.equal((await keys(a, { ...all, min_create_revision: 6 })), ['ab', 'd', 'e']);
  assert.equal((await keys(a, { ...all, max_create_revision: 3 })), ['a', 'b']);
  assert.equal((await keys(a, { ...all, min_create_revision: 3, max_create_revision: 6 })), ['a', 'c', 'd']);
  const r = (await a.range({ ...all, min_mod_revision: 8, limit: 1 }));
  assert.equal(r.kvs.map((kv) => kv.key.toString()), ['ab']);
  assert.is(r.more, true);
  assert.is(r.count, 6); // etcd: the count of the range, not of the filtered kvs
}));

test('range at a revision sees the state of that revision', () => withApplier(async (a) => {
  await seedRange(a);
  assert.equal((await keys(a, { key: b('a'), range_end: b('f'), revision: 4 })), ['a', 'b', 'c']);
  assert.is((plain((await a.range({ key: b('b'), revision: 6 })).kvs[0]) as { value: string }).value, 'y');
  assert.is((await a.range({ key: b('a'), range_end: b('f'), revision: 1 })).count, 0);
  throwsCode(() => a.range({ key: b('a'), revision: 12 }), 'FutureRevision');
}));

test('put: prev_kv, ignore_value, ignore_lease and their errors', () => withApplier(async (a) => {
  assert.equal(put(a, 'k', 'v1', { prev_kv: true }), {});
  assert.equal(plain(put(a, 'k', 'v2', { prev_kv: true }).prev_kv), { key: 'k', create_revision: 2, mod_revision: 2, version: 1, value: 'v1', lease: '0' });
  put(a, 'k', '', { ignore_value: true });
  assert.equal((await get(a, 'k')), { key: 'k', create_revision: 2, mod_revision: 4, version: 3, value: 'v2', lease: '0' });
  put(a, 'k', 'v3', { ignore_lease: true });
  assert.is(((await get(a, 'k')) as { value: string }).value, 'v3');
  const rev = a.currentRevision;
  throwsCode(() => put(a, 'missing', '', { ignore_value: true }), 'KeyNotFound');
  throwsCode(() => put(a, 'missing', 'x', { ignore_lease: true }), 'KeyNotFound');
  throwsCode(() => put(a, 'k', 'x', { ignore_value: true }), 'ValueProvided');
  throwsCode(() => put(a, 'k', 'x', { ignore_lease: true, lease: 5n }), 'LeaseProvided');
  throwsCode(() => put(a, 'k', 'x', { lease: 7n }), 'LeaseNotFound');
  assert.is(a.currentRevision, rev, 'failed puts change nothing');
  assert.is(((await get(a, 'k')) as { value: string }).value, 'v3');
}));

test('put with a lease the lessor knows stores it; ignore_lease keeps it', () => withApplier(async (a) => {
  put(a, 'k', 'v', { lease: 0x694d7d7c6b2e1a04n });
  assert.is((await a.range({ key: b('k') })).kvs[0]!.lease, 0x694d7d7c6b2e1a04n);
  put(a, 'k', 'w', { ignore_lease: true });
  assert.is((await a.range({ key: b('k') })).kvs[0]!.lease, 0x694d7d7c6b2e1a04n);
  put(a, 'k', 'w');
  assert.is((await a.range({ key: b('k') })).kvs[0]!.lease, 0n);
}, [0x694d7d7c6b2e1a04n]));

test('delete_range: prev_kvs and deleted count over ranges and from-key', () => withApplier(async (a) => {
  await seedRange(a);
  const r = del(a, 'a', 'c', true);
  assert.is(r.deleted, 3);
  assert.equal(r.prev_kvs.map((kv) => kv.key.toString()), ['a', 'ab', 'b']);
  assert.is(a.currentRevision, 12);
  const r2 = del(a, 'd', '\0');
  assert.is(r2.deleted, 3);
  assert.equal(r2.prev_kvs, []);
  assert.equal((await keys(a, { key: b('\0'), range_end: b('\0') })), ['c']);
  assert.equal((await keys(a, { key: b('\0'), range_end: b('\0'), revision: 12 })), ['c', 'd', 'e', '\xff']);
}));

// ---- txn -----------------------------------------------------------------------------------------

const targetField = {
  [CompareTarget.VERSION]: 'version', [CompareTarget.CREATE]: 'create_revision', [CompareTarget.MOD]: 'mod_revision',
  [CompareTarget.VALUE]: 'value', [CompareTarget.LEASE]: 'lease',
} as const;

function cmp(key: string, target: CompareTarget, result: CompareResult, operand: number | string | bigint, rangeEnd?: string): Compare {
  const c: Compare = { key: b(key), target, result };
  if (rangeEnd !== undefined) c.range_end = b(rangeEnd);
  const field = targetField[target];
  if (field === 'value') c.value = b(String(operand));
  else if (field === 'lease') c.lease = BigInt(operand);
  else (c as Record<string, unknown>)[field] = Number(operand);
  return c;
}

const holds = (a: Applier, ...compare: Compare[]): boolean => txn(a, { compare, success: [], failure: [] }).succeeded;

test('txn compare matrix: every target x result, below/equal/above', () => withApplier(async (a) => {
  put(a, 'x', 'a'); // 2
  put(a, 'k', 'a'); // 3
  put(a, 'k', 'm', { lease: 10n }); // 4: k create 3, mod 4, version 2, value m, lease 10
  const actual: Record<CompareTarget, number | string | bigint> = {
    [CompareTarget.VERSION]: 2, [CompareTarget.CREATE]: 3, [CompareTarget.MOD]: 4, [CompareTarget.VALUE]: 'm', [CompareTarget.LEASE]: 10n,
  };
  const below: Record<CompareTarget, number | string | bigint> = {
    [CompareTarget.VERSION]: 1, [CompareTarget.CREATE]: 2, [CompareTarget.MOD]: 3, [CompareTarget.VALUE]: 'l', [CompareTarget.LEASE]: 9n,
  };
  const above: Record<CompareTarget, number | string | bigint> = {
    [CompareTarget.VERSION]: 3, [CompareTarget.CREATE]: 4, [CompareTarget.MOD]: 5, [CompareTarget.VALUE]: 'mm', [CompareTarget.LEASE]: 11n,
  };
  for (const target of [CompareTarget.VERSION, CompareTarget.CREATE, CompareTarget.MOD, CompareTarget.VALUE, CompareTarget.LEASE]) {
    const cases: Array<[CompareResult, number | string | bigint, boolean]> = [
      [CompareResult.EQUAL, actual[target], true], [CompareResult.EQUAL, below[target], false], [CompareResult.EQUAL, above[target], false],
      [CompareResult.NOT_EQUAL, actual[target], false], [CompareResult.NOT_EQUAL, below[target], true], [CompareResult.NOT_EQUAL, above[target], true],
      [CompareResult.GREATER, below[target], true], [CompareResult.GREATER, actual[target], false], [CompareResult.GREATER, above[target], false],
      [CompareResult.LESS, above[target], true], [CompareResult.LESS, actual[target], false], [CompareResult.LESS, below[target], false],
    ];
    for (const [result, operand, expected] of cases) {
      assert.is(holds(a, cmp('k', target, result, operand)), expected, `target ${target} result ${result} operand ${String(operand)}`);
    }
  }
}, [10n]));

test('txn compare on a missing key: 0 for numbers, VALUE always false', () => withApplier(async (a) => {
  for (const target of [CompareTarget.VERSION, CompareTarget.CREATE, CompareTarget.MOD, CompareTarget.LEASE]) {
    assert.ok(holds(a, cmp('missing', target, CompareResult.EQUAL, 0)), `target ${target} = 0`);
    assert.not.ok(holds(a, cmp('missing', target, CompareResult.GREATER, 0)));
    assert.ok(holds(a, cmp('missing', target, CompareResult.LESS, 1)));
    assert.ok(holds(a, cmp('missing', target, CompareResult.NOT_EQUAL, 1)));
  }
  for (const result of [CompareResult.EQUAL, CompareResult.NOT_EQUAL, CompareResult.GREATER, CompareResult.LESS]) {
    assert.not.ok(holds(a, cmp('missing', CompareTarget.VALUE, result, '')), `VALUE result ${result}`);
  }
  // An existing key with an empty value does equal ''.
  put(a, 'empty', '');
  assert.ok(holds(a, cmp('empty', CompareTarget.VALUE, CompareResult.EQUAL, '')));
  // A deleted key is missing again.
  put(a, 'gone', 'v');
  del(a, 'gone');
  assert.ok(holds(a, cmp('gone', CompareTarget.VERSION, CompareResult.EQUAL, 0)));
  // The operand of a target that is not set counts as 0.
  put(a, 'v', 'x');
  assert.ok(holds(a, { key: b('v'), target: CompareTarget.VERSION, result: CompareResult.GREATER, create_revision: 100 }));
}));

test('txn compare with range_end must hold for every key in the range', () => withApplier(async (a) => {
  put(a, 'r1', 'a'); // 2
  put(a, 'r2', 'b'); // 3
  put(a, 'r3', 'c'); // 4
  assert.ok(holds(a, cmp('r', CompareTarget.CREATE, CompareResult.GREATER, 0, 's')));
  assert.ok(holds(a, cmp('r', CompareTarget.MOD, CompareResult.LESS, 5, 's')));
  assert.not.ok(holds(a, cmp('r', CompareTarget.MOD, CompareResult.LESS, 4, 's')));
  assert.not.ok(holds(a, cmp('r', CompareTarget.VALUE, CompareResult.EQUAL, 'a', 's')));
  assert.ok(holds(a, cmp('r', CompareTarget.VALUE, CompareResult.LESS, 'd', 's')));
  assert.ok(holds(a, cmp('r2', CompareTarget.VERSION, CompareResult.EQUAL, 1, '\0')));
  // An empty range compares as one missing key.
  assert.ok(holds(a, cmp('s', CompareTarget.VERSION, CompareResult.EQUAL, 0, 't')));
  assert.not.ok(holds(a, cmp('s', CompareTarget.VALUE, CompareResult.NOT_EQUAL, 'x', 't')));
  // Several compares: all must hold.
  assert.not.ok(holds(a, cmp('r1', CompareTarget.VALUE, CompareResult.EQUAL, 'a'), cmp('r2', CompareTarget.VALUE, CompareResult.EQUAL, 'a')));
  assert.ok(holds(a, cmp('r1', CompareTarget.VALUE, CompareResult.EQUAL, 'a'), cmp('r2', CompareTarget.VALUE, CompareResult.EQUAL, 'b')));
}));

test('txn: one revision for all writes, reads see earlier writes, inner headers as etcd', () => withApplier(async (a) => {
  put(a, 'a', '1'); // 2
  put(a, 'b', '2'); // 3
  const r = txn(a, {
    compare: [cmp('a', CompareTarget.VALUE, CompareResult.EQUAL, '1')],
    success: [
      { request_put: { key: b('c'), value: b('3') } },
      { request_range: { key: b('c') } },
      { request_delete_range: { key: b('a'), prev_kv: true } },
      { request_range: { key: b('a'), range_end: b('z') } },
      { request_txn: { success: [{ request_range: { key: b('c') } }] } },
      { request_put: { key: b('b'), value: b('22'), prev_kv: true } },
    ],
    failure: [{ request_put: { key: b('failed'), value: b('x') } }],
  });
  assert.ok(r.succeeded);
  assert.is(a.currentRevision, 4);
  const [p, r1, d, r2, t, p2] = r.responses;
  assert.is(p!.response_put!.header!.revision, 4);
  assert.equal(plain(r1!.response_range!.kvs[0]), { key: 'c', create_revision: 4, mod_revision: 4, version: 1, value: '3', lease: '0' });
  assert.is(r1!.response_range!.header!.revision, 4);
  assert.is(d!.response_delete_range!.deleted, 1);
  assert.equal(d!.response_delete_range!.prev_kvs.map(plain), [{ key: 'a', create_revision: 2, mod_revision: 2, version: 1, value: '1', lease: '0' }]);
  assert.equal(r2!.response_range!.kvs.map((kv) => kv.key.toString()), ['b', 'c']);
  assert.ok(t!.response_txn!.succeeded);
  assert.equal(t!.response_txn!.header, { cluster_id: 0n, member_id: 0n, revision: 0, raft_term: 0 });
  assert.is(t!.response_txn!.responses[0]!.response_range!.kvs.length, 1);
  assert.is(p2!.response_put!.prev_kv!.value.toString(), '2');
  assert.equal((await get(a, 'b')), { key: 'b', create_revision: 3, mod_revision: 4, version: 2, value: '22', lease: '0' });
  assert.is((await get(a, 'failed')), undefined);
  assert.is((await get(a, 'a')), undefined);
  // Failure branch.
  const f = txn(a, { compare: [cmp('a', CompareTarget.VERSION, CompareResult.GREATER, 0)], success: [{ request_put: { key: b('s'), value: b('') } }], failure: [{ request_put: { key: b('f'), value: b('') } }] });
  assert.not.ok(f.succeeded);
  assert.is((await get(a, 's')), undefined);
  assert.is(((await get(a, 'f')) as { mod_revision: number }).mod_revision, 5);
  // A delete of nothing before any write answers with the unchanged revision.
  const n = txn(a, { success: [{ request_delete_range: { key: b('nothing') } }, { request_put: { key: b('n'), value: b('') } }] });
  assert.is(n.responses[0]!.response_delete_range!.header!.revision, 5);
  assert.is(n.responses[1]!.response_put!.header!.revision, 6);
}));

test('nested txn: compares see the state before the outer txn; paths pick branches', () => withApplier(async (a) => {
  put(a, 'k', 'old'); // 2
  const r = txn(a, {
    success: [
      { request_put: { key: b('k'), value: b('new') } },
      { request_txn: {
        // Evaluated before the outer put: k is still 'old'.
        compare: [cmp('k', CompareTarget.VALUE, CompareResult.EQUAL, 'old')],
        success: [
          { request_put: { key: b('inner-ok'), value: b('1') } },
          { request_txn: { compare: [cmp('k', CompareTarget.VERSION, CompareResult.EQUAL, 5)], success: [{ request_put: { key: b('deep-s'), value: b('') } }], failure: [{ request_range: { key: b('k') } }] } },
        ],
        failure: [{ request_put: { key: b('inner-failed'), value: b('1') } }],
      } },
      { request_txn: { compare: [cmp('k', CompareTarget.VALUE, CompareResult.EQUAL, 'new')], success: [{ request_put: { key: b('second-s'), value: b('') } }], failure: [{ request_put: { key: b('second-f'), value: b('') } }] } },
    ],
  });
  assert.ok(r.succeeded);
  assert.is(a.currentRevision, 3);
  const inner = r.responses[1]!.response_txn!;
  assert.ok(inner.succeeded);
  const deep = inner.responses[1]!.response_txn!;
  assert.not.ok(deep.succeeded);
  // The deep failure branch's range sees the outer txn's write.
  assert.is(deep.responses[0]!.response_range!.kvs[0]!.value.toString(), 'new');
  assert.not.ok(r.responses[2]!.response_txn!.succeeded);
  assert.equal((await keys(a, { key: b('\0'), range_end: b('\0') })), ['inner-ok', 'k', 'second-f']);
}));

test('txn errors are checked before any write and change nothing', () => withApplier(async (a) => {
  put(a, 'k', 'v'); // 2
  put(a, 'k', 'w'); // 3
  const before = a.currentRevision;
  const withOps = (op: TxnRequest['success']) => () => txn(a, { success: [{ request_put: { key: b('written'), value: b('') } }, ...op!] });
  throwsCode(withOps([{ request_range: { key: b('k'), revision: 4 } }]), 'FutureRevision');
  throwsCode(withOps([{ request_put: { key: b('missing'), value: b(''), ignore_value: true } }]), 'KeyNotFound');
  throwsCode(withOps([{ request_put: { key: b('k'), value: b(''), lease: 3n } }]), 'LeaseNotFound');
  throwsCode(withOps([{ request_put: { key: b('k'), value: b('x'), ignore_value: true } }]), 'ValueProvided');
  throwsCode(withOps([{ request_txn: { success: [{ request_put: { key: b('missing'), value: b(''), ignore_lease: true } }] } }]), 'KeyNotFound');
  a.apply({ id: 1, compaction: { revision: 3 } });
  throwsCode(withOps([{ request_range: { key: b('k'), revision: 2 } }]), 'Compacted');
  // The failure branch is not taken, so its bad op does not matter.
  txn(a, { success: [{ request_put: { key: b('ok'), value: b('') } }], failure: [{ request_put: { key: b('missing'), value: b(''), ignore_value: true } }] });
  assert.is(a.currentRevision, before + 1);
  assert.is((await get(a, 'written')), undefined);
  // A read-only txn at the compacted revision itself is fine.
  const r = await txnRead(a, { success: [{ request_range: { key: b('k'), revision: 3 } }] });
  assert.is(r.responses[0]!.response_range!.kvs[0]!.value.toString(), 'w');
}));

// ---- compaction ----------------------------------------------------------------------------------

test('compaction boundaries: at, below, above; reads at rev-1, rev, rev+1', () => withApplier(async (a) => {
  throwsCode(() => a.apply({ id: 1, compaction: { revision: 2 } }), 'FutureRevision');
  a.apply({ id: 1, compaction: { revision: 0 } }); // etcd accepts 0 on a fresh store
  throwsCode(() => a.apply({ id: 1, compaction: { revision: 0 } }), 'Compacted');
  put(a, 'k', 'v2'); // 2
  put(a, 'k', 'v3'); // 3
  put(a, 'k', 'v4'); // 4
  put(a, 't', 'x'); // 5
  del(a, 't'); // 6
  put(a, 'k', 'v7'); // 7
  a.apply({ id: 1, compaction: { revision: 4 } });
  assert.is(a.compactedRevision, 4);
  throwsCode(() => a.apply({ id: 1, compaction: { revision: 4 } }), 'Compacted');
  throwsCode(() => a.apply({ id: 1, compaction: { revision: 3 } }), 'Compacted');
  throwsCode(() => a.apply({ id: 1, compaction: { revision: 8 } }), 'FutureRevision');
  throwsCode(() => a.range({ key: b('k'), revision: 3 }), 'Compacted');
  assert.is((await a.range({ key: b('k'), revision: 4 })).kvs[0]!.value.toString(), 'v4');
  assert.is((await a.range({ key: b('k'), revision: 5 })).kvs[0]!.value.toString(), 'v4');
  assert.is((await a.range({ key: b('k') })).kvs[0]!.value.toString(), 'v7');
  a.commit(1);
  await a.flush(); // waits for the background pass
  assert.is(a.store.compaction.removedRevisions, 2); // k@2, k@3
  // A tombstone at the compact revision removes the key entirely.
  a.apply({ id: 1, compaction: { revision: 6 } });
  a.commit(2);
  await a.flush();
  assert.is(a.store.compaction.removedRevisions, 2 + 2); // t@5, t@6 (k@4 stays: k's latest at 6)
  assert.is(a.store.keyCount, 1);
  assert.equal((await keys(a, { key: b('\0'), range_end: b('\0'), revision: 6 })), ['k']);
  assert.is((await a.range({ key: b('k'), revision: 6 })).kvs[0]!.value.toString(), 'v4');
  assert.is(a.currentRevision, 7, 'compaction does not bump the revision');
}));


test('txn writing one key twice on its path fails with DuplicateKey and changes nothing', () => withApplier(async (a) => {
  put(a, 'k', 'v'); // 2
  const p = (key: string): NonNullable<TxnRequest['success']>[number] => ({ request_put: { key: b(key), value: b('x') } });
  const d = (key: string, end?: string): NonNullable<TxnRequest['success']>[number] => ({ request_delete_range: { key: b(key), range_end: end === undefined ? undefined : b(end) } });
  throwsCode(() => txn(a, { success: [p('a'), p('a')] }), 'DuplicateKey');
  throwsCode(() => txn(a, { success: [p('b'), d('a', 'c')] }), 'DuplicateKey');
  throwsCode(() => txn(a, { success: [d('k'), p('k')] }), 'DuplicateKey');
  throwsCode(() => txn(a, { success: [d('a', '\0'), p('zz')] }), 'DuplicateKey');
  throwsCode(() => txn(a, { success: [p('k'), { request_txn: { success: [p('k')] } }] }), 'DuplicateKey');
  assert.is(a.currentRevision, 2);
  // Not conflicts: overlapping deletes, puts outside a deleted range, the branch not taken.
  txn(a, { success: [d('a', 'c'), d('b'), p('c'), p('d')], failure: [p('c'), p('c')] });
  assert.is(a.currentRevision, 3);
}));

test('a txn of 30,000 deletes then 30,000 puts applies in one revision without holding the loop for long', () => withApplier(async (a) => {
  // The log holds whatever was proposed: the applier's own check must be n log n too. The old one
  // compared each put with every delete before it: 9 * 10^8 steps here.
  const ops: NonNullable<TxnRequest['success']> = [
    ...Array.from({ length: 30_000 }, (_, i) => ({ request_delete_range: { key: b(`d/${i}`), range_end: b(`d/${i}z`) } })),
    ...Array.from({ length: 30_000 }, (_, i) => ({ request_put: { key: b(`p/${i}`), value: b('v') } })),
  ];
  const started = performance.now();
  const r = txn(a, { success: ops });
  const ms = performance.now() - started;
  assert.ok(r.succeeded);
  assert.is(a.currentRevision, 2);
  assert.is((await a.range({ key: b('p/'), range_end: b('p0'), count_only: true })).count, 30_000);
  console.log(`  60,000-op txn applied in ${ms.toFixed(0)} ms`);
  // Generous for a loaded 2-core machine: the store's own work is ~0.5 s of it.
  assert.ok(ms < 5000, `${ms.toFixed(0)} ms`);
}));

test.run();
