/**
 * Bounds on client connections themselves (issue 9's open items): the write-stall deadline (a client
 * that stops reading is closed once its queued replies stop moving, over HTTP/2 and HTTP/1.1, the
 * fast path and node:http alike; the bytes held for it are released), and the member-wide cap on
 * open connections (closed at accept, counted). Servers here run over a MemoryMember with the
 * deadline shortened; the clients are raw sockets, since a real client that stops reading is what
 * is under test.
 */
import { connect, type Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeWithoutIndexing } from '../../src/http/hpack.js';
import { encode, messageType } from '../../src/proto/codec.js';
import { probe, resetProbe, tableWithEcho } from './echo-methods.js';
import { b64, httpRequest, startWithMemoryMember, type Running } from './helpers.js';
import {
  PREFACE, SETTINGS_INITIAL_WINDOW_SIZE, WINDOW_UPDATE, dataFrame, frame, grpcMessage, headersFrame, rangeType, requestHeaders, settingsFrame,
} from './http2-raw-client.js';

const STALL_MS = 600;
const VALUE_BYTES = 1024 * 1024;
const VALUES = 12;

let running: Running;
const sockets = new Set<Socket>();

test.before(async () => {
  running = await startWithMemoryMember({}, undefined, { http2Timing: { writeStallMs: STALL_MS }, clientConnectionsMax: 50, methods: tableWithEcho });
  // 12 MB under big/: one Range (or its JSON, 16 MB) is more than the socket buffers take.
  const value = Buffer.alloc(VALUE_BYTES, 'v');
  for (let i = 0; i < VALUES; i++) {
    const reply = await httpRequest(running.server.port, 'POST', '/v3/kv/put', JSON.stringify({ key: b64(`big/${String(i).padStart(2, '0')}`), value: b64(value) }));
    assert.is(reply.status, 200);
  }
});

test.after(async () => {
  for (const s of sockets) s.destroy();
  await running.server.close();
});

test.after.each(() => {
  for (const s of sockets) s.destroy();
  sockets.clear();
});

