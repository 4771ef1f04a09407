/**
 * HTTP/2 (RFC 9113) conformance of the client port's gRPC server, seen from a raw-frame client:
 * the server preface and its settings, SETTINGS/PING acknowledgements, unary calls (header blocks
 * over CONTINUATION, padding, priority, an :authority with a scheme), connection errors (GOAWAY
 * with the RFC's code, then the socket closes), stream errors (RST_STREAM, the connection goes on),
 * outbound flow control (stream and connection windows, frame size), a GOAWAY from the client, and
 * a seeded fuzz of random frames after which the server still serves.
 *
 * The client here builds every frame by hand (9-byte header: 24-bit length, type, flags, 31-bit
 * stream id), encodes request header blocks with encodeWithoutIndexing (so the server's HPACK table
 * for our direction stays empty) and decodes every server header block, in order, with one
 * HpackDecoder per connection.
 *
 * Not covered: refusing streams beyond SETTINGS_MAX_CONCURRENT_STREAMS (4096 open streams per
 * connection makes it too expensive for the suite).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeWithoutIndexing, type HeaderField } from '../../src/http/hpack.js';
import { Limits } from '../../src/platform/limits.js';
import { decode, encode } from '../../src/proto/codec.js';
import { b64, httpRequest, startWithMemoryMember, type Running } from './helpers.js';
import {
  type ConnectOptions, openRaw, DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION, FLAG_END_STREAM, FLAG_ACK, FLAG_END_HEADERS, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED, FRAME_SIZE_ERROR, COMPRESSION_ERROR, errorName, FRAME_PAYLOAD_MAX, DEFAULT_WINDOW, WINDOW_MAX, type Frame, frame, settingsFrame, pingFrame, windowUpdateFrame, goawayFrame, priorityPayload, headersFrame, dataFrame, describe, openConnections, RawConnection, putResponseType, rangeType, rangeResponseType, statusType, statusResponseType, grpcMessage, requestHeaders, putRequest, unaryFrames, field, readAnswer, assertOk,
} from './http2-raw-client.js';
import { rng } from '../seeded-random.js';

let running: Running;

/** A connection to the suite's server past the preface and an (empty unless given) client SETTINGS. */
function open(settings: Array<[number, number]> = [], options: ConnectOptions = {}): RawConnection {
  return openRaw(running.server.port, settings, options);
}

test.before(async () => {
  running = await startWithMemoryMember();
});

test.after(async () => {
  for (const c of openConnections) c.destroy();
  await running.server.close();
});

test.after.each(() => {
  for (const c of openConnections) c.destroy();
  openConnections.clear();
});

async function put(c: RawConnection, key: string, value: string | Buffer = 'v'): Promise<any> {
  const id = c.newStreamId();
  c.send(...unaryFrames(id, '/etcdserverpb.KV/Put', putRequest(key, value)));
  const response = decode<any>(putResponseType, assertOk(await readAnswer(c, id)));
  assert.is(response.header.member_id, running.member.memberId);
  return response;
}

/** Proves a connection still works: a PING is answered and a Put succeeds. */
async function assertUsable(c: RawConnection, key: string): Promise<void> {
  await c.roundTrip();
  await put(c, key);
  assert.not.ok(c.frames.some((f) => f.type === GOAWAY), `no GOAWAY: ${c.transcript()}`);
}

const settingsOf = (f: Frame): Map<number, number> => {
  const out = new Map<number, number>();
  for (let i = 0; i + 6 <= f.payload.length; i += 6) out.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
  return out;
};

// ---------------------------------------------------------------------------------------------
// 1. Preface, SETTINGS, PING

test('server preface: SETTINGS with MAX_CONCURRENT_STREAMS and INITIAL_WINDOW_SIZE from Limits, and a connection WINDOW_UPDATE', async () => {
  const c = open();
  const first = await c.nextFrame(() => true, 'the server preface');
  assert.is(first.type, SETTINGS, `the server preface is a SETTINGS frame: ${describe(first)}`);
  assert.is(first.flags & FLAG_ACK, 0, 'not an ACK');
  assert.is(first.streamId, 0);
  assert.is(first.payload.length % 6, 0);
  const settings = settingsOf(first);
  assert.is(settings.get(SETTINGS_MAX_CONCURRENT_STREAMS), Limits.http2StreamsPerConnectionMax, `MAX_CONCURRENT_STREAMS in ${describe(first)}`);
  assert.is(settings.get(SETTINGS_INITIAL_WINDOW_SIZE), Limits.http2StreamWindowBytes, 'INITIAL_WINDOW_SIZE');
  const update = await c.nextFrame((f) => f.type === WINDOW_UPDATE && f.streamId === 0, 'a connection WINDOW_UPDATE');
  assert.is(update.payload.length, 4);
  assert.is(update.payload.readUInt32BE(0) & 0x7fffffff, Limits.http2ConnectionWindowBytes - DEFAULT_WINDOW);
  assert.equal(c.violations, []);
});

