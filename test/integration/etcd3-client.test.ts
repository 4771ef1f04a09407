/**
 * The `etcd3` npm client's KV calls against a real keyraft member: puts, gets, prefix reads,
 * deletes, transactions, compaction, the typed errors the client derives from etcd's messages,
 * and large values moving both ways at once (our HTTP/2 flow control against grpc-js's).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Etcd3, EtcdLeaseInvalidError, GRPCOutOfRangeError, GRPCInvalidArgumentError } from 'etcd3';
import { killAll, startKeyraftWithEtcd3, type ServerProcess } from './harness.js';

const test = suite('etcd3-client');
let keyraft: ServerProcess;
let client: Etcd3;

test.before(async () => {
  ({ keyraft, client } = await startKeyraftWithEtcd3());
});

test.after(async () => {
  client?.close();
  await killAll();
});

test('put and get strings, buffers and numbers', async () => {
  await client.put('greeting').value('hello');
  assert.is(await client.get('greeting').string(), 'hello');
  await client.put('bin').value(Buffer.from([0, 1, 2, 255]));
  assert.equal([...(await client.get('bin').buffer())!], [0, 1, 2, 255]);
  await client.put('n').value(42);
  assert.is(await client.get('n').number(), 42);
  assert.is(await client.get('missing').string(), null);
});

test('prefix reads, counts, limits and sorting', async () => {
  for (const i of [3, 1, 2]) await client.put(`list/${i}`).value(`v${i}`);
  assert.equal(await client.getAll().prefix('list/').keys(), ['list/1', 'list/2', 'list/3']);
  assert.is(await client.getAll().prefix('list/').count(), 3);
  assert.equal(await client.getAll().prefix('list/').limit(2).keys(), ['list/1', 'list/2']);
  assert.equal(await client.getAll().prefix('list/').sort('Mod', 'Descend').keys(), ['list/2', 'list/1', 'list/3']);
  assert.equal(await client.getAll().prefix('list/').strings(), { 'list/1': 'v1', 'list/2': 'v2', 'list/3': 'v3' });
});

test('put with prev kv, delete with prev kvs', async () => {
  await client.put('pk').value('one');
  const put = await client.put('pk').value('two').getPrevious();
  assert.is(put!.value.toString(), 'one');
  const deleted = await client.delete().prefix('list/').getPrevious();
  assert.is(deleted.length, 3);
  assert.is(await client.getAll().prefix('list/').count(), 0);
});

test('transactions: compare-and-swap both ways', async () => {
  await client.put('cas').value('v1');
  const won = await client.if('cas', 'Value', '==', 'v1').then(client.put('cas').value('v2')).else(client.get('cas')).commit();
  assert.is(won.succeeded, true);
  const lost = await client.if('cas', 'Value', '==', 'v1').then(client.put('cas').value('v3')).else(client.get('cas')).commit();
  assert.is(lost.succeeded, false);
  assert.is(lost.responses[0]!.response_range!.kvs[0]!.value.toString(), 'v2');
  const byVersion = await client.if('cas', 'Version', '>', 1).then(client.delete().key('cas')).commit();
  assert.is(byVersion.succeeded, true);
  assert.is(await client.get('cas').string(), null);
});

test('revisions, history reads and compaction errors', async () => {
  const first = await client.put('hist').value('a');
  const rev = Number(first.header.revision);
  await client.put('hist').value('b');
  assert.is(await client.get('hist').revision(rev).string(), 'a');
  await client.kv.compact({ revision: String(rev + 1) });
  try {
    await client.get('hist').revision(rev).string();
    assert.unreachable('read below the compacted revision succeeded');
  } catch (err) {
    assert.instance(err, GRPCOutOfRangeError);
    assert.match((err as Error).message, 'required revision has been compacted');
  }
});

test('bad requests get etcd errors', async () => {
  try {
    await client.put('').value('x');
    assert.unreachable('empty key accepted');
  } catch (err) {
    assert.instance(err, GRPCInvalidArgumentError);
    assert.match((err as Error).message, 'key is not provided');
  }
  try {
    await client.kv.put({ key: Buffer.from('k'), value: Buffer.from('v'), lease: '999' });
    assert.unreachable('unknown lease accepted');
  } catch (err) {
    // etcd3 maps etcd's exact message to its typed error.
    assert.instance(err, EtcdLeaseInvalidError);
    assert.match((err as Error).message, 'requested lease not found');
  }
});

test('the etcd3 client moves large values both ways in parallel (HTTP/2 flow control with a real client)', async () => {
  const big = new Etcd3({ hosts: `127.0.0.1:${keyraft.clientPort}`, dialTimeout: 5000, grpcOptions: { 'grpc.max_receive_message_length': 64 << 20 } });
  try {
    // 60 values of 100-500 KB: requests span many DATA frames and stream windows; the prefix
    // range answers ~15 MB in one message, far past the client's initial windows.
    const random = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff));
    const values = Array.from({ length: 60 }, (_, i) => random(100_000 + ((i * 7919) % 400_000), i));
    const name = (i: number) => `large/${String(i).padStart(2, '0')}`;
    await Promise.all(values.map((v, i) => big.put(name(i)).value(v)));
    const back = await Promise.all(values.map((_, i) => big.get(name(i)).buffer()));
    back.forEach((b, i) => assert.ok(b !== null && b.equals(values[i]!), `value ${i} came back changed`));
    const all = await big.getAll().prefix('large/').buffers();
    assert.is(Object.keys(all).length, values.length);
    for (const [key, value] of Object.entries(all)) assert.ok(value.equals(values[Number(key.slice(6))]!), `${key} in the range changed`);
  } finally {
    big.close();
  }
});

test.run();
