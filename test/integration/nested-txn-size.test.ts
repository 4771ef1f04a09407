/**
 * A txn whose only op is a read-only nested txn is a write to etcd (its isTxnReadonly does not look
 * inside nested txns), so it is proposed and its proposal size is checked against
 * --max-request-bytes; the same read as a plain read-only txn is served locally and has no
 * proposal size. Side by side with etcd 3.4 (both with --max-request-bytes 4096, a 5,000-byte key):
 * status and body must match once ids are normalized. etcd 3.4.23 answers the wrapped txn 400
 * {"error":"etcdserver: request is too large",...,"code":3} and the plain one 200.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import { b64, httpRequest, killAll, startEtcd, startKeyraft, type ServerProcess } from './harness.js';

const test = suite('nested-txn-size');
const need = needEtcd('integration/nested-txn-size', ['etcd']);
const maxRequestBytes = ['--max-request-bytes', '4096'];
let keyraft: ServerProcess;
let etcd: ServerProcess;

test.before(async () => {
  if (need.found) [keyraft, etcd] = await Promise.all([startKeyraft({ args: maxRequestBytes }), startEtcd({ args: maxRequestBytes })]);
});

test.after(async () => {
  await killAll();
});

const bigKey = b64('k'.repeat(5000));
const plain = JSON.stringify({ success: [{ request_range: { key: bigKey } }] });
const wrapped = JSON.stringify({ success: [{ request_txn: { success: [{ request_range: { key: bigKey } }] } }] });

need.test(test, 'a read-only txn wrapped in a txn is refused for its proposal size as etcd refuses it; unwrapped it is served', async () => {
  for (const body of [plain, wrapped]) {
    const [ours, theirs] = await Promise.all([httpRequest(keyraft.clientPort, 'POST', '/v3/kv/txn', body), httpRequest(etcd.clientPort, 'POST', '/v3/kv/txn', body)]);
    assert.is(ours.status, theirs.status, `status for ${body.slice(0, 40)}...: ours ${ours.body}, etcd ${theirs.body}`);
    if (ours.status !== 200) assert.equal(JSON.parse(ours.body), JSON.parse(theirs.body));
    else assert.is(JSON.parse(ours.body).succeeded, JSON.parse(theirs.body).succeeded);
  }
  const refused = await httpRequest(keyraft.clientPort, 'POST', '/v3/kv/txn', wrapped);
  assert.is(refused.status, 400);
  assert.is(JSON.parse(refused.body).message, 'etcdserver: request is too large');
});

test.run();