test('the client SETTINGS is ACKed with an empty payload; a PING comes back ACKed with its 8 bytes', async () => {
  const c = open([[SETTINGS_ENABLE_PUSH, 0], [SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20]]);
  const ack = await c.nextFrame((f) => f.type === SETTINGS && (f.flags & FLAG_ACK) !== 0, 'a SETTINGS ACK');
  assert.is(ack.flags, FLAG_ACK);
  assert.is(ack.streamId, 0);
  assert.is(ack.payload.length, 0);
  const data = Buffer.from('0123abcd', 'latin1');
  c.send(pingFrame(data));
  const pong = await c.nextFrame((f) => f.type === PING && (f.flags & FLAG_ACK) !== 0, 'a PING ACK');
  assert.is(pong.flags, FLAG_ACK);
  assert.is(pong.streamId, 0);
  assert.ok(pong.payload.equals(data), `PING ACK payload ${pong.payload.toString('hex')}`);
  assert.equal(c.violations, []);
});

test('a PING ACK from the client (one the server never asked for) is not answered and ends nothing', async () => {
  const c = open();
  c.send(pingFrame(Buffer.from('ackackac', 'latin1'), FLAG_ACK));
  await assertUsable(c, 'h2c/after-ping-ack');
  assert.not.ok(c.frames.some((f) => f.type === PING && f.payload.toString('latin1') === 'ackackac'), 'a PING ACK is not answered (RFC 9113 6.7)');
});

// ---------------------------------------------------------------------------------------------
// 2. Unary calls

test('a unary Put: HEADERS :status 200 application/grpc, one gRPC message in DATA, trailers with grpc-status 0', async () => {
  const c = open();
  c.send(...unaryFrames(1, '/etcdserverpb.KV/Put', putRequest('h2c/unary', 'raw')));
  const answer = await readAnswer(c, 1);
  const first = answer.frames.find((f) => f.type === HEADERS)!;
  assert.is(first.flags & FLAG_END_STREAM, 0, 'the response headers do not end the stream');
  assert.ok(answer.frames.some((f) => f.type === DATA), 'DATA carries the message');
  const response = decode<any>(putResponseType, assertOk(answer));
  assert.is(response.header.member_id, running.member.memberId);
  assert.ok(response.header.revision > 1);
  assert.equal(c.violations, []);
  // The connection serves more calls.
  await put(c, 'h2c/unary2');
});

test('a request header block split over HEADERS and two CONTINUATION frames', async () => {
  const c = open();
  const block = encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put'));
  const a = Math.floor(block.length / 3);
  const b = Math.floor((2 * block.length) / 3);
  c.send(
    headersFrame(1, block.subarray(0, a), { endHeaders: false }),
    frame(CONTINUATION, 0, 1, block.subarray(a, b)),
    frame(CONTINUATION, FLAG_END_HEADERS, 1, block.subarray(b)),
    dataFrame(1, putRequest('h2c/continuation'), { endStream: true }),
  );
  decode<any>(putResponseType, assertOk(await readAnswer(c, 1)));
  // And a block split with END_STREAM on the HEADERS (trailers-only: no request message).
  c.send(
    headersFrame(3, block.subarray(0, 1), { endHeaders: false, endStream: true }),
    frame(CONTINUATION, FLAG_END_HEADERS, 3, block.subarray(1)),
  );
  const empty = await readAnswer(c, 3);
  assert.is(field(empty.trailers, 'grpc-status'), '13', 'a unary call without a message is INTERNAL, as grpc-go answers');
  assert.equal(c.violations, []);
});

test('PADDED DATA, HEADERS with PRIORITY, and HEADERS with PADDED and PRIORITY are served', async () => {
  const c = open();
  const block = encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put'));
  c.send(
    headersFrame(1, block, { priority: priorityPayload(0, 15) }),
    dataFrame(1, putRequest('h2c/padded'), { endStream: true, padding: 7 }),
  );
  decode<any>(putResponseType, assertOk(await readAnswer(c, 1)));
  const message = putRequest('h2c/padded2');
  c.send(
    headersFrame(3, block, { padding: 3, priority: priorityPayload(1, 200, true) }),
    dataFrame(3, message.subarray(0, 4), { padding: 0 }),
    dataFrame(3, message.subarray(4), { padding: 255 }),
    dataFrame(3, Buffer.alloc(0), { endStream: true, padding: 1 }),
  );
  decode<any>(putResponseType, assertOk(await readAnswer(c, 3)));
  assert.equal(c.violations, []);
});

