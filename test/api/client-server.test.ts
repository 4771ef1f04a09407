/**
 * The one client port against a MemoryMember: the JSON gateway (round trips and every error
 * path), gRPC through @grpc/grpc-js clients, UNIMPLEMENTED for what is not served, both protocols
 * at once, and the etcd3 npm client.
 */
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KeyraftError } from '../../src/platform/errors.js';
import { ClusterClient, HealthClient, HealthStatus, KvClient, MaintenanceClient, unary } from './grpc-clients.js';
import { b64, httpRequest, identity, rawClient, startWithMemoryMember, type Running } from './helpers.js';

let running: Running;
let port: number;

test.before(async () => {
  running = await startWithMemoryMember({ maxTxnOps: 4, maxRequestBytes: 4096 });
  port = running.server.port;
});

test.after(async () => {
  await running.server.close();
});

const post = async (path: string, body: unknown) => {
  const reply = await httpRequest(port, 'POST', path, typeof body === 'string' ? body : JSON.stringify(body));
  return { ...reply, json: reply.body.startsWith('{') ? JSON.parse(reply.body) : undefined };
};

test('gateway: put, range, txn, deleterange, compaction round trips', async () => {
  const put = await post('/v3/kv/put', { key: b64('a'), value: b64('1') });
  assert.is(put.status, 200);
  assert.is(put.headers['content-type'], 'application/json');
  assert.is(put.body, `{"header":{"cluster_id":"${running.member.clusterId}","member_id":"${running.member.memberId}","revision":"2","raft_term":"2"}}`);
  const again = await post('/v3/kv/put', { key: b64('a'), value: b64('2'), prevKv: true });
  assert.is(Buffer.from(again.json.prev_kv.value, 'base64').toString(), '1');
  const range = await post('/v3/kv/range', { key: b64('a') });
  assert.equal(range.json.kvs, [{ key: b64('a'), create_revision: '2', mod_revision: '3', version: '2', value: b64('2') }]);
  assert.is(range.json.count, '1');
  const txn = await post('/v3/kv/txn', {
    compare: [{ key: b64('a'), target: 'VALUE', result: 'EQUAL', value: b64('2') }],
    success: [{ request_put: { key: b64('b'), value: b64('x') } }, { request_range: { key: b64('a') } }],
  });
  assert.is(txn.json.succeeded, true);
  assert.is(txn.json.responses.length, 2);
  assert.ok(txn.json.responses[0].response_put);
  assert.is(txn.json.responses[1].response_range.count, '1');
  const del = await post('/v3/kv/deleterange', { key: b64('a'), range_end: b64('c'), prev_kv: true });
  assert.is(del.json.deleted, '2');
  assert.is(del.json.prev_kvs.length, 2);
  const compact = await post('/v3/kv/compaction', { revision: '3' });
  assert.is(compact.status, 200);
  const members = await post('/v3/cluster/member/list', {});
  assert.is(members.json.members[0].name, 'default');
  assert.is(members.json.members[0].ID, String(running.member.memberId));
  const status = await post('/v3/maintenance/status', {});
  assert.is(status.json.version, '3.4.23');
  assert.is(status.json.leader, String(running.member.memberId));
});

test('gateway: GET /v3/kv/range?key= answers as the POST does', async () => {
  await post('/v3/kv/put', { key: b64('plain/key'), value: b64('hello') });
  await post('/v3/kv/put', { key: b64('plain/other'), value: b64('x') });
  const viaGet = await httpRequest(port, 'GET', '/v3/kv/range?key=plain/key');
  const viaPost = await post('/v3/kv/range', { key: b64('plain/key') });
  assert.is(viaGet.status, 200);
  assert.is(viaGet.body, viaPost.body);
  const prefix = JSON.parse((await httpRequest(port, 'GET', '/v3/kv/range?key=plain/&prefix=true&limit=1')).body);
  assert.is(prefix.count, '2');
  assert.is(prefix.more, true);
  assert.is(prefix.kvs.length, 1);
  const bad = await httpRequest(port, 'GET', '/v3/kv/range?key=a&limit=ten');
  assert.is(bad.status, 400);
  assert.is(JSON.parse(bad.body).code, 3);
  const noKey = await httpRequest(port, 'GET', '/v3/kv/range');
  assert.is(JSON.parse(noKey.body).error, 'etcdserver: key is not provided');
});

