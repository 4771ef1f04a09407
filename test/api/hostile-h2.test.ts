/**
 * Hostile HTTP/2 and gRPC clients (issue 9): no request, and no batch of requests from one read,
 * may hold the main thread or grow memory without bound. Each attack runs against an in-process
 * server over a MemoryMember while a watcher asks GET /health on another connection (HTTP/1.1)
 * every few ms; each case asserts the server's answer to the attack, and that the slowest /health
 * answer during it stayed under HEALTH_BOUND_MS (generous: the machine is shared and noisy; the
 * measured figures before the fixes were seconds). Memory is the process's RSS, sampled during
 * the attack; the attacking client here keeps its own buffers small.
 *
 * Attacks: a unary call in 20,000 one-byte DATA frames (O(n²) assembly); 60 Range calls of 10 MB
 * in one write, from a client that reads, and 300 from one that does not and then goes away;
 * HEADERS followed by empty CONTINUATIONs without end; a call that sends more than it declared;
 * rapid reset; SETTINGS floods with 4,096 streams open; grpc-timeout, compressed flag,
 * content-type and :path as grpc-go checks them; and, on a server with short deadlines, a
 * connection that never sends its SETTINGS, one that trickles a frame, one that does not answer
 * keepalive PINGs, and one that pings too often.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent } from 'node:http';
import { encodeWithoutIndexing, type HeaderField } from '../../src/http/hpack.js';
import { Limits } from '../../src/platform/limits.js';
import { silentLogger } from '../../src/platform/logger.js';
import { encode } from '../../src/proto/codec.js';
import { b64, httpRequest, identity, rawClient, startWithMemoryMember, type Running } from './helpers.js';
import {
  CONTINUATION, ENHANCE_YOUR_CALM, REFUSED_STREAM, FLAG_ACK, FLAG_END_HEADERS, GOAWAY, HEADERS, PING, PREFACE, RST_STREAM, SETTINGS_INITIAL_WINDOW_SIZE,
  assertOk, dataFrame, field, frame, grpcMessage, headersFrame, openConnections, openRaw, pingFrame, putRequest, rangeType, readAnswer,
  requestHeaders, settingsFrame, WINDOW_UPDATE, type RawConnection,
} from './http2-raw-client.js';

const HEALTH_BOUND_MS = 1000;
// PING ACKs are held (for replies to ride with) shorter than a raw client here lives without
// answering the server's keepalive PINGs (keepaliveIntervalMs + keepaliveTimeoutMs).
const SHORT = { prefaceTimeoutMs: 300, frameTimeoutMs: 300, keepaliveIntervalMs: 300, keepaliveTimeoutMs: 300, keepaliveMinTimeMs: 5000, pingAckHoldMs: 50 };

const SHORT_REQUEST_BUDGET_BYTES = 8 * 1024 * 1024;

let running: Running;
/** A second server whose deadlines are short, for the idle-connection cases. */
let short: Running;

test.before(async () => {
  running = await startWithMemoryMember();
  // Its request-byte budget is small too: the member-wide bound is reached with a few calls.
  short = await startWithMemoryMember({}, silentLogger, { http2Timing: SHORT, http2RequestBytesBufferedMax: SHORT_REQUEST_BUDGET_BYTES });
});

test.after(async () => {
  for (const c of openConnections) c.destroy();
  await running.server.close();
  await short.server.close();
});

test.after.each(() => {
  for (const c of openConnections) c.destroy();
  openConnections.clear();
});

const open = (settings: Array<[number, number]> = []): RawConnection => openRaw(running.server.port, settings);

interface Watch {
  worstHealthMs: number;
  rssGrowthBytes: number;
}

/**
 * Runs `attack` while /health is asked on its own connection, one request at a time, and RSS is
 * sampled; returns the attack's result with the slowest /health answer and the largest RSS
 * growth seen. Logs both, for the report.
 */