test('a call trickled in: one byte per write, then a 16 KB frame in 100-byte writes', async () => {
  const c = open();
  await c.roundTrip();
  const writeInPieces = async (bytes: Buffer, piece: number): Promise<void> => {
    for (let at = 0; at < bytes.length; at += piece) {
      await new Promise<void>((resolve) => c.socket.write(bytes.subarray(at, at + piece), () => resolve()));
    }
  };
  const small = c.newStreamId();
  await writeInPieces(Buffer.concat(unaryFrames(small, '/etcdserverpb.KV/Put', putRequest('trickle', 'v'))), 1);
  assertOk(await readAnswer(c, small));
  const large = c.newStreamId();
  const value = Buffer.alloc(16_384 - 5 - 32, 0x61); // one DATA frame near the 16 KB maximum
  const frames = unaryFrames(large, '/etcdserverpb.KV/Put', putRequest('trickle-large', value));
  assert.ok(frames[1]!.length > 16_000, `DATA frame of ${frames[1]!.length} bytes`);
  await writeInPieces(Buffer.concat(frames), 100);
  assertOk(await readAnswer(c, large));
});

test(':authority with a scheme (etcdctl 3.4 endpoint status sends http://127.0.0.1:2379) is served, not reset', async () => {
  const c = open();
  c.send(...unaryFrames(1, '/etcdserverpb.Maintenance/Status', grpcMessage(encode(statusType, {})), 'http://127.0.0.1:2379'));
  const status = decode<any>(statusResponseType, assertOk(await readAnswer(c, 1)));
  assert.is(status.header.member_id, running.member.memberId);
  // Later calls on the same connection, with and without the scheme.
  c.send(...unaryFrames(3, '/etcdserverpb.Maintenance/Status', grpcMessage(encode(statusType, {})), 'http://127.0.0.1:2379'));
  assertOk(await readAnswer(c, 3));
  c.send(...unaryFrames(5, '/etcdserverpb.KV/Put', putRequest('h2c/authority'), '127.0.0.1:2379'));
  assertOk(await readAnswer(c, 5));
  assert.equal(c.violations, []);
});

// ---------------------------------------------------------------------------------------------
// 3. Connection errors: GOAWAY with the code, then the socket closes

/**
 * Writes `bytes` and a probe PING in one write (so the server has read everything before it
 * closes), then expects a GOAWAY with `code` before any answer to the probe, and the socket to close.
 */
async function expectConnectionError(c: RawConnection, bytes: Buffer[], code: number): Promise<void> {
  const probe = Buffer.from('probe!!!', 'latin1');
  c.sendRaw(Buffer.concat([...bytes, pingFrame(probe)]));
  const f = await c.nextFrame(
    (x) => x.type === GOAWAY || (x.type === PING && (x.flags & FLAG_ACK) !== 0 && x.payload.equals(probe)),
    `GOAWAY ${errorName(code)}`,
  );
  assert.is(f.type, GOAWAY, `a GOAWAY before the probe PING is answered; server sent: ${c.transcript()}`);
  assert.is(f.streamId, 0);
  assert.ok(f.payload.length >= 8, 'GOAWAY carries last stream id and error code');
  const got = f.payload.readUInt32BE(4);
  assert.is(errorName(got), errorName(code), `GOAWAY error code; server sent: ${c.transcript()}`);
  await c.waitForClose();
}

interface ConnectionErrorCase {
  name: string;
  code: number;
  /** The client SETTINGS sent after the preface; null to send none (the frames follow the preface). */
  settings?: Array<[number, number]> | null;
  frames: () => Buffer[];
}

const getBlock = (): Buffer => encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put'));

