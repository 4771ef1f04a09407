/**
 * The JSON gateway side by side with etcd 3.4's: one request sequence against both, and every
 * answer (status and body) must be identical once cluster and member ids are normalized. Both
 * start at revision 1, so revisions must match exactly. The comparison needs etcd (skipped with
 * its reason without it, ../etcd-binaries.ts); the tests with answers written here run always.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import { b64, httpRequest, killAll, normalizeIds, startEtcd, startKeyraft, type ServerProcess } from './harness.js';

const test = suite('gateway-compat');
let keyraft: ServerProcess;
let etcd: ServerProcess;
const need = needEtcd('integration/gateway-compat', ['etcd']);

type Step = { path: string; body: unknown } | { path: string; raw: string };
const steps: Step[] = [
  { path: '/v3/kv/put', body: { key: b64('a'), value: b64('1') } },
  { path: '/v3/kv/put', body: { key: b64('b'), value: b64('2') } },
  { path: '/v3/kv/put', body: { key: b64('a'), value: b64('3'), prev_kv: true } },
  { path: '/v3/kv/range', body: { key: b64('a') } },
  { path: '/v3/kv/range', body: { key: b64('a'), range_end: b64('c') } },
  { path: '/v3/kv/range', body: { key: b64('a'), range_end: b64('c'), limit: 1 } },
  { path: '/v3/kv/range', body: { key: b64('a'), range_end: b64('c'), limit: '1', sort_order: 'DESCEND', sort_target: 'MOD' } },
  { path: '/v3/kv/range', body: { key: b64('a'), revision: 2 } },
  { path: '/v3/kv/range', body: { key: b64('\0'), range_end: b64('\0'), count_only: true } },
  { path: '/v3/kv/range', body: { key: b64('a'), range_end: b64('\0'), keys_only: true } },
  { path: '/v3/kv/range', body: { key: b64('zz') } },
  { path: '/v3/kv/txn', body: {
    compare: [{ key: b64('a'), result: 'EQUAL', target: 'VALUE', value: b64('3') }],
    success: [{ request_put: { key: b64('c'), value: b64('4') } }, { request_range: { key: b64('a') } }],
    failure: [{ request_delete_range: { key: b64('a') } }],
  } },
  { path: '/v3/kv/txn', body: {
    compare: [{ key: b64('a'), result: 'GREATER', target: 'VERSION', version: '10' }],
    success: [{ request_put: { key: b64('c'), value: b64('never') } }],
    failure: [{ request_delete_range: { key: b64('b'), prev_kv: true } }],
  } },
  { path: '/v3/kv/deleterange', body: { key: b64('a'), range_end: b64('z'), prev_kv: true } },
  { path: '/v3/kv/put', body: { key: b64('d'), value: b64('5') } },
  { path: '/v3/kv/compaction', body: { revision: 4 } },
  { path: '/v3/kv/range', body: { key: b64('a'), revision: 3 } },
  { path: '/v3/kv/range', body: { key: b64('a'), revision: 100 } },
  { path: '/v3/kv/compaction', body: { revision: 2 } },
  { path: '/v3/kv/put', body: { value: b64('no key') } },
  { path: '/v3/kv/put', body: { key: b64('e'), value: b64('x'), lease: '12345' } },
  { path: '/v3/kv/range', raw: '{"key": "YQ=="' },
  { path: '/v3/kv/range', raw: '{"key": "@@@not base64"}' },
  { path: '/v3/kv/range', raw: '{"key": "YQ==", "limit": "ten"}' },
  { path: '/v3/cluster/member/list', body: {} },
  { path: '/v3/kv/range', body: { key: b64('d'), serializable: true } },
];

function normalize(status: number, body: string): string {
  let text = body;
  try {
    text = JSON.stringify(JSON.parse(body));
  } catch {
    // not JSON: compare the text
  }
  return `${status} ${normalizeIds(text)}`;
}

test.before(async () => {
  if (need.found) [keyraft, etcd] = await Promise.all([startKeyraft(), startEtcd()]);
  else keyraft = await startKeyraft();
});

test.after(async () => {
  await killAll();
});

need.test(test, 'the gateway answers the same JSON as etcd 3.4 for the same requests', async () => {
  for (const step of steps) {
    const payload = 'raw' in step ? step.raw : JSON.stringify(step.body);
    const fromEtcd = await httpRequest(etcd.clientPort, 'POST', step.path, payload);
    const fromKeyraft = await httpRequest(keyraft.clientPort, 'POST', step.path, payload);
    assert.is(
      normalize(fromKeyraft.status, fromKeyraft.body).replaceAll(String(keyraft.peerPort), '<p>').replaceAll(String(keyraft.clientPort), '<c>'),
      normalize(fromEtcd.status, fromEtcd.body).replaceAll(String(etcd.peerPort), '<p>').replaceAll(String(etcd.clientPort), '<c>'),
      `POST ${step.path} ${payload}`,
    );
  }
});

// Answers written here (as etcd 3.4's gateway gives them), on keys of its own with revisions read
// back: runs with or without etcd, after the comparison or without it.
test('put, range, txn, delete and an error answered as written here', async () => {
  const post = async (path: string, body: unknown) => {
    const res = await httpRequest(keyraft.clientPort, 'POST', path, typeof body === 'string' ? body : JSON.stringify(body));
    return { status: res.status, json: JSON.parse(res.body) as Record<string, any> };
  };
  const withoutHeader = ({ header, ...rest }: Record<string, any>) => rest;
  const key = b64('known/a');
  const first = await post('/v3/kv/put', { key, value: b64('1') });
  assert.is(first.status, 200);
  assert.equal(Object.keys(first.json.header).sort(), ['cluster_id', 'member_id', 'raft_term', 'revision']);
  assert.equal(withoutHeader(first.json), {});
  const rev = Number(first.json.header.revision);
  const second = await post('/v3/kv/put', { key, value: b64('2'), prev_kv: true });
  assert.is(second.json.header.revision, String(rev + 1));
  assert.equal(withoutHeader(second.json), { prev_kv: { key, create_revision: String(rev), mod_revision: String(rev), version: '1', value: b64('1') } });
  const kv = { key, create_revision: String(rev), mod_revision: String(rev + 1), version: '2', value: b64('2') };
  const range = await post('/v3/kv/range', { key: b64('known/'), range_end: b64('known0') });
  assert.equal(withoutHeader(range.json), { kvs: [kv], count: '1' });
  const txn = await post('/v3/kv/txn', {
    compare: [{ key, result: 'EQUAL', target: 'VALUE', value: b64('2') }],
    success: [{ request_range: { key } }],
    failure: [{ request_delete_range: { key } }],
  });
  // A txn's inner headers carry only the revision, as etcd 3.4's do.
  assert.equal(withoutHeader(txn.json), { succeeded: true, responses: [{ response_range: { header: { revision: String(rev + 1) }, kvs: [kv], count: '1' } }] });
  const deleted = await post('/v3/kv/deleterange', { key, prev_kv: true });
  assert.equal(withoutHeader(deleted.json), { deleted: '1', prev_kvs: [kv] });
  const future = await post('/v3/kv/range', { key, revision: rev + 100 });
  assert.is(future.status, 400);
  assert.equal(future.json, { error: 'etcdserver: mvcc: required revision is a future revision', message: 'etcdserver: mvcc: required revision is a future revision', code: 11 });
});

test('GET /v3/kv/range?key= convenience form answers as the POST does', async () => {
  await httpRequest(keyraft.clientPort, 'POST', '/v3/kv/put', JSON.stringify({ key: b64('plain/key'), value: b64('hello') }));
  const viaGet = await httpRequest(keyraft.clientPort, 'GET', '/v3/kv/range?key=plain/key');
  const viaPost = await httpRequest(keyraft.clientPort, 'POST', '/v3/kv/range', JSON.stringify({ key: b64('plain/key') }));
  assert.is(viaGet.status, 200);
  assert.equal(JSON.parse(viaGet.body), JSON.parse(viaPost.body));
  assert.is(Buffer.from(JSON.parse(viaGet.body).kvs[0].value, 'base64').toString(), 'hello');
  const prefix = await httpRequest(keyraft.clientPort, 'GET', '/v3/kv/range?key=plain/&prefix=true');
  assert.is(JSON.parse(prefix.body).count, '1');
});

test('health and version endpoints', async () => {
  const health = await httpRequest(keyraft.clientPort, 'GET', '/health');
  assert.is(health.status, 200);
  assert.is(JSON.parse(health.body).health, 'true');
  const version = await httpRequest(keyraft.clientPort, 'GET', '/version');
  assert.is(JSON.parse(version.body).etcdserver, '3.4.23');
});

test.run();
