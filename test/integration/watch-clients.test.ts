/**
 * Watch from real clients against a real keyraft member: the `etcd3` npm client's watch API (key
 * and prefix watchers, prev kv, resume from a revision, cancel), the JSON gateway's POST /v3/watch
 * side by side with etcd 3.4's gateway (same lines, ids aside), hostile input on a raw gRPC
 * stream (etcd's answers, no crash), and 10,000 watchers created and canceled without a leak
 * (the watcher gauges back to zero).
 */
import * as http2 from 'node:http2';
import { request } from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Etcd3, type IKeyValue } from 'etcd3';
import { decode, encode, messageType } from '../../src/proto/codec.js';
import { needEtcd } from '../etcd-binaries.js';
import { b64, httpRequest, killAll, normalizeIds, postJson, startEtcd, startKeyraft, startKeyraftWithEtcd3, type ServerProcess } from './harness.js';

const test = suite('watch-clients');
const needEtcdServer = needEtcd('integration/watch-clients', ['etcd']);
let keyraft: ServerProcess;
let client: Etcd3;

test.before(async () => {
  ({ keyraft, client } = await startKeyraftWithEtcd3());
});

test.after(async () => {
  client?.close();
  await killAll();
});

/** Resolves once `cond` holds, checking after every event the emitter gives (no clock). */
function waitFor(cond: () => boolean, emitter: { on(e: string, f: () => void): unknown }, events: string[]): Promise<void> {
  return new Promise((resolve) => {
    if (cond()) return resolve();
    for (const e of events) emitter.on(e, () => { if (cond()) resolve(); });
  });
}

test('etcd3: a key watcher sees puts and deletes with their revisions, and the previous value when asked', async () => {
  const watcher = await client.watch().key('w/key').withPreviousKV().create();
  const seen: string[] = [];
  watcher.on('put', (kv: IKeyValue, prev?: IKeyValue) => seen.push(`put ${kv.value.toString()} ${kv.mod_revision} prev=${prev?.value.toString() ?? '-'}`));
  watcher.on('delete', (kv: IKeyValue, prev?: IKeyValue) => seen.push(`delete ${kv.mod_revision} prev=${prev?.value.toString() ?? '-'}`));
  const r1 = await client.put('w/key').value('one');
  await client.put('w/other').value('x');
  const r2 = await client.put('w/key').value('two');
  const r3 = await client.delete().key('w/key');
  await waitFor(() => seen.length === 3, watcher, ['put', 'delete']);
  assert.equal(seen, [
    `put one ${r1.header.revision} prev=-`,
    `put two ${r2.header.revision} prev=one`,
    `delete ${r3.header.revision} prev=two`,
  ]);
  await watcher.cancel();
});

test('etcd3: a prefix watcher resumed from a revision replays history first, then live events', async () => {
  const first = await client.put('w/p/a').value('1');
  await client.put('w/p/b').value('2');
  await client.put('w/q').value('not mine');
  const watcher = await client.watch().prefix('w/p/').startRevision(first.header.revision).create();
  const seen: string[] = [];
  watcher.on('put', (kv: IKeyValue) => seen.push(`${kv.key.toString()}=${kv.value.toString()}`));
  await waitFor(() => seen.length === 2, watcher, ['put']);
  await client.put('w/p/c').value('3');
  await waitFor(() => seen.length === 3, watcher, ['put']);
  assert.equal(seen, ['w/p/a=1', 'w/p/b=2', 'w/p/c=3']);
  await watcher.cancel();
});

test('etcd3: cancel stops the events; the other watcher on the stream goes on', async () => {
  const a = await client.watch().key('w/c').create();
  const b = await client.watch().key('w/c').create();
  let aCount = 0;
  let bCount = 0;
  a.on('put', () => aCount++);
  b.on('put', () => bCount++);
  await client.put('w/c').value('1');
  await waitFor(() => aCount === 1 && bCount === 1, b, ['put']);
  await a.cancel();
  await client.put('w/c').value('2');
  await waitFor(() => bCount === 2, b, ['put']);
  assert.is(aCount, 1);
  await b.cancel();
});

// ---- raw gRPC stream ---------------------------------------------------------------------------

const watchRequestType = messageType('etcdserverpb.WatchRequest');
const watchResponseType = messageType('etcdserverpb.WatchResponse');

