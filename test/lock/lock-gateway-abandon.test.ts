/**
 * A Lock called through the JSON gateway (/v3/lock/lock) whose HTTP client goes away while it
 * waits gives up its place: its key is deleted and the queue moves on, as on etcd 3.4, whose
 * gateway's request context is cancelled by Go's net/http when the client's connection ends.
 * Both of our HTTP/1.1 paths: the fast path (a Content-Length body) and node:http (a chunked body,
 * which the fast path hands over).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { b64, killAll, postJson, startKeyraft, type ServerProcess } from '../integration/harness.js';

const test = suite('lock-gateway-abandon');
let keyraft: ServerProcess;

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never: ${what}`);
}

async function keysUnder(prefix: string): Promise<string[]> {
  const end = Buffer.from(prefix);
  end[end.length - 1]!++;
  const r = await postJson(keyraft.clientPort, '/v3/kv/range', { key: b64(prefix), range_end: end.toString('base64'), keys_only: true });
  return (r.json.kvs ?? []).map((kv: { key: string }) => Buffer.from(kv.key, 'base64').toString());
}

/** POST /v3/lock/lock that is never read: the caller destroys it. Chunked when `chunked`. */
function waitingLock(name: string, lease: string, chunked: boolean): ClientRequest {
  const body = JSON.stringify({ name: b64(name), lease });
  const req = httpRequest({
    host: '127.0.0.1', port: keyraft.clientPort, path: '/v3/lock/lock', method: 'POST',
    headers: chunked ? { 'Transfer-Encoding': 'chunked' } : { 'Content-Length': String(Buffer.byteLength(body)) },
  });
  req.on('error', () => undefined);
  req.end(body);
  return req;
}

test.before(async () => {
  keyraft = await startKeyraft();
});

test.after(async () => {
  await killAll();
});

for (const chunked of [false, true]) {
  test(`a gateway Lock whose client disconnects while waiting deletes its key (${chunked ? 'node:http, chunked body' : 'fast path'})`, async () => {
    const name = chunked ? 'gw-chunked' : 'gw-fast';
    const grant = async () => (await postJson(keyraft.clientPort, '/v3/lease/grant', { TTL: 60 })).json.ID as string;
    const holderLease = await grant();
    const held = await postJson(keyraft.clientPort, '/v3/lock/lock', { name: b64(name), lease: holderLease });
    assert.is(held.status, 200);
    const waiterLease = await grant();
    const waiterKey = `${name}/${BigInt(waiterLease).toString(16)}`;
    const waiter = waitingLock(name, waiterLease, chunked);
    await eventually('the waiter queued its key', async () => (await keysUnder(`${name}/`)).includes(waiterKey));
    waiter.destroy();
    await eventually('the abandoned waiter\'s key is deleted', async () => !(await keysUnder(`${name}/`)).includes(waiterKey));
    // Only the key went: the lease lives on, and the holder still holds.
    const ttl = await postJson(keyraft.clientPort, '/v3/lease/timetolive', { ID: waiterLease });
    assert.ok(Number(ttl.json.TTL) > 0, ttl.raw);
    assert.equal(await keysUnder(`${name}/`), [Buffer.from(held.json.key, 'base64').toString()]);
    // The queue moves on: a next waiter gets the lock once the holder unlocks.
    const nextLease = await grant();
    const next = postJson(keyraft.clientPort, '/v3/lock/lock', { name: b64(name), lease: nextLease });
    await eventually('the next waiter queued', async () => (await keysUnder(`${name}/`)).length === 2);
    await postJson(keyraft.clientPort, '/v3/lock/unlock', { key: held.json.key });
    const nextHeld = await next;
    assert.is(Buffer.from(nextHeld.json.key, 'base64').toString(), `${name}/${BigInt(nextLease).toString(16)}`);
  });
}

test.run();