const connectionErrorCases: ConnectionErrorCase[] = [
  { name: 'first frame after the preface is not SETTINGS', code: PROTOCOL_ERROR, settings: null, frames: () => [pingFrame(Buffer.alloc(8))] },
  { name: 'a HEADERS frame of 16385 bytes (over MAX_FRAME_SIZE)', code: FRAME_SIZE_ERROR, frames: () => [headersFrame(1, Buffer.concat([getBlock(), Buffer.alloc(FRAME_PAYLOAD_MAX + 1 - getBlock().length, 0x80)]))] },
  { name: 'a PING of 16385 bytes', code: FRAME_SIZE_ERROR, frames: () => [frame(PING, 0, 0, Buffer.alloc(FRAME_PAYLOAD_MAX + 1))] },
  { name: 'HEADERS on an even stream id', code: PROTOCOL_ERROR, frames: () => [headersFrame(2, getBlock())] },
  { name: 'HEADERS opening stream 3 after stream 5', code: PROTOCOL_ERROR, frames: () => [headersFrame(5, getBlock()), headersFrame(3, getBlock())] },
  { name: 'CONTINUATION with no HEADERS before it', code: PROTOCOL_ERROR, frames: () => [frame(CONTINUATION, FLAG_END_HEADERS, 1, getBlock())] },
  {
    name: 'a PING between HEADERS without END_HEADERS and its CONTINUATION',
    code: PROTOCOL_ERROR,
    frames: () => [headersFrame(1, getBlock().subarray(0, 3), { endHeaders: false }), pingFrame(Buffer.alloc(8)), frame(CONTINUATION, FLAG_END_HEADERS, 1, getBlock().subarray(3))],
  },
  { name: 'CONTINUATION on another stream than its HEADERS', code: PROTOCOL_ERROR, frames: () => [headersFrame(1, getBlock().subarray(0, 3), { endHeaders: false }), frame(CONTINUATION, FLAG_END_HEADERS, 3, getBlock().subarray(3))] },
  { name: 'PING of 7 bytes', code: FRAME_SIZE_ERROR, frames: () => [frame(PING, 0, 0, Buffer.alloc(7))] },
  { name: 'SETTINGS of 5 bytes', code: FRAME_SIZE_ERROR, frames: () => [frame(SETTINGS, 0, 0, Buffer.alloc(5))] },
  { name: 'SETTINGS ACK with a payload', code: FRAME_SIZE_ERROR, frames: () => [frame(SETTINGS, FLAG_ACK, 0, Buffer.alloc(6))] },
  { name: 'SETTINGS INITIAL_WINDOW_SIZE 2^31', code: FLOW_CONTROL_ERROR, settings: null, frames: () => [settingsFrame([[SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31]])] },
  { name: 'SETTINGS MAX_FRAME_SIZE 100', code: PROTOCOL_ERROR, settings: null, frames: () => [settingsFrame([[SETTINGS_MAX_FRAME_SIZE, 100]])] },
  { name: 'SETTINGS ENABLE_PUSH 2', code: PROTOCOL_ERROR, settings: null, frames: () => [settingsFrame([[SETTINGS_ENABLE_PUSH, 2]])] },
  { name: 'a later SETTINGS with INITIAL_WINDOW_SIZE 2^31', code: FLOW_CONTROL_ERROR, frames: () => [settingsFrame([[SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31]])] },
  { name: 'WINDOW_UPDATE of 0 on stream 0', code: PROTOCOL_ERROR, frames: () => [windowUpdateFrame(0, 0)] },
  { name: 'WINDOW_UPDATE on stream 0 past 2^31-1', code: FLOW_CONTROL_ERROR, frames: () => [windowUpdateFrame(0, WINDOW_MAX)] },
  { name: 'WINDOW_UPDATE of 5 bytes', code: FRAME_SIZE_ERROR, frames: () => [frame(WINDOW_UPDATE, 0, 0, Buffer.from([0, 0, 0, 1, 0]))] },
  { name: 'a header block that is not HPACK (index 0)', code: COMPRESSION_ERROR, frames: () => [headersFrame(1, Buffer.from([0x80]), { endStream: true })] },
  { name: 'a header block that ends inside a literal', code: COMPRESSION_ERROR, frames: () => [headersFrame(1, getBlock().subarray(0, getBlock().length - 1), { endStream: true })] },
  {
    name: 'PUSH_PROMISE from the client',
    code: PROTOCOL_ERROR,
    frames: () => [headersFrame(1, getBlock()), frame(PUSH_PROMISE, FLAG_END_HEADERS, 1, Buffer.concat([Buffer.from([0, 0, 0, 2]), getBlock()]))],
  },
  { name: 'DATA on stream 0', code: PROTOCOL_ERROR, frames: () => [dataFrame(0, Buffer.from('x'))] },
  { name: 'DATA on stream 7, never opened (idle)', code: PROTOCOL_ERROR, frames: () => [dataFrame(7, Buffer.from('x'), { endStream: true })] },
  { name: 'RST_STREAM on stream 0', code: PROTOCOL_ERROR, frames: () => [frame(RST_STREAM, 0, 0, Buffer.alloc(4))] },
  { name: 'HEADERS on stream 0', code: PROTOCOL_ERROR, frames: () => [headersFrame(0, getBlock())] },
];

for (const k of connectionErrorCases) {
  test(`connection error: ${k.name} -> GOAWAY ${errorName(k.code)}, socket closed`, async () => {
    const c = new RawConnection(running.server.port);
    const before = k.settings === null ? [] : [settingsFrame(k.settings ?? [])];
    await expectConnectionError(c, [...before, ...k.frames()], k.code);
  });
}

// ---------------------------------------------------------------------------------------------
// 4. Stream errors: RST_STREAM on the stream, the connection goes on

async function expectReset(c: RawConnection, streamId: number, code: number): Promise<void> {
  const f = await c.nextFrame((x) => (x.type === RST_STREAM && x.streamId === streamId) || x.type === GOAWAY, `RST_STREAM ${errorName(code)} on stream ${streamId}`);
  assert.is(f.type, RST_STREAM, `a stream error, not a connection error; server sent: ${c.transcript()}`);
  assert.is(f.payload.length, 4);
  assert.is(errorName(f.payload.readUInt32BE(0)), errorName(code), `RST_STREAM code; server sent: ${c.transcript()}`);
}