interface RawResponse { watch_id?: number; created?: boolean; canceled?: boolean; cancel_reason?: string; compact_revision?: number; header?: { revision?: number }; events?: Array<{ kv?: { key?: Buffer; mod_revision?: number } }> }

/** A Watch call on node:http2 with gRPC framing by hand: what a hostile client can send. */
class RawWatch {
  readonly responses: RawResponse[] = [];
  status: string | undefined;
  message: string | undefined;
  private pending = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  readonly session: http2.ClientHttp2Session;
  readonly stream: http2.ClientHttp2Stream;

  constructor(port: number, session?: http2.ClientHttp2Session) {
    this.session = session ?? http2.connect(`http://127.0.0.1:${port}`);
    this.session.on('error', () => {});
    this.stream = this.session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
    this.stream.on('error', () => {});
    this.stream.on('data', (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 5 && this.pending.length >= 5 + this.pending.readUInt32BE(1)) {
        const n = this.pending.readUInt32BE(1);
        this.responses.push(decode<RawResponse>(watchResponseType, this.pending.subarray(5, 5 + n)));
        this.pending = this.pending.subarray(5 + n);
      }
      this.wake();
    });
    this.stream.on('trailers', (t) => { this.status = String(t['grpc-status']); this.message = String(t['grpc-message'] ?? ''); this.wake(); });
    this.stream.on('response', (h) => { if (h['grpc-status'] !== undefined) { this.status = String(h['grpc-status']); this.message = String(h['grpc-message'] ?? ''); } this.wake(); });
    this.stream.on('close', () => { this.status ??= 'closed'; this.wake(); });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(request: object): void {
    this.sendRaw(encode(watchRequestType, request));
  }

  sendRaw(message: Uint8Array): void {
    const framed = Buffer.alloc(5 + message.length);
    framed.writeUInt32BE(message.length, 1);
    framed.set(message, 5);
    this.stream.write(framed);
  }