async function watched<T>(name: string, port: number, attack: () => Promise<T>): Promise<T & Watch> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  await httpRequest(port, 'GET', '/health', undefined, agent); // the connection exists before the attack
  const rssBefore = process.memoryUsage().rss;
  let worstHealthMs = 0;
  let rssPeak = rssBefore;
  let done = false;
  const watcher = (async () => {
    while (!done) {
      const start = performance.now();
      const reply = await httpRequest(port, 'GET', '/health', undefined, agent);
      worstHealthMs = Math.max(worstHealthMs, performance.now() - start);
      assert.is(reply.status, 200);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  try {
    const result = await attack();
    return Object.assign(result as object, { worstHealthMs, rssGrowthBytes: rssPeak - rssBefore }) as T & Watch;
  } finally {
    done = true;
    await watcher;
    agent.destroy();
    console.log(`[hostile-h2] ${name}: worst /health ${worstHealthMs.toFixed(1)} ms, RSS +${((rssPeak - rssBefore) / 2 ** 20).toFixed(0)} MiB`);
  }
}

function assertHealthy(w: Watch): void {
  assert.ok(w.worstHealthMs < HEALTH_BOUND_MS, `/health took ${w.worstHealthMs.toFixed(0)} ms during the attack (bound ${HEALTH_BOUND_MS})`);
}

/** The first GOAWAY's error code and debug text. */
async function goawayOf(c: RawConnection, timeoutMs = 10_000): Promise<{ code: number; debug: string }> {
  const g = await c.nextFrame((f) => f.type === GOAWAY, 'a GOAWAY', timeoutMs);
  return { code: g.payload.readUInt32BE(4), debug: g.payload.subarray(8).toString('latin1') };
}

// ---------------------------------------------------------------------------------------------
// Work per turn: linear assembly, bounded batches, canceled work

test('a unary call in 20,000 one-byte DATA frames is answered, and /health keeps answering meanwhile', async () => {
  const message = putRequest('hostile/trickle', 'x'.repeat(20_000 - 40));
  const c = open();
  const frames = [headersFrame(1, encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put')))];
  for (let i = 0; i < message.length; i++) frames.push(dataFrame(1, message.subarray(i, i + 1), { endStream: i === message.length - 1 }));
  const w = await watched('20,000 one-byte DATA frames', running.server.port, async () => {
    c.send(...frames);
    return { answer: await readAnswer(c, 1) };
  });
  assertOk(w.answer);
  assertHealthy(w);
});

/** Ten 1 MB values under one prefix: a Range over it answers ~10 MB. */
async function putTenMegabytes(): Promise<Buffer> {
  const value = Buffer.alloc(1024 * 1024, 'v');
  for (let i = 0; i < 10; i++) {
    const reply = await httpRequest(running.server.port, 'POST', '/v3/kv/put', JSON.stringify({ key: b64(`big/${i}`), value: b64(value) }));
    assert.is(reply.status, 200);
  }
  const headers = encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Range'));
  const body = grpcMessage(encode(rangeType, { key: Buffer.from('big/'), range_end: Buffer.from('big0') }));
  return Buffer.concat([headers, body]);
}

/** `count` Range calls of ~10 MB each in one write, on a socket that counts (and drops) what comes back. */
function rangeBatch(count: number): Buffer {
  const headers = encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Range'));
  const body = grpcMessage(encode(rangeType, { key: Buffer.from('big/'), range_end: Buffer.from('big0') }));
  // Our windows: as large as HTTP/2 allows, on every stream and on the connection.
  const increment = Buffer.alloc(4);
  increment.writeUInt32BE(2 ** 31 - 1 - 65_535, 0);
  const frames = [PREFACE, settingsFrame([[SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]), frame(WINDOW_UPDATE, 0, 0, increment)];
  for (let i = 0; i < count; i++) {
    const id = 1 + 2 * i;
    frames.push(headersFrame(id, headers), dataFrame(id, body, { endStream: true }));
  }
  return Buffer.concat(frames);
}

test('60 Range calls of 10 MB in one write: /health answers between them, RSS stays bounded, every call is answered', async () => {
  await putTenMegabytes();
  const w = await watched('60 x 10 MB Range in one write, client reads', running.server.port, () => new Promise<{ received: number }>((resolve, reject) => {
    const socket = connect(running.server.port, '127.0.0.1');
    let received = 0;
    const scanner = new EndScanner();
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (scanner.push(chunk) >= 60) {
        socket.destroy();
        resolve({ received });
      }
    });
    socket.on('error', reject);
    socket.write(rangeBatch(60));
  }));
  assert.ok(w.received > 600 * 1024 * 1024, `${w.received} bytes received`);
  assertHealthy(w);
  // Before: +1.2 GB (every reply encoded, then written in one go).
  assert.ok(w.rssGrowthBytes < 500 * 1024 * 1024, `RSS grew by ${(w.rssGrowthBytes / 2 ** 20).toFixed(0)} MiB`);
});

/**
 * Counts the streams the server ended (HEADERS or DATA with END_STREAM) in its byte stream,
 * without keeping the bytes: 600 MB of answers must not cost the client a copy per chunk.
 */
class EndScanner {
  private header = Buffer.alloc(9);
  private headerBytes = 0;
  private skip = 0;
  private ended = 0;

  push(chunk: Buffer): number {
    let at = 0;
    while (at < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        this.skip -= n;
        at += n;
        continue;
      }
      const n = Math.min(9 - this.headerBytes, chunk.length - at);
      chunk.copy(this.header, this.headerBytes, at, at + n);
      this.headerBytes += n;
      at += n;
      if (this.headerBytes < 9) break;
      this.headerBytes = 0;
      const type = this.header[3]!;
      if ((type === HEADERS || type === 0x0) && (this.header[4]! & 0x1) !== 0) this.ended++;
      this.skip = this.header.readUIntBE(0, 3);
    }
    return this.ended;
  }
}

test('a real client (grpc-js) whose windows pace 40 parallel 1 MB answers gets them all (held-back work resumes as output drains)', async () => {
  await putTenMegabytes();
  const client = rawClient(running.server.port);
  try {
    const sizes = await Promise.all(Array.from({ length: 40 }, (_, i) => new Promise<number>((resolve, reject) => {
      const request = Buffer.from(encode(rangeType, { key: Buffer.from(`big/${i % 10}`) }));
      client.makeUnaryRequest('/etcdserverpb.KV/Range', identity, identity, request, { deadline: Date.now() + 30_000 }, (err, reply) => (err ? reject(err) : resolve(reply!.length)));
    })));
    // Past Limits.grpcReplyBytesQueuedPerConnectionMax in all: the lane parked and had to wake.
    assert.ok(sizes.every((n) => n > 1024 * 1024), JSON.stringify(sizes));
  } finally {
    client.close();
  }
});

test('300 Range calls of 10 MB from a client that never reads, then goes: RSS stays bounded and the work stops', async () => {
  await putTenMegabytes();
  const socket: Socket = connect(running.server.port, '127.0.0.1');
  socket.pause(); // never reads
  const w = await watched('300 x 10 MB Range, client never reads then goes', running.server.port, async () => {
    socket.write(rangeBatch(300));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    socket.destroy();
    // After the client went, the member is idle again: /health keeps its pace for a while.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return {};
  });
  assertHealthy(w);
  // Before: 3 GB, and unresponsive for >= 53 s.
  assert.ok(w.rssGrowthBytes < 500 * 1024 * 1024, `RSS grew by ${(w.rssGrowthBytes / 2 ** 20).toFixed(0)} MiB`);
  const c = open();
  c.send(headersFrame(1, encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put'))), dataFrame(1, putRequest('hostile/after-300'), { endStream: true }));
  assertOk(await readAnswer(c, 1));
});

// ---------------------------------------------------------------------------------------------
// Memory per connection

test('HEADERS then empty CONTINUATIONs without end: GOAWAY ENHANCE_YOUR_CALM after a few frames', async () => {
  const c = open();
  const block = encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put'));
  const frames = [headersFrame(1, block, { endHeaders: false })];
  for (let i = 0; i < 100_000; i++) frames.push(frame(CONTINUATION, 0, 1));
  const w = await watched('100,000 empty CONTINUATIONs', running.server.port, async () => {
    c.send(...frames);
    return goawayOf(c);
  });
  assert.is(w.code, ENHANCE_YOUR_CALM);
  assertHealthy(w);
  await c.waitForClose();
});

test('a call that sends more than its declared length is refused at once (INTERNAL), before it ends its stream', async () => {
  const c = open();
  const declared = Buffer.alloc(5 + 10);
  declared.writeUInt32BE(10, 1);
  c.send(headersFrame(1, encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put'))), dataFrame(1, declared), dataFrame(1, Buffer.alloc(16_000)));
  const answer = await c.nextFrame((f) => f.type === HEADERS && f.streamId === 1, 'the refusal');
  assert.is(field(answer.headers!, 'grpc-status'), '13', JSON.stringify(answer.headers));
  assert.is(field(answer.headers!, 'grpc-message'), 'grpc: unary request must carry exactly one message');
  // Its window is not credited again: no WINDOW_UPDATE for stream 1.
  await c.roundTrip();
  assert.not.ok(c.frames.some((f) => f.type === WINDOW_UPDATE && f.streamId === 1), c.transcript());
});

test('a call declaring 10 bytes: its stream window is never credited past what the message needs', async () => {
  const c = open();
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(10, 1);
  // 3 MB would have been credited again and again (half a 4 MiB window at a time); now only 10 more bytes are wanted.
  c.send(headersFrame(1, encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put'))), dataFrame(1, prefix));
  for (let i = 0; i < 150; i++) c.send(dataFrame(1, Buffer.alloc(FRAME)));
  const refusal = await c.nextFrame((f) => (f.type === HEADERS || f.type === RST_STREAM) && f.streamId === 1, 'the refusal');
  assert.ok(refusal.type === HEADERS, c.transcript());
  assert.not.ok(c.frames.some((f) => f.type === WINDOW_UPDATE && f.streamId === 1), `no stream WINDOW_UPDATE: ${c.transcript()}`);
});
const FRAME = 16_384;

test('request bytes held across connections stay within the member budget: past it, streams are refused (REFUSED_STREAM)', async () => {
  // Two connections, three calls each declaring 2 MiB and sending it all but never ending: 12 MiB
  // would be held; the short server's budget is 8 MiB.
  const chunk = Buffer.alloc(FRAME);
  const connections = [openRaw(short.server.port), openRaw(short.server.port)];
  const headers = encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put'));
  for (const c of connections) {
    for (const id of [1, 3, 5]) {
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(2 * 1024 * 1024, 1);
      const frames = [headersFrame(id, headers), dataFrame(id, prefix)];
      for (let sent = 0; sent < 2 * 1024 * 1024 - FRAME; sent += FRAME) frames.push(dataFrame(id, chunk));
      c.send(...frames);
    }
  }
  for (const c of connections) await c.roundTrip();
  const refused = connections.flatMap((c) => c.frames.filter((f) => f.type === RST_STREAM && f.payload.readUInt32BE(0) === REFUSED_STREAM));
  assert.ok(refused.length >= 1, `some stream refused: ${connections.map((c) => c.transcript()).join('\n')}`);
  assert.ok(refused.length <= 3, `at most the calls past 8 MiB are refused: ${refused.length}`);
});

// ---------------------------------------------------------------------------------------------
// Rapid reset, SETTINGS with many streams

test('rapid reset (HEADERS + DATA + RST_STREAM in a loop): GOAWAY ENHANCE_YOUR_CALM, /health unaffected', async () => {
  const c = open();
  const headers = encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Range'));
  const body = grpcMessage(encode(rangeType, { key: Buffer.from('hostile/rr') }));
  const frames: Buffer[] = [];
  for (let i = 0; i < 5000; i++) {
    const id = 1 + 2 * i;
    frames.push(headersFrame(id, headers), dataFrame(id, body, { endStream: true }), frame(RST_STREAM, 0, id, Buffer.from([0, 0, 0, 8])));
  }
  const w = await watched('rapid reset, 5,000 streams', running.server.port, async () => {
    c.send(...frames);
    return goawayOf(c);
  });
  assert.is(w.code, ENHANCE_YOUR_CALM);
  assertHealthy(w);
});

test('SETTINGS INITIAL_WINDOW_SIZE changes with 4,096 streams open cost O(1) each: /health unaffected, calls still served', async () => {
  const c = open();
  const headers = encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put'));
  const opening: Buffer[] = [];
  for (let i = 0; i < Limits.http2StreamsPerConnectionMax - 1; i++) opening.push(headersFrame(1 + 2 * i, headers));
  c.send(...opening);
  await c.roundTrip();
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < 2730; i++) pairs.push([SETTINGS_INITIAL_WINDOW_SIZE, 65_535 + (i % 2)]);
  const floods: Buffer[] = [];
  for (let i = 0; i < 100; i++) floods.push(settingsFrame(pairs));
  const w = await watched('100 SETTINGS frames of 2,730 INITIAL_WINDOW_SIZE entries, 4,095 streams open', running.server.port, async () => {
    c.send(...floods);
    await c.roundTrip(); // every SETTINGS before it was applied
    return {};
  });
  assertHealthy(w);
  const id = 1 + 2 * (Limits.http2StreamsPerConnectionMax - 1);
  c.send(headersFrame(id, headers), dataFrame(id, putRequest('hostile/after-settings'), { endStream: true }));
  assertOk(await readAnswer(c, id));
});

// ---------------------------------------------------------------------------------------------
// gRPC request checks, as grpc-go

async function trailersOf(c: RawConnection, id: number, extra: HeaderField[], body?: Buffer, path = '/etcdserverpb.KV/Put', contentType = 'application/grpc'): Promise<HeaderField[]> {
  const headers = requestHeaders(path).map(([n, v]): HeaderField => [n, n === 'content-type' ? contentType : v]);
  c.send(headersFrame(id, encodeWithoutIndexing([...headers, ...extra]), { endStream: body === undefined }), ...(body ? [dataFrame(id, body, { endStream: true })] : []));
  const f = await c.nextFrame((x) => x.type === HEADERS && x.streamId === id && (x.flags & 0x1) !== 0, `the end of stream ${id}`);
  return f.headers!;
}

test('grpc-timeout: malformed values refused with INTERNAL as grpc-go; a call past its deadline gets DEADLINE_EXCEEDED', async () => {
  const c = open();
  const cases: Array<[string, string]> = [
    ['abc', 'malformed grpc-timeout: transport: timeout unit is not recognized: "abc"'],
    ['1', 'malformed grpc-timeout: transport: timeout string is too short: "1"'],
    ['123456789S', 'malformed grpc-timeout: transport: timeout string is too long: "123456789S"'],
    ['1.5S', 'malformed grpc-timeout: strconv.ParseInt: parsing "1.5": invalid syntax'],
  ];
  let id = 1;
  for (const [value, message] of cases) {
    const t = await trailersOf(c, id, [['grpc-timeout', value]], putRequest('hostile/timeout'));
    assert.is(field(t, 'grpc-status'), '13', `${value}: ${JSON.stringify(t)}`);
    assert.is(decodeURIComponent(field(t, 'grpc-message')!), message);
    id += 2;
  }
  // A request that never ends, with a 50 ms deadline: answered when the deadline passes.
  c.send(headersFrame(id, encodeWithoutIndexing([...requestHeaders('/etcdserverpb.KV/Put'), ['grpc-timeout', '50m']])));
  const late = await c.nextFrame((x) => x.type === HEADERS && x.streamId === id, 'DEADLINE_EXCEEDED');
  assert.is(field(late.headers!, 'grpc-status'), '4', JSON.stringify(late.headers));
  // A well-formed timeout on a normal call changes nothing, the longest one too (99999999 hours:
  // past what setTimeout takes, which would otherwise fire at once).
  const ok = await trailersOf(c, id + 2, [['grpc-timeout', '10S']], putRequest('hostile/timeout-ok'));
  assert.is(field(ok, 'grpc-status'), '0');
  const waiting = id + 4;
  c.send(headersFrame(waiting, encodeWithoutIndexing([...requestHeaders('/etcdserverpb.KV/Put'), ['grpc-timeout', '99999999H']])));
  await new Promise((resolve) => setTimeout(resolve, 100)); // checking that nothing comes: a wait is the point
  await c.roundTrip();
  assert.not.ok(c.frames.some((f) => f.streamId === waiting), `no answer on a stream with the longest deadline: ${c.transcript()}`);
});

test('compressed flag without grpc-encoding: INTERNAL as grpc-go; with an unknown encoding: UNIMPLEMENTED', async () => {
  const c = open();
  const message = putRequest('hostile/compressed');
  message[0] = 1;
  const t = await trailersOf(c, 1, [], message);
  assert.is(field(t, 'grpc-status'), '13');
  assert.is(field(t, 'grpc-message'), 'grpc: compressed flag set with identity or empty encoding');
  const u = await trailersOf(c, 3, [['grpc-encoding', 'snappy']], message);
  assert.is(field(u, 'grpc-status'), '12');
});

test('content-type application/grpcXYZ is not gRPC (415); application/grpc+proto and application/grpc;x=y are', async () => {
  const c = open();
  const bad = await trailersOf(c, 1, [], undefined, '/etcdserverpb.KV/Put', 'application/grpcXYZ');
  assert.is(field(bad, ':status'), '415');
  for (const [id, type] of [[3, 'application/grpc+proto'], [5, 'application/grpc;charset=utf-8']] as const) {
    c.send(headersFrame(id, encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put').map(([n, v]): HeaderField => [n, n === 'content-type' ? type : v]))), dataFrame(id, putRequest('hostile/ct'), { endStream: true }));
    assertOk(await readAnswer(c, id));
  }
});

test('a :path without its leading slash: UNIMPLEMENTED "malformed method name" with the whole path', async () => {
  const c = open();
  const t = await trailersOf(c, 1, [], putRequest('hostile/path'), 'etcdserverpb.KV/Put');
  assert.is(field(t, 'grpc-status'), '12');
  assert.is(field(t, 'grpc-message'), 'malformed method name: "etcdserverpb.KV/Put"');
  const u = await trailersOf(c, 3, [], putRequest('hostile/path'), '/etcdserverpb.KV/Nope');
  assert.is(field(u, 'grpc-message'), 'unknown method Nope for service etcdserverpb.KV');
});

// ---------------------------------------------------------------------------------------------
// Idle and slow connections (the short-deadline server)

test('a connection that sends the preface but never its SETTINGS is closed after the preface deadline', async () => {
  const socket = connect(short.server.port, '127.0.0.1');
  socket.write(PREFACE);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('still open 5 s after the preface')), 5000);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.on('error', () => undefined);
      socket.resume();
    });
  } finally {
    socket.destroy();
  }
});

test('a frame trickled and never finished closes the connection after the frame deadline', async () => {
  const c = openRaw(short.server.port);
  await c.roundTrip();
  c.sendRaw(frame(PING, 0, 0, Buffer.alloc(8)).subarray(0, 12));
  await c.waitForClose(5000);
});

test('keepalive: an idle client that answers PINGs stays; one that does not is closed after the timeout', async () => {
  const answering = openRaw(short.server.port);
  const silent = openRaw(short.server.port);
  await answering.roundTrip();
  await silent.roundTrip();
  // The answering client acks every server PING (RawConnection does not on its own).
  answering.socket.on('data', () => {
    for (const f of answering.frames) {
      if (f.type === PING && (f.flags & FLAG_ACK) === 0 && !(f as { acked?: boolean }).acked) {
        (f as { acked?: boolean }).acked = true;
        answering.sendRaw(pingFrame(f.payload, FLAG_ACK));
      }
    }
  });
  const ping = await silent.nextFrame((f) => f.type === PING && (f.flags & FLAG_ACK) === 0, 'a keepalive PING');
  assert.is(ping.payload.length, 8);
  await silent.waitForClose(5000);
  assert.not.ok(answering.closed, `the answering client is still connected: ${answering.transcript()}`);
  await answering.roundTrip();
});

test('a client pinging too often gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings", as grpc-go sends', async () => {
  const c = open();
  for (let i = 0; i < 4; i++) c.send(pingFrame(Buffer.alloc(8, i)));
  const g = await goawayOf(c);
  assert.is(g.code, ENHANCE_YOUR_CALM);
  assert.is(g.debug, 'too_many_pings');
});

test.run();
