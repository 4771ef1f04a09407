/**
 * Answers to input etcd refuses (issue 9): each asserts the exact answer etcd gives, through the
 * JSON gateway and, where the check is shared, through gRPC.
 */
import * as grpc from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KvClient, unary } from './grpc-clients.js';
import { b64, httpRequest, startWithMemoryMember, type Running } from './helpers.js';

let running: Running;

test.before(async () => {
  running = await startWithMemoryMember();
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

test.run();
