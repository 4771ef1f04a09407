/**
 * Txns built to cost the member more than their size suggests (issue 9): tens of thousands of ops
 * nested under etcd's per-level budget. Another client's /health must keep answering while one is
 * judged, and the answers are etcd's.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { b64, httpRequest, startWithMemoryMember, worstHealthLatency, type Running } from './helpers.js';

let running: Running;
let small: Running;

test.before(async () => {
  running = await startWithMemoryMember();
  small = await startWithMemoryMember({ maxRequestBytes: 4096 });
});

test.after(async () => {
  await running.server.close();
  await small.server.close();
});

/**
 * 40 txns of 40 txns of 13 puts and 13 deletes: 41,600 ops (~420 KB encoded) within etcd's
 * default budget of 128 ops per level. With `conflict`, the very last put lands in a range
 * deleted by the first nested txn, so the whole txn is judged before the refusal.
 */
function nestedAttack(conflict: boolean): string {
  const leaf = (a: number, c: number): object => ({
    request_txn: {
      success: [
        ...Array.from({ length: 13 }, (_, i) => ({ request_put: { key: b64(`p/${a}/${c}/${i}`), value: b64('v') } })),
        ...Array.from({ length: 13 }, (_, i) => ({ request_delete_range: { key: b64(`d/${a}/${c}/${i}`), range_end: b64(`d/${a}/${c}/${i}z`) } })),
        ...(conflict && a === 39 && c === 39 ? [{ request_put: { key: b64('d/0/0/5x'), value: b64('v') } }] : []),
      ],
    },
  });
  return JSON.stringify({ success: Array.from({ length: 40 }, (_, a) => ({ request_txn: { success: Array.from({ length: 40 }, (_, c) => leaf(a, c)) } })) });
}

test('41,600 nested ops refused as a duplicate key: etcd\'s answer, /health answers meanwhile', async () => {
  const port = running.server.port;
  const body = nestedAttack(true);
  const { result, worstMs, probes } = await worstHealthLatency(port, () => httpRequest(port, 'POST', '/v3/kv/txn', body));
  assert.is(result.status, 400);
  assert.equal(JSON.parse(result.body), {
    error: 'etcdserver: duplicate key given in txn request', message: 'etcdserver: duplicate key given in txn request', code: 3,
  });
  // Before: a 20,000-op txn held the event loop 33 s. Generous bound for a shared 2-core machine.
  console.log(`  nested txn refused: worst /health ${worstMs.toFixed(0)} ms over ${probes} probes`);
  assert.ok(worstMs < 1000, `worst /health latency ${worstMs.toFixed(0)} ms`);
});

test('one op too many at any level: etcd\'s "too many operations" (its budget is per level: max - opc passed down)', async () => {
  const port = running.server.port;
  const puts = (n: number, p: string): object[] => Array.from({ length: n }, (_, i) => ({ request_put: { key: b64(`${p}${i}`), value: b64('v') } }));
  // 100 outer ops leave 28 for the nested txn.
  const ok = await httpRequest(port, 'POST', '/v3/kv/txn', JSON.stringify({ success: [...puts(99, 'o'), { request_txn: { success: puts(28, 'n') } }] }));
  assert.is(ok.status, 200, ok.body);
  const refused = await httpRequest(port, 'POST', '/v3/kv/txn', JSON.stringify({ success: [...puts(99, 'o'), { request_txn: { success: puts(29, 'n') } }] }));
  assert.is(refused.status, 400);
  assert.is(JSON.parse(refused.body).message, 'etcdserver: too many operations in txn request');
});

test('a txn wrapping a read-only nested txn is a write, as in etcd: its proposal size is checked', async () => {
  const port = small.server.port;
  const bigKey = b64('k'.repeat(5000));
  // A read-only txn is not proposed, so it has no proposal size.
  const readOnly = await httpRequest(port, 'POST', '/v3/kv/txn', JSON.stringify({ success: [{ request_range: { key: bigKey } }] }));
  assert.is(readOnly.status, 200, readOnly.body);
  const wrapped = await httpRequest(port, 'POST', '/v3/kv/txn', JSON.stringify({ success: [{ request_txn: { success: [{ request_range: { key: bigKey } }] } }] }));
  assert.is(wrapped.status, 400, wrapped.body);
  assert.is(JSON.parse(wrapped.body).message, 'etcdserver: request is too large');
});

test.run();