test('gateway error paths: bad JSON, bad base64, empty key, too many ops, duplicate key, sizes', async () => {
  const cases: Array<[string, string, number, string, number]> = [
    ['/v3/kv/range', '{"key": "YQ=="', 400, 'unexpected EOF', 3],
    ['/v3/kv/range', '{"key": "@@@not base64"}', 400, 'illegal base64 data at input byte 0', 3],
    ['/v3/kv/put', '{"value":"eA=="}', 400, 'etcdserver: key is not provided', 3],
    ['/v3/kv/range', '', 400, 'etcdserver: key is not provided', 3],
    ['/v3/kv/txn', JSON.stringify({ success: [1, 2, 3, 4, 5].map((i) => ({ request_put: { key: b64(`k${i}`) } })) }), 400, 'etcdserver: too many operations in txn request', 3],
    ['/v3/kv/txn', JSON.stringify({ success: [1, 2].map(() => ({ request_put: { key: b64('same') } })) }), 400, 'etcdserver: duplicate key given in txn request', 3],
    ['/v3/kv/put', JSON.stringify({ key: b64('big'), value: b64('x'.repeat(8192)) }), 400, 'etcdserver: request is too large', 3],
    ['/v3/kv/put', JSON.stringify({ key: b64('big'), value: b64('x'.repeat(600_000)) }), 429, 'grpc: received message larger than max (600009 vs. 528384)', 8],
    ['/v3/kv/range', JSON.stringify({ key: b64('a'), revision: 1000 }), 400, 'etcdserver: mvcc: required revision is a future revision', 11],
  ];
  for (const [path, body, status, message, code] of cases) {
    const reply = await post(path, body);
    assert.is(reply.status, status, `${path} ${body.slice(0, 80)}`);
    assert.is(reply.body, `{"error":${JSON.stringify(message)},"message":${JSON.stringify(message)},"code":${code}}`);
  }
  // A range is never proposed, so only the gRPC limit applies to it (as in etcd).
  const bigRange = await post('/v3/kv/range', { key: b64('k'.repeat(8192)) });
  assert.is(bigRange.status, 200);
});

test('gateway: member errors map through the error table; unexpected ones are INTERNAL', async () => {
  running.member.failNext = new KeyraftError('NoLeader');
  const noLeader = await post('/v3/kv/put', { key: b64('x'), value: b64('y') });
  assert.is(noLeader.status, 503);
  assert.equal(noLeader.json, { error: 'etcdserver: no leader', message: 'etcdserver: no leader', code: 14 });
  running.member.failNext = new TypeError('boom');
  const internal = await post('/v3/kv/range', { key: b64('x') });
  assert.is(internal.status, 500);
  assert.is(internal.json.code, 13);
});

test('gateway: unknown paths, wrong methods, oversized bodies, OPTIONS', async () => {
  const unknown = await httpRequest(port, 'POST', '/v3/kv/nothing', '{}');
  assert.is(unknown.status, 404);
  assert.is(unknown.body, 'Not Found\n');
  const outside = await httpRequest(port, 'POST', '/healthz', '{}');
  assert.is(outside.status, 404);
  assert.is(outside.body, '404 page not found\n');
  const beta = await post('/v3beta/kv/range', { key: b64('a') });
  assert.is(beta.status, 200);
  assert.ok(beta.json.header);
  const wrong = await httpRequest(port, 'PUT', '/v3/kv/range', '{}');
  assert.is(wrong.status, 405);
  assert.is(wrong.body, 'Method Not Allowed\n');
  const getPut = await httpRequest(port, 'GET', '/v3/kv/put');
  assert.is(getPut.status, 405);
  const options = await httpRequest(port, 'OPTIONS', '/v3/kv/put');
  assert.is(options.status, 200);
  assert.is(options.headers['access-control-allow-origin'], '*');
  // Larger than any acceptable request: refused while it streams in.
  const huge = await httpRequest(port, 'POST', '/v3/kv/put', Buffer.alloc(3 * 1024 * 1024, 0x20), new (await import('node:http')).Agent());
  assert.is(huge.status, 413);
  assert.is(JSON.parse(huge.body).code, 8);
  // The server is still there.
  assert.is((await httpRequest(port, 'GET', '/health')).status, 200);
});

