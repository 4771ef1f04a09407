/**
 * The watch bench's raw-socket writer (bench/watch/raw-put-client.ts) against a real member: a
 * put it calls a success is stored, and an error answer (trailers-only) is a failure, not a
 * success, so that the bench never counts a refused put as acknowledged.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RawPutClient } from '../../bench/watch/raw-put-client.js';
import { encode, messageType } from '../../src/proto/codec.js';
import { killAll, postJson, startKeyraft, b64 } from '../integration/harness.js';

const putRequestType = messageType('etcdserverpb.PutRequest');

test('puts succeed and are stored; a refused put is reported as failed', async () => {
  const server = await startKeyraft();
  try {
    const client = await RawPutClient.connect(server.clientPort);
    const put = (key: string, value: string): Promise<boolean> =>
      new Promise((resolve) => client.put(encode(putRequestType, { key: Buffer.from(key), value: Buffer.from(value) }), resolve));
    // More calls than fit one turn, so that several are in flight together.
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => put(`raw/k${i}`, `v${i}`)));
    assert.equal(results.filter((ok) => !ok).length, 0, 'a valid put reported as failed');
    const range = await postJson(server.clientPort, '/v3/kv/range', { key: b64('raw/k199') });
    assert.is(Buffer.from(range.json.kvs[0].value, 'base64').toString(), 'v199');
    // An empty key: etcd's "etcdserver: key is not provided", a trailers-only answer.
    assert.is(await put('', 'x'), false, 'a refused put reported as acknowledged');
    assert.is(await put('raw/after', 'y'), true, 'the connection is still usable after an error');
    client.close();
  } finally {
    await killAll();
  }
});

test.run();