test('stream error: a malformed request (uppercase header name, pseudo-header after a regular one) -> RST_STREAM PROTOCOL_ERROR, the connection goes on', async () => {
  const c = open();
  const uppercase: HeaderField[] = [...requestHeaders('/etcdserverpb.KV/Put'), ['X-Upper', 'v']];
  c.send(headersFrame(1, encodeWithoutIndexing(uppercase)));
  await expectReset(c, 1, PROTOCOL_ERROR);
  const lateUppercase: HeaderField[] = [...requestHeaders('/etcdserverpb.KV/Put'), ['x-lower-then-uppeR', 'v']];
  c.send(headersFrame(3, encodeWithoutIndexing(lateUppercase)));
  await expectReset(c, 3, PROTOCOL_ERROR);
  const pseudoLast: HeaderField[] = [...requestHeaders('/etcdserverpb.KV/Put'), [':scheme', 'http']];
  c.send(headersFrame(5, encodeWithoutIndexing(pseudoLast)));
  await expectReset(c, 5, PROTOCOL_ERROR);
  await assertUsable(c, 'h2c/after-malformed-headers');
});

test('stream error: WINDOW_UPDATE of 0 on an open stream -> RST_STREAM PROTOCOL_ERROR, the connection goes on', async () => {
  const c = open();
  c.send(headersFrame(1, getBlock()), windowUpdateFrame(1, 0));
  await expectReset(c, 1, PROTOCOL_ERROR);
  await assertUsable(c, 'h2c/after-window-update-0');
});

test('stream error: DATA after the client ended the stream -> RST_STREAM STREAM_CLOSED (or nothing if the call had fully closed), the connection goes on', async () => {
  const c = open();
  // All in one write: the server reads the extra DATA while the stream is half-closed (remote),
  // normally before the Put is answered.
  c.send(...unaryFrames(1, '/etcdserverpb.KV/Put', putRequest('h2c/data-after-end')), dataFrame(1, Buffer.from('late'), { endStream: true }));
  await c.roundTrip();
  await put(c, 'h2c/after-data-after-end');
  const resets = c.frames.filter((f) => f.type === RST_STREAM && f.streamId === 1);
  for (const r of resets) assert.is(errorName(r.payload.readUInt32BE(0)), errorName(STREAM_CLOSED), `server sent: ${c.transcript()}`);
  assert.not.ok(c.frames.some((f) => f.type === GOAWAY), `no GOAWAY: ${c.transcript()}`);

  // The same once the stream has certainly closed on both sides (its answer has arrived).
  const id = c.newStreamId();
  c.send(...unaryFrames(id, '/etcdserverpb.KV/Put', putRequest('h2c/data-after-close')));
  await readAnswer(c, id);
  c.send(dataFrame(id, Buffer.from('late'), { endStream: true }));
  await assertUsable(c, 'h2c/after-data-after-close');
  for (const r of c.frames.filter((f) => f.type === RST_STREAM && f.streamId === id)) {
    assert.is(errorName(r.payload.readUInt32BE(0)), errorName(STREAM_CLOSED), `server sent: ${c.transcript()}`);
  }
});

test('a call reset by the client (RST_STREAM NO_ERROR, CANCEL) in the same write as an over-limit message prefix: the server stays up', async () => {
  // node:http2 under the previous server threw from respond() on the closed stream and took the process down.
  const c = open();
  const overLimit = Buffer.from([0, 0x7f, 0xff, 0xff, 0xff]);
  for (const [id, code] of [[1, NO_ERROR], [3, 0x8]] as const) {
    c.send(headersFrame(id, getBlock()), dataFrame(id, overLimit), frame(RST_STREAM, 0, id, Buffer.from([0, 0, 0, code])));
  }
  await assertUsable(c, 'h2c/after-reset-over-limit');
  // And a reset right after a complete request.
  c.send(...unaryFrames(7, '/etcdserverpb.KV/Put', putRequest('h2c/reset-after-end')), frame(RST_STREAM, 0, 7, Buffer.from([0, 0, 0, NO_ERROR])));
  await assertUsable(c, 'h2c/after-reset-after-end');
});

test('unknown frame types and PRIORITY frames are ignored: a call around them succeeds', async () => {
  const c = open();
  const block = getBlock();
  const message = putRequest('h2c/unknown-frames');
  c.send(
    frame(0xfa, 0xff, 0, Buffer.from('unknown on stream 0')),
    frame(0xfa, 0, 1, Buffer.from('unknown on an idle stream')),
    frame(PRIORITY, 0, 1, priorityPayload(0, 16)),
    frame(PRIORITY, 0, 9, priorityPayload(1, 100, true)),
    headersFrame(1, block),
    frame(0x0b, 0, 1, Buffer.alloc(0)),
    frame(PRIORITY, 0, 1, priorityPayload(0, 1)),
    dataFrame(1, message.subarray(0, 3)),
    frame(0xfa, 0x1, 1, Buffer.alloc(20)),
    dataFrame(1, message.subarray(3), { endStream: true }),
  );
  decode<any>(putResponseType, assertOk(await readAnswer(c, 1)));
  await assertUsable(c, 'h2c/after-unknown-frames');
  assert.equal(c.violations, []);
});