test('gateway: etcd paths keyraft does not serve yet answer UNIMPLEMENTED (501), not 404', async () => {
  const userAdd = await post('/v3/auth/user/add', { name: 'u' });
  assert.is(userAdd.status, 501);
  assert.equal(userAdd.json, { error: 'unknown service etcdserverpb.Auth', message: 'unknown service etcdserverpb.Auth', code: 12 });
  assert.is((await post('/v3/auth/authenticate', {})).json.error, 'unknown service etcdserverpb.Auth');
  assert.is((await post('/v3/watch', {})).status, 501);
});

test('health, version, metrics', async () => {
  const health = await httpRequest(port, 'GET', '/health');
  assert.is(health.body, '{"health":"true"}');
  running.member.healthy = false;
  const sick = await httpRequest(port, 'GET', '/health');
  running.member.healthy = true;
  assert.is(sick.status, 503);
  assert.is(sick.body, '{"health":"false"}');
  const version = JSON.parse((await httpRequest(port, 'GET', '/version')).body);
  assert.is(version.etcdserver, '3.4.23');
  assert.is(version.etcdcluster, '3.4.0');
  assert.match(version.keyraft, /^\d+\.\d+\.\d+/);
  running.registry.registerMetric(new (await import('prom-client')).Counter({ name: 'api_test_total', help: 'test', registers: [] }));
  const metrics = await httpRequest(port, 'GET', '/metrics');
  assert.is(metrics.status, 200);
  assert.match(metrics.body, '# TYPE api_test_total counter');
  // etcd's gRPC request counters, gateway requests included (earlier tests made some).
  assert.match(metrics.body, /grpc_server_handled_total\{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="OK"\} [1-9]/);
  assert.match(metrics.body, /grpc_server_handled_total\{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Txn",grpc_code="InvalidArgument"\} [1-9]/);
  assert.match(metrics.body, /grpc_server_started_total\{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Range"\} [1-9]/);
});

test('gRPC: KV, Cluster.MemberList and Maintenance.Status on the same port', async () => {
  const kv = new KvClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const cluster = new ClusterClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const maintenance = new MaintenanceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const put = await unary<any>(kv, 'Put', { key: Buffer.from('g'), value: Buffer.from('rpc') });
    assert.is(put.header.cluster_id, running.member.clusterId);
    const range = await unary<any>(kv, 'Range', { key: Buffer.from('g') });
    assert.equal(range.kvs[0].value, Buffer.from('rpc'));
    const txn = await unary<any>(kv, 'Txn', { success: [{ request_delete_range: { key: Buffer.from('g') } }] });
    assert.is(txn.responses[0].response_delete_range.deleted, 1);
    const members = await unary<any>(cluster, 'MemberList', {});
    assert.is(members.members[0].ID, running.member.memberId);
    const status = await unary<any>(maintenance, 'Status', {});
    assert.is(status.version, '3.4.23');
    const err = await unary<any>(kv, 'Put', { value: Buffer.from('x') }).catch((e: grpc.ServiceError) => e);
    assert.is(err.code, grpc.status.INVALID_ARGUMENT);
    assert.is(err.details, 'etcdserver: key is not provided');
    const dup = await unary<any>(kv, 'Txn', { success: [{ request_put: { key: Buffer.from('d') } }, { request_put: { key: Buffer.from('d') } }] }).catch((e) => e);
    assert.is(dup.details, 'etcdserver: duplicate key given in txn request');
    const tooLarge = await unary<any>(kv, 'Put', { key: Buffer.from('k'), value: Buffer.alloc(4075) }).catch((e) => e);
    assert.is(tooLarge.details, 'etcdserver: request is too large');
    assert.ok(await unary<any>(kv, 'Put', { key: Buffer.from('k'), value: Buffer.alloc(4074) }));
    const overGrpcLimit = await unary<any>(kv, 'Put', { key: Buffer.from('k'), value: Buffer.alloc(600_000) }).catch((e) => e);
    assert.is(overGrpcLimit.code, grpc.status.RESOURCE_EXHAUSTED);
  } finally {
    kv.close();
    cluster.close();
    maintenance.close();
  }
});

test('gRPC: every method not served answers UNIMPLEMENTED at once, streaming ones too', async () => {
  const client = rawClient(port);
  // A deadline far beyond a normal answer: a hang shows up as DEADLINE_EXCEEDED, not as a stuck test.
  const deadline = () => Date.now() + 10_000;
  const unaryCode = (path: string) => new Promise<number>((resolve) => {
    client.makeUnaryRequest(path, identity, identity, Buffer.alloc(0), { deadline: deadline() }, (err) => resolve(err ? err.code : 0));
  });
  const streamCode = (call: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer>) => new Promise<number>((resolve) => {
    call.on('data', () => undefined);
    call.on('error', (err: grpc.ServiceError) => resolve(err.code));
    call.on('end', () => resolve(0));
  });
  try {
    for (const path of ['/etcdserverpb.Auth/AuthEnable', '/etcdserverpb.Auth/Authenticate',
      '/etcdserverpb.Maintenance/HashKV', '/etcdserverpb.Maintenance/Defragment', '/etcdserverpb.NoSuch/Thing', '/foo.Bar/Baz']) {
      assert.is(await unaryCode(path), grpc.status.UNIMPLEMENTED, path);
    }
    for (const path of ['/etcdserverpb.Watch/Watch']) {
      const call = client.makeBidiStreamRequest(path, identity, identity, { deadline: deadline() });
      call.write(Buffer.from([0x0a, 0x00]));
      assert.is(await streamCode(call), grpc.status.UNIMPLEMENTED, path);
    }
    // Maintenance.Snapshot, etcd's one server-stream method, is served (test/snapshot/etcd-snapshot.test.ts).
  } finally {
    client.close();
  }
});

test('gRPC health service: SERVING while the member has a leader, NOT_FOUND for named services', async () => {
  const health = new HealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    assert.is(await unary<number>(health, 'Check', {}), HealthStatus.SERVING);
    running.member.healthy = false;
    assert.is(await unary<number>(health, 'Check', {}), HealthStatus.NOT_SERVING);
    running.member.healthy = true;
    const named = await unary<number>(health, 'Check', { service: 'etcdserverpb.KV' }).catch((e: grpc.ServiceError) => e);
    assert.is((named as grpc.ServiceError).code, grpc.status.NOT_FOUND);
  } finally {
    running.member.healthy = true;
    health.close();
  }
});

test('HTTP/1.1 and gRPC at the same time on the one port', async () => {
  const kv = new KvClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      jobs.push(unary(kv, 'Put', { key: Buffer.from(`both/g${i}`), value: Buffer.from('g') }));
      jobs.push(httpRequest(port, 'POST', '/v3/kv/put', JSON.stringify({ key: b64(`both/h${i}`), value: b64('h') })).then((r) => assert.is(r.status, 200)));
    }
    await Promise.all(jobs);
    const all = JSON.parse((await httpRequest(port, 'GET', '/v3/kv/range?key=both/&prefix=true&count_only=true')).body);
    assert.is(all.count, '100');
  } finally {
    kv.close();
  }
});

test('the etcd3 npm client works against the one port', async () => {
  const client = new Etcd3({ hosts: `http://127.0.0.1:${port}` });
  try {
    await client.put('etcd3/a').value('one');
    await client.put('etcd3/b').value('two');
    assert.is(await client.get('etcd3/a').string(), 'one');
    assert.equal(await client.getAll().prefix('etcd3/').strings(), { 'etcd3/a': 'one', 'etcd3/b': 'two' });
    const txn = await client.if('etcd3/a', 'Value', '==', 'one').then(client.put('etcd3/c').value('three')).else(client.delete().key('etcd3/a')).commit();
    assert.is(txn.succeeded, true);
    assert.is(await client.get('etcd3/c').string(), 'three');
    assert.is(await client.getAll().prefix('etcd3/').count(), 3);
    await client.delete().key('etcd3/b');
    assert.is(await client.get('etcd3/b').string(), null);
    const members = await client.cluster.memberList({});
    assert.is(members.members[0]!.name, 'default');
  } finally {
    client.close();
  }
});

test.run();
