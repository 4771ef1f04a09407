/**
 * Hostile input on the client port (seeded, reproducible): random bytes, truncated and malformed
 * HTTP/1.1 requests, HTTP/2 prefaces followed by garbage, and mutated JSON bodies. The server
 * must stay up, answer every well-formed HTTP request with a 2xx/4xx (never a 5xx: that would be an
 * unhandled failure in our parsing), and keep serving both protocols afterwards.
 */
import * as grpc from '@grpc/grpc-js';
import { connect } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KvClient } from './grpc-clients.js';
import { b64, httpRequest, startWithMemoryMember, type Running } from './helpers.js';
import { rng } from '../seeded-random.js';

let running: Running;

test.before(async () => {
  running = await startWithMemoryMember();
});

test.after(async () => {
  await running.server.close();
});

/** Sends raw bytes, half-closes, and resolves when the server closes or answers (whatever it says). */
function sendRaw(port: number, bytes: Buffer, endAfterWrite: boolean): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (d) => {
      received += d.toString('latin1');
      // An answer came back: enough for this probe.
      if (!endAfterWrite) socket.destroy();
    });
    socket.on('error', () => resolve(received));
    socket.on('close', () => resolve(received));
    socket.write(bytes, () => {
      if (endAfterWrite) socket.end();
      // A probe the server keeps waiting on (an incomplete request) is ended by us after the write.
      else setImmediate(() => socket.end());
    });
  });
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

test('random bytes, truncated HTTP/1.1 and broken HTTP/2 prefaces do not take the server down', async () => {
  const rand = rng(7);
  const port = running.server.port;
  const valid = Buffer.from(`POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"key":"${b64('k')}","value":"${b64('v')}"}`);
  const probes: Buffer[] = [];
  for (let i = 0; i < 60; i++) {
    const random = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)));
    probes.push(random);
    probes.push(valid.subarray(0, Math.floor(rand() * valid.length)));
    probes.push(Buffer.concat([PREFACE.subarray(0, Math.floor(rand() * PREFACE.length)), random]));
    probes.push(Buffer.concat([PREFACE, random]));
  }
  probes.push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n'));
  probes.push(Buffer.from('POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'));
  probes.push(Buffer.from(`GET /${'a'.repeat(20000)} HTTP/1.1\r\nHost: x\r\n\r\n`));
  for (let i = 0; i < probes.length; i += 16) {
    await Promise.all(probes.slice(i, i + 16).map((p, j) => sendRaw(port, p, (i + j) % 2 === 0)));
  }
  const health = await httpRequest(port, 'GET', '/health');
  assert.is(health.status, 200);
});

test('mutated JSON bodies get 2xx/4xx JSON answers, never a 5xx', async () => {
  const rand = rng(11);
  const port = running.server.port;
  const seeds: Array<[string, string]> = [
    ['/v3/kv/put', JSON.stringify({ key: b64('fuzz'), value: b64('v'), lease: '0', prev_kv: true })],
    ['/v3/kv/range', JSON.stringify({ key: b64('a'), range_end: b64('z'), limit: 5, sort_order: 'DESCEND', sort_target: 'MOD' })],
    ['/v3/kv/txn', JSON.stringify({
      compare: [{ key: b64('a'), result: 'EQUAL', target: 'VERSION', version: '0' }],
      success: [{ request_put: { key: b64('t1'), value: b64('x') } }, { request_txn: { success: [{ request_range: { key: b64('t1') } }] } }],
      failure: [{ request_delete_range: { key: b64('t2'), range_end: b64('t3') } }],
    })],
    ['/v3/kv/deleterange', JSON.stringify({ key: b64('fuzz'), prev_kv: true })],
  ];
  const alphabet = '{}[]":,0123456789-.eEtrufalsn\\ \u0000\u00ffABCxyz=+/';
  const statuses = new Map<number, number>();
  for (let i = 0; i < 400; i++) {
    const [path, text] = seeds[i % seeds.length]!;
    const chars = [...text];
    const edits = 1 + Math.floor(rand() * 4);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(rand() * chars.length);
      const op = rand();
      const c = alphabet[Math.floor(rand() * alphabet.length)]!;
      if (op < 0.4) chars[at] = c;
      else if (op < 0.7) chars.splice(at, 1);
      else chars.splice(at, 0, c);
    }
    const reply = await httpRequest(port, 'POST', path, chars.join(''));
    statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
    assert.ok(reply.status < 500, `${reply.status} for ${chars.join('')}: ${reply.body}`);
    const json = JSON.parse(reply.body);
    if (reply.status !== 200) {
      assert.type(json.error, 'string');
      assert.is(json.message, json.error);
      assert.type(json.code, 'number');
    }
  }
  // The mutations reach both outcomes: some bodies stay valid, most are refused.
  assert.ok((statuses.get(200) ?? 0) > 0, JSON.stringify([...statuses]));
  assert.ok((statuses.get(400) ?? 0) > 0, JSON.stringify([...statuses]));
});

test('after the abuse, gRPC and the gateway both still serve', async () => {
  const kv = new KvClient(`127.0.0.1:${running.server.port}`, grpc.credentials.createInsecure());
  try {
    const res = await new Promise<any>((resolve, reject) => {
      (kv as any).Put({ key: Buffer.from('after'), value: Buffer.from('ok') }, (err: Error | null, r: unknown) => (err ? reject(err) : resolve(r)));
    });
    assert.ok(res.header.revision > 1);
    const got = JSON.parse((await httpRequest(running.server.port, 'GET', '/v3/kv/range?key=after')).body);
    assert.is(Buffer.from(got.kvs[0].value, 'base64').toString(), 'ok');
  } finally {
    kv.close();
  }
});

test.run();