  async until(cond: () => boolean): Promise<void> {
    while (!cond()) {
      if (this.status !== undefined && !cond()) throw new Error(`stream ended (${this.status} ${this.message}) before the condition held: ${JSON.stringify(this.responses.map((r) => ({ ...r, header: undefined, events: r.events?.length })))}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  close(): void {
    this.stream.close(http2.constants.NGHTTP2_CANCEL);
    this.session.destroy();
  }
}

test('hostile: unknown cancel (no answer), duplicate id, empty key, range_end before key, future start_revision', async () => {
  const w = new RawWatch(keyraft.clientPort);
  try {
    w.send({ cancel_request: { watch_id: 999 } });
    w.send({ create_request: { key: Buffer.from('h/a'), watch_id: 5 } });
    w.send({ create_request: { key: Buffer.from('h/b'), watch_id: 5 } });
    w.send({ create_request: { key: Buffer.alloc(0) } });
    w.send({ create_request: { key: Buffer.from('h/z'), range_end: Buffer.from('h/a') } });
    w.send({ create_request: { key: Buffer.from('h/f'), start_revision: 1_000_000 } });
    w.send({});
    await w.until(() => w.responses.length >= 5);
    assert.equal(w.responses.map((r) => [r.watch_id ?? 0, r.created ?? false, r.canceled ?? false, r.cancel_reason ?? '']), [
      [5, true, false, ''],
      [-1, true, true, 'mvcc: duplicate watch ID provided on the WatchStream'],
      [0, true, false, ''],
      [-1, true, true, 'mvcc: watcher range is empty'],
      [1, true, false, ''],
    ]);
    // The stream still works: the future watcher sees nothing yet, the first one sees its key.
    await client.put('h/f').value('early');
    await client.put('h/a').value('x');
    await w.until(() => w.responses.length >= 6);
    assert.equal(w.responses[5]!.events!.map((e) => e.kv!.key!.toString()), ['h/a']);
    assert.is(w.responses[5]!.watch_id, 5);
  } finally {
    w.close();
  }
});

test('hostile: garbage on the stream ends that call with an error status, its watchers go; the member serves on', async () => {
  // Streams of the tests before close asynchronously: count from a settled gauge.
  const streamsBefore = await settledGauge('etcd_debugging_mvcc_watch_stream_total');
  const w = new RawWatch(keyraft.clientPort);
  w.send({ create_request: { key: Buffer.from('g/x') } });
  await w.until(() => w.responses.length === 1);
  assert.is(await gauge('etcd_debugging_mvcc_watch_stream_total'), streamsBefore + 1);
  try {
    w.sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34]));
    await w.until(() => w.status !== undefined);
    assert.ok(w.status !== '0', `status ${w.status}`);
    assert.is(await gauge('etcd_debugging_mvcc_watch_stream_total'), streamsBefore);
  } finally {
    w.close();
  }
  assert.is(await client.get('h/a').string(), 'x');
});

test('10,000 watchers on one member: all notified, and canceling them leaves no watcher behind', async () => {
  const watchersBefore = await gauge('etcd_debugging_mvcc_watcher_total');
  const streamsBefore = await gauge('etcd_debugging_mvcc_watch_stream_total');
  const w = new RawWatch(keyraft.clientPort);
  try {
    for (let i = 0; i < 10_000; i++) w.send({ create_request: { key: Buffer.from('many/'), range_end: Buffer.from('many0') } });
    await w.until(() => w.responses.filter((r) => r.created).length === 10_000);
    assert.is(await gauge('etcd_debugging_mvcc_watcher_total'), watchersBefore + 10_000);
    await client.put('many/k').value('v');
    await w.until(() => w.responses.filter((r) => (r.events ?? []).length > 0).length === 10_000);
    for (let i = 0; i < 10_000; i++) w.send({ cancel_request: { watch_id: i } });
    await w.until(() => w.responses.filter((r) => r.canceled).length === 10_000);
    assert.is(await gauge('etcd_debugging_mvcc_watcher_total'), watchersBefore);
  } finally {
    w.close();
  }
  // The stream itself goes when the client goes.
  for (let i = 0; i < 1000 && (await gauge('etcd_debugging_mvcc_watch_stream_total')) > streamsBefore; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(await gauge('etcd_debugging_mvcc_watch_stream_total'), streamsBefore);
});

/** The gauge once two reads 200 ms apart agree (for up to 10 s). */
async function settledGauge(name: string): Promise<number> {
  let last = await gauge(name);
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const now = await gauge(name);
    if (now === last) return now;
    last = now;
  }
  return last;
}

async function gauge(name: string): Promise<number> {
  const res = await httpRequest(keyraft.clientPort, 'GET', '/metrics');
  const line = res.body.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `no ${name} in /metrics`);
  return Number(line!.split(' ')[1]);
}

// ---- gateway ------------------------------------------------------------------------------------

/** POST /v3/watch with `body` (several JSON requests), read lines until `count` arrived. */
function gatewayWatch(port: number, body: string, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v3/watch', headers: { 'content-type': 'application/json' }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
        const lines = text.split('\n').filter((l) => l.length > 0);
        if (lines.length >= count) {
          req.destroy();
          resolve(lines.slice(0, count));
        }
      });
      res.on('end', () => resolve(text.split('\n').filter((l) => l.length > 0)));
    });
    req.on('error', (err) => { if (!req.destroyed) reject(err); });
    req.write(body);
  });
}

needEtcdServer.test(test, 'gateway: POST /v3/watch streams the same {"result"} lines as etcd 3.4 (create, history with prev_kv, progress, cancel)', async () => {
  const etcd = await startEtcd();
  const fresh = await startKeyraft();
  for (const server of [fresh, etcd]) {
    await postJson(server.clientPort, '/v3/kv/put', { key: b64('g'), value: b64('1') });
    await postJson(server.clientPort, '/v3/kv/put', { key: b64('g'), value: b64('2') });
    await postJson(server.clientPort, '/v3/kv/deleterange', { key: b64('g') });
  }
  const body = [
    { create_request: { key: b64('g'), start_revision: '2', prev_kv: true, watch_id: '3' } },
    { create_request: { key: b64('z'), range_end: b64('a') } },
  ].map((r) => JSON.stringify(r)).join('\n');
  const [k, e] = await Promise.all([gatewayWatch(fresh.clientPort, body, 3), gatewayWatch(etcd.clientPort, body, 3)]);
  assert.equal(k.map(normalizeIds), e.map(normalizeIds));
  const body2 = [{ create_request: { key: b64('g'), watch_id: '7' } }, { progress_request: {} }, { cancel_request: { watch_id: '7' } }].map((r) => JSON.stringify(r)).join('\n');
  const [k2, e2] = await Promise.all([gatewayWatch(fresh.clientPort, body2, 3), gatewayWatch(etcd.clientPort, body2, 3)]);
  assert.equal(k2.map(normalizeIds), e2.map(normalizeIds));
});

test.run();