// ---------------------------------------------------------------------------------------------
// 5. Outbound flow control

const rangeRequest = (key: string, rangeEnd?: string): Buffer =>
  grpcMessage(encode(rangeType, rangeEnd === undefined ? { key: Buffer.from(key) } : { key: Buffer.from(key), range_end: Buffer.from(rangeEnd) }));

test('stream flow control: with INITIAL_WINDOW_SIZE 10, at most 10 DATA bytes until WINDOW_UPDATEs; then the whole answer', async () => {
  const normal = open();
  await put(normal, 'h2c/fc-small', Buffer.alloc(1000, 'x'));
  // The answer's exact size, learnt on a connection with default windows (no writes in between).
  normal.send(...unaryFrames(3, '/etcdserverpb.KV/Range', rangeRequest('h2c/fc-small')));
  const reference = await readAnswer(normal, 3);
  assertOk(reference);
  const total = reference.body.length;
  assert.ok(total > 1000);

  const c = open([[SETTINGS_INITIAL_WINDOW_SIZE, 10]]);
  await c.nextFrame((f) => f.type === SETTINGS && (f.flags & FLAG_ACK) !== 0, 'the ACK of our SETTINGS');
  c.send(...unaryFrames(1, '/etcdserverpb.KV/Range', rangeRequest('h2c/fc-small')));
  await c.nextFrame((f) => f.type === HEADERS && f.streamId === 1, 'the response headers');
  await c.roundTrip();
  assert.ok((c.streamData.get(1) ?? 0) <= 10, `${c.streamData.get(1)} DATA bytes with a window of 10`);
  assert.equal(c.violations, []);

  // Credit the rest in three pieces; the answer may only complete with the last.
  let credit = 10;
  const pieces = [300, 400, total - 10 - 700];
  for (const [i, piece] of pieces.entries()) {
    c.send(windowUpdateFrame(1, piece));
    credit += piece;
    if (i < pieces.length - 1) {
      await c.roundTrip();
      assert.ok((c.streamData.get(1) ?? 0) <= credit);
      assert.not.ok(c.frames.some((f) => f.streamId === 1 && f.flags & FLAG_END_STREAM && f.type !== RST_STREAM), 'not complete before the whole answer is credited');
    }
  }
  const answer = await readAnswer(c, 1);
  assert.equal(c.violations, []);
  assert.is(answer.body.length, total);
  const response = decode<any>(rangeResponseType, assertOk(answer));
  assert.is(response.kvs.length, 1);
  assert.is(Buffer.from(response.kvs[0].value).length, 1000);
  assert.ok(c.largestDataFrame <= FRAME_PAYLOAD_MAX);
});

test('connection flow control: a ~210 KB answer stops at 65535 DATA bytes until a connection WINDOW_UPDATE; frames stay within 16384', async () => {
  const value = Buffer.alloc(70_000, 'y');
  for (const n of [1, 2, 3]) {
    // Set up over the JSON gateway: the raw client does not honour the server's receive windows.
    const reply = await httpRequest(running.server.port, 'POST', '/v3/kv/put', JSON.stringify({ key: b64(`h2c/fc-big/${n}`), value: b64(value) }));
    assert.is(reply.status, 200, reply.body);
  }
  // A stream window far above the answer: only the connection window (65535, never raised) holds it back.
  const c = open([[SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24]]);
  await c.nextFrame((f) => f.type === SETTINGS && (f.flags & FLAG_ACK) !== 0, 'the ACK of our SETTINGS');
  c.send(...unaryFrames(1, '/etcdserverpb.KV/Range', rangeRequest('h2c/fc-big/', 'h2c/fc-big0')));
  await c.waitFor(() => (c.connectionData >= 3 * FRAME_PAYLOAD_MAX ? true : undefined), 'three full DATA frames');
  await c.roundTrip();
  assert.equal(c.violations, []);
  assert.ok(c.connectionData <= DEFAULT_WINDOW, `${c.connectionData} DATA bytes with a connection window of ${DEFAULT_WINDOW}`);
  assert.not.ok(c.frames.some((f) => f.streamId === 1 && f.flags & FLAG_END_STREAM), 'the answer is not complete yet');

  c.send(windowUpdateFrame(0, 1 << 20));
  const answer = await readAnswer(c, 1);
  assert.equal(c.violations, []);
  assert.ok(c.largestDataFrame <= FRAME_PAYLOAD_MAX, `largest DATA frame ${c.largestDataFrame}`);
  const response = decode<any>(rangeResponseType, assertOk(answer));
  assert.is(response.kvs.length, 3);
  for (const kv of response.kvs) assert.ok(Buffer.from(kv.value).equals(value));
  assert.ok(c.connectionData > 3 * 70_000);
});