/** One sample of a metric (the first matching line of the exposition text), or 0 when absent. */
async function metric(name: string, labels = ''): Promise<number> {
  const text = await running.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const stalls = (): Promise<number> => metric('keyraft_client_connections_closed_total', '{reason="write_stall"}');

/** A socket that writes `bytes` and never reads; resolves once the server has closed it. */
function neverReading(bytes: Buffer): { socket: Socket; closed: Promise<void> } {
  const socket = connect(running.server.port, '127.0.0.1');
  sockets.add(socket);
  socket.pause();
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(bytes);
  return { socket, closed };
}

const bigRange = encode(rangeType, { key: Buffer.from('big/'), range_end: Buffer.from('big0') });

/**
 * The server closed a connection for its stall: the count went up by one, the connection is gone
 * (its reset reaches the client once it reads again), and no reply bytes are held any more.
 */
async function assertClosedForStall(before: number, c: { socket: Socket; closed: Promise<void> }): Promise<void> {
  await waitFor('a write_stall closure', async () => (await stalls()) === before + 1);
  // Reading again drains what the kernel holds and then meets the server's close.
  c.socket.resume();
  await c.closed;
  await waitFor('the queued reply bytes to be released', async () => (await metric('keyraft_client_reply_bytes_queued')) === 0);
}

test('HTTP/2: a client with open windows that stops reading a 12 MB Range reply is closed after the stall deadline; its bytes are released', async () => {
  const before = await stalls();
  const increment = Buffer.alloc(4);
  increment.writeUInt32BE(2 ** 31 - 1 - 65_535, 0);
  const c = neverReading(Buffer.concat([
    PREFACE, settingsFrame([[SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]), frame(WINDOW_UPDATE, 0, 0, increment),
    headersFrame(1, encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Range'))), dataFrame(1, grpcMessage(bigRange), { endStream: true }),
  ]));
  // While it is open, the member holds the part of the reply the kernel did not take.
  await waitFor('reply bytes queued for the stalled client', async () => (await metric('keyraft_client_reply_bytes_queued')) > 0);
  await assertClosedForStall(before, c);
});

test('HTTP/2: a client that never opens its windows (default 64 KiB) holds the rest of its reply only until the stall deadline', async () => {
  const before = await stalls();
  const c = neverReading(Buffer.concat([
    PREFACE, settingsFrame(),
    headersFrame(1, encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Range'))), dataFrame(1, grpcMessage(bigRange), { endStream: true }),
  ]));
  await assertClosedForStall(before, c);
});

test('a streaming call (Echo/Chat flooding, as a watch with many events) whose client never reads: the connection is closed, the call canceled, its output released', async () => {
  resetProbe();
  const before = await stalls();
  const putType = messageType('etcdserverpb.PutRequest');
  const flood = grpcMessage(encode(putType, { key: Buffer.from('flood'), value: Buffer.from('100000') }));
  const c = neverReading(Buffer.concat([
    PREFACE, settingsFrame(),
    headersFrame(1, encodeWithoutIndexing(requestHeaders('/etcdserverpb.Echo/Chat'))), dataFrame(1, flood),
  ]));
  // The producer filled the call's output to its high-water mark and waits for a drain that never comes.
  await waitFor('the flood to wait for a drain', async () => probe.sendFalse > 0);
  await assertClosedForStall(before, c);
  assert.is(probe.cancels, 1, 'the handler heard the call end');
});

const rangeJson = JSON.stringify({ key: b64('big/'), range_end: b64('big0') });

test('HTTP/1.1 fast path: a client that stops reading a 16 MB JSON range reply is closed after the stall deadline', async () => {
  const before = await stalls();
  const c = neverReading(Buffer.from(`POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: ${rangeJson.length}\r\n\r\n${rangeJson}`, 'latin1'));
  await assertClosedForStall(before, c);
});

test('HTTP/1.1 via node:http (a chunked body): a client that stops reading is closed after the stall deadline', async () => {
  const before = await stalls();
  const chunked = `${rangeJson.length.toString(16)}\r\n${rangeJson}\r\n0\r\n\r\n`;
  const c = neverReading(Buffer.from(`POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`, 'latin1'));
  await assertClosedForStall(before, c);
});

test('a slow reader whose pauses are each shorter than the stall deadline gets its whole reply (an idle bound, not a total)', async () => {
  const before = await stalls();
  const socket = connect(running.server.port, '127.0.0.1');
  sockets.add(socket);
  socket.pause();
  let received = 0;
  let expected = -1;
  let head = '';
  socket.on('data', (chunk: Buffer) => {
    if (expected < 0) {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      expected = Number(/content-length: (\d+)/i.exec(head.slice(0, end))![1]);
      received = head.length - end - 4;
      return;
    }
    received += chunk.length;
  });
  socket.write(`POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: ${rangeJson.length}\r\n\r\n${rangeJson}`);
  let pauses = 0;
  while (expected < 0 || received < expected) {
    // Read for a moment, then stop for a third of the deadline: the reply keeps moving overall.
    socket.resume();
    await new Promise((resolve) => setTimeout(resolve, 2));
    socket.pause();
    pauses++;
    await new Promise((resolve) => setTimeout(resolve, STALL_MS / 3));
  }
  assert.is(received, expected);
  assert.ok(pauses > 1, `the reply came in ${pauses} reads: the test did not pause`);
  assert.is(await stalls(), before);
});

test('connections past the cap are closed at accept and counted; the member serves again once they go', async () => {
  const before = await metric('keyraft_client_connections_closed_total', '{reason="connection_limit"}');
  const held: Socket[] = [];
  // The cap is 50 on this server: open 60 idle connections, wait until each is accepted or closed.
  const outcomes = await Promise.all(Array.from({ length: 60 }, () => new Promise<'open' | 'closed'>((resolve) => {
    const s = connect(running.server.port, '127.0.0.1');
    sockets.add(s);
    held.push(s);
    s.on('error', () => undefined);
    s.once('close', () => resolve('closed'));
    s.once('connect', () => setTimeout(() => resolve(s.destroyed ? 'closed' : 'open'), 500));
  })));
  // At least 10 are refused (more if connections of earlier tests are still open), each counted once.
  const refused = outcomes.filter((o) => o === 'closed').length;
  assert.ok(refused >= 10, JSON.stringify(outcomes));
  await waitFor(`${refused} refusals counted`, async () => (await metric('keyraft_client_connections_closed_total', '{reason="connection_limit"}')) === before + refused);
  for (const s of held) s.destroy();
  await waitFor('the member serving again', async () => {
    try {
      return (await httpRequest(running.server.port, 'GET', '/health')).status === 200;
    } catch {
      return false;
    }
  });
});

test.run();
