/**
 * Answers to input etcd refuses (issue 9): each asserts the exact answer etcd gives, through the
 * JSON gateway and, where the check is shared, through gRPC.
 */
import * as grpc from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KvClient, unary } from './grpc-clients.js';
import { b64, httpRequest, startWithLogCapture, type Running } from './helpers.js';

let running: Running;
/** What the server logged at warn level or above: bad input must not log stack traces as errors. */
let logged: string[] = [];

test.before(async () => {
  ({ running, logged } = await startWithLogCapture());
});

test.after(async () => {
  await running.server.close();
});

/** POSTs `body` and returns the gateway's status and parsed JSON answer. */
async function post(path: string, body: string): Promise<{ status: number; json: any }> {
  const reply = await httpRequest(running.server.port, 'POST', path, body);
  return { status: reply.status, json: JSON.parse(reply.body) };
}

const refusal = (message: string, code = 3) => ({ error: message, message, code });

test('sort order or target outside its enum: etcd 3.5\'s InvalidArgument "invalid sort option" (gateway 400, gRPC 3)', async () => {
  for (const body of [
    { key: b64('a'), sort_order: 99 }, { key: b64('a'), sort_order: -1 },
    { key: b64('a'), sort_target: 99 }, { key: b64('a'), sort_target: -1 },
  ]) {
    const { status, json } = await post('/v3/kv/range', JSON.stringify(body));
    assert.is(status, 400, JSON.stringify(body));
    assert.equal(json, refusal('etcdserver: invalid sort option'));
  }
  const inTxn = await post('/v3/kv/txn', JSON.stringify({ success: [{ request_range: { key: b64('a'), sort_target: 7 } }] }));
  assert.is(inTxn.status, 400);
  assert.equal(inTxn.json, refusal('etcdserver: invalid sort option'));
  const kv = new KvClient(`127.0.0.1:${running.server.port}`, grpc.credentials.createInsecure());
  try {
    const err = await unary(kv, 'Range', { key: Buffer.from('a'), sort_order: 99 }).then(() => undefined, (e: grpc.ServiceError) => e);
    assert.ok(err);
    assert.is(err!.code, 3);
    assert.is(err!.details, 'etcdserver: invalid sort option');
  } finally {
    kv.close();
  }
});

/** The request the member received last. */
const lastReceived = (): any => running.member.received[running.member.received.length - 1]!.request;

test('gateway integers as Go\'s jsonpb reads them: exact int64, no doubles, no exponents or fractions (etcd 3.4.23\'s answers)', async () => {
  const intError = (text: string, type = 'int64') => refusal(`json: cannot unmarshal number ${text} into Go value of type ${type}`);
  // The largest int64, unquoted and quoted, reaches the member exactly (etcd: a future revision).
  for (const revision of ['9223372036854775807', '"9223372036854775807"']) {
    const { status, json } = await post('/v3/kv/range', `{"key":"${b64('a')}","revision":${revision}}`);
    assert.is(status, 400);
    assert.equal(json, refusal('etcdserver: mvcc: required revision is a future revision', 11));
    assert.is(BigInt(lastReceived().revision), 2n ** 63n, 'carried as the nearest double of a number field: still a future revision');
  }
  for (const [text, shown] of [['1e3', '1e3'], ['"1e3"', '1e3'], ['1.0', '1.0'], ['1E+2', '1E+2'], ['9223372036854775808', '9223372036854775808'], ['"-9223372036854775809"', '-9223372036854775809']]) {
    const { status, json } = await post('/v3/kv/range', `{"key":"${b64('a')}","limit":${text}}`);
    assert.is(status, 400, text);
    assert.equal(json, intError(shown!), text);
  }
  // Go's json.Unmarshal of a quoted number's inner text allows white space around it.
  assert.is((await post('/v3/kv/range', `{"key":"${b64('a')}","limit":" 5 "}`)).status, 200);
  assert.is(lastReceived().limit, 5);
  // Lease ids beyond 2^53 are exact (were rounded to a double); beyond int64 refused.
  for (const lease of ['9007199254740993', '"9007199254740993"', '9223372036854775807']) {
    await post('/v3/kv/put', `{"key":"${b64('a')}","lease":${lease}}`);
    assert.is(lastReceived().lease, BigInt(lease.replace(/"/g, '')), lease);
  }
  const tooBig = await post('/v3/kv/put', `{"key":"${b64('a')}","lease":"18446744073709551615"}`);
  assert.equal(tooBig.json, intError('18446744073709551615'));
  const exponent = await post('/v3/kv/put', `{"key":"${b64('a')}","lease":1e3}`);
  assert.equal(exponent.json, intError('1e3'));
  // Bytes as an array of numbers: each a uint8.
  assert.equal((await post('/v3/kv/put', `{"key":[97,1.5]}`)).json, intError('1.5', 'uint8'));
});

test('JSON nested deeper than Go allows: 400 with Go\'s "exceeded max depth"; 9,999 levels are fine (etcd 3.4.23\'s answers)', async () => {
  const deep = (levels: number, open = '[', close = ']') => `{"key":"${b64('a')}","x":${open.repeat(levels)}${close.repeat(levels)}}`;
  assert.equal((await post('/v3/kv/range', deep(10_000))).json, refusal("invalid character '[' exceeded max depth"));
  assert.is((await post('/v3/kv/range', deep(9_998))).status, 200);
  const objects = `{"key":"${b64('a')}","x":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`;
  assert.equal((await post('/v3/kv/range', objects)).json, refusal("invalid character '{' exceeded max depth"));
  // A million levels, malformed or not, cost a pass over the bytes, not the call stack.
  assert.equal((await post('/v3/kv/range', '['.repeat(1_000_000))).json, refusal("invalid character '[' exceeded max depth"));
  assert.equal((await post('/v3/kv/range', `{"x":${'['.repeat(5000)}}`)).json, refusal("invalid character '}' looking for beginning of value"));
  // Txns nested past the op budget: etcd's "too many operations", found while decoding.
  let txn = '{}';
  for (let i = 0; i < 3000; i++) txn = `{"success":[{"request_txn":${txn}}]}`;
  const nested = await post('/v3/kv/txn', txn);
  assert.is(nested.status, 400);
  assert.equal(nested.json, refusal('etcdserver: too many operations in txn request'));
  assert.equal(logged, [], 'bad input is answered, not logged as a failure');
});

test.run();