// ---------------------------------------------------------------------------------------------
// 6. GOAWAY from the client

test('a GOAWAY from the client: the call in flight is still answered, then the server closes', async () => {
  const c = open();
  c.send(...unaryFrames(1, '/etcdserverpb.KV/Put', putRequest('h2c/before-goaway')), goawayFrame(0, NO_ERROR));
  const response = decode<any>(putResponseType, assertOk(await readAnswer(c, 1)));
  assert.is(response.header.member_id, running.member.memberId);
  await c.waitForClose();
  assert.equal(c.violations, []);
});

// ---------------------------------------------------------------------------------------------
// 8. Seeded fuzz

/** A pseudo frame type of the fuzz: one of the hostile patterns. */
const ATTACK = 0x100;

test('fuzz (seeded): 300 connections of random frames; each ends in a PING ACK or a close; the server serves afterwards', async () => {
  const rand = rng(20261201);
  const int = (n: number): number => Math.floor(rand() * n);
  const streamIds = [0, 1, 2, 3, 5];
  const connections = 300;
  const concurrency = 8;
  const guardMs = 2_000;
  const outcomes = { acked: 0, closed: 0, guard: 0 };
  const stuck: string[] = [];

  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
  const block = getBlock();
  // Some frames are pure noise (random type 0-10, flags, stream id from streamIds, 0-64 bytes of
  // payload), the others well-formed for their type with random fields, mostly on the stream the
  // plan opened last; the share of noise varies by connection, so that some connections live long
  // enough to reach calls, windows and header blocks in progress.
  /** One connection's frames: `noise` is the share of pure noise. */
  const plan = (noise: number, count: number): Buffer[] => {
    const out: Buffer[] = [];
    let lastOpened = 0;
    // Most plans with well-formed frames start with a call, so frames on streams have one to go to.
    if (noise < 1 && rand() < 0.8) {
      lastOpened = 1;
      out.push(headersFrame(1, block));
    }
    // Well-formed frames: calls (HEADERS, DATA) weigh most; a client GOAWAY now and then; and the
    // hostile patterns of issue 9 (ATTACK: runs of empty CONTINUATIONs, rapid resets, calls that
    // overrun their declared length or carry odd grpc-timeout, compression, content-type, :path).
    const types = [DATA, DATA, DATA, HEADERS, HEADERS, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, PING, WINDOW_UPDATE, WINDOW_UPDATE, CONTINUATION, 0x0a, ATTACK, ATTACK];
    for (let n = 0; n < count; n++) {
      const anyStream = streamIds[int(streamIds.length)]!;
      if (rand() < noise) {
        out.push(frame(int(11), int(256), anyStream, bytes(int(65))));
        continue;
      }
      const type = rand() < 0.03 ? GOAWAY : types[int(types.length)]!;
      // Mostly the stream the plan opened last (or the next one, for HEADERS), now and then any.
      const current = rand() < 0.85 && lastOpened > 0 ? lastOpened : anyStream;
      switch (type) {
        case DATA:
          out.push(dataFrame(current, rand() < 0.6 ? putRequest('h2c/fuzz', bytes(int(20))) : bytes(int(65)), { endStream: rand() < 0.6, ...(rand() < 0.3 ? { padding: int(8) } : {}) }));
          break;
        case HEADERS: {
          const opens = rand() < 0.8;
          const id = opens ? lastOpened + 2 - (lastOpened === 0 ? 1 : 0) : anyStream;
          if (opens) lastOpened = id;
          const whole = rand() < 0.85;
          out.push(headersFrame(id, whole ? block : block.subarray(0, int(block.length)), { endStream: rand() < 0.3, endHeaders: whole || rand() < 0.5 }));
          if (!whole && rand() < 0.7) out.push(frame(CONTINUATION, FLAG_END_HEADERS, id, block.subarray(0, 0)));
          break;
        }
        case PRIORITY:
          out.push(frame(PRIORITY, 0, rand() < 0.5 ? current : anyStream, priorityPayload(streamIds[int(streamIds.length)]!, int(256), rand() < 0.5)));
          break;
        case RST_STREAM:
          out.push(frame(RST_STREAM, 0, current, Buffer.from([0, 0, 0, int(14)])));
          break;
        case SETTINGS: {
          const pairs: Array<[number, number]> = [];
          for (let k = int(4); k > 0; k--) {
            const id = 1 + int(6);
            const value = id === SETTINGS_INITIAL_WINDOW_SIZE ? int(1 << 20) : id === SETTINGS_MAX_FRAME_SIZE ? FRAME_PAYLOAD_MAX + int(1000) : id === SETTINGS_ENABLE_PUSH ? 0 : int(1 << 16);
            pairs.push([id, value]);
          }
          out.push(settingsFrame(pairs));
          break;
        }
        case PING:
          out.push(pingFrame(bytes(8)));
          break;
        case GOAWAY:
          out.push(goawayFrame(0, int(14)));
          break;
        case WINDOW_UPDATE:
          out.push(windowUpdateFrame(rand() < 0.5 ? 0 : current, 1 + int(1 << 20)));
          break;
        case CONTINUATION:
          out.push(frame(CONTINUATION, rand() < 0.5 ? FLAG_END_HEADERS : 0, current, block.subarray(int(block.length))));
          break;
        case ATTACK: {
          const id = lastOpened + 2 - (lastOpened === 0 ? 1 : 0);
          lastOpened = id;
          const kind = int(4);
          if (kind === 0) {
            out.push(headersFrame(id, block, { endHeaders: false }));
            for (let k = int(60); k > 0; k--) out.push(frame(CONTINUATION, 0, id));
            if (rand() < 0.5) out.push(frame(CONTINUATION, FLAG_END_HEADERS, id));
          } else if (kind === 1) {
            for (let k = 0; k < 1 + int(5); k++) {
              const rid = lastOpened + (k === 0 ? 0 : 2);
              lastOpened = rid;
              out.push(headersFrame(rid, block), dataFrame(rid, putRequest('h2c/fuzz-rr'), { endStream: true }), frame(RST_STREAM, 0, rid, Buffer.from([0, 0, 0, 8])));
            }
          } else if (kind === 2) {
            const prefix = Buffer.alloc(5);
            prefix[0] = int(2);
            prefix.writeUInt32BE(int(40), 1);
            out.push(headersFrame(id, block), dataFrame(id, Buffer.concat([prefix, bytes(int(60))]), { endStream: rand() < 0.5 }));
          } else {
            const odd: HeaderField[] = [
              ['grpc-timeout', ['1n', '50m', 'abc', '', '123456789S', '-1S'][int(6)]!],
              ['grpc-encoding', ['identity', 'gzip', ''][int(3)]!],
            ];
            const path = ['/etcdserverpb.KV/Put', 'etcdserverpb.KV/Put', '/', '', '/x'][int(5)]!;
            const type = ['application/grpc', 'application/grpcXYZ', 'application/grpc+proto', 'text/plain'][int(4)]!;
            const fields = requestHeaders(path).map(([n, v]): HeaderField => [n, n === 'content-type' ? type : v]);
            out.push(headersFrame(id, encodeWithoutIndexing([...fields, ...odd])), dataFrame(id, putRequest('h2c/fuzz-odd'), { endStream: true }));
          }
          break;
        }
        default:
          out.push(frame(type, int(256), anyStream, bytes(int(65))));
      }
    }
    return out;
  };
  const plans: Buffer[][] = [];
  for (let i = 0; i < connections; i++) plans.push(plan([0, 0, 0.05, 0.2, 1][int(5)]!, 1 + int(20)));

  const runOne = async (i: number): Promise<void> => {
    const c = new RawConnection(running.server.port, { decodeHeaders: false });
    try {
      const probe = Buffer.alloc(8);
      probe.writeUInt32BE(i, 4);
      c.sendRaw(Buffer.concat([settingsFrame(), ...plans[i]!, pingFrame(probe)]));
      const acked = c.waitFor(
        () => (c.frames.some((f) => f.type === PING && (f.flags & FLAG_ACK) !== 0 && f.payload.equals(probe)) ? 'acked' : undefined),
        'the probe PING ACK',
        guardMs,
      );
      const outcome = await acked.catch(() => (c.closed ? 'closed' : 'guard'));
      outcomes[outcome as keyof typeof outcomes]++;
      if (outcome === 'guard') stuck.push(`#${i}: ${c.transcript()}`);
    } finally {
      c.destroy();
    }
  };

  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < connections) await runOne(next++);
  }));

  assert.is(outcomes.acked + outcomes.closed + outcomes.guard, connections);
  // Every connection was either answered or closed: the server never sat on a connection.
  assert.is(outcomes.guard, 0, `${JSON.stringify(outcomes)}; no answer and no close on: ${stuck.slice(0, 5).join('\n')}`);
  // The seed reaches both endings: connections the random frames broke, and ones they did not.
  assert.ok(outcomes.closed > 0, JSON.stringify(outcomes));
  assert.ok(outcomes.acked > 0, JSON.stringify(outcomes));

  const c = open();
  await put(c, 'h2c/after-fuzz');
  const status = open();
  status.send(...unaryFrames(1, '/etcdserverpb.Maintenance/Status', grpcMessage(encode(statusType, {}))));
  assertOk(await readAnswer(status, 1));
});

test.run();
