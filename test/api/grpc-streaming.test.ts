/**
 * Streaming gRPC calls on our HTTP/2 (grpc/stream-call.ts), through the real client port with
 * test-only rows in the method table (echo-methods.ts): driven by @grpc/grpc-js's client and by raw
 * frames. Many messages each way, half-close, a handler's error status, cancel, deadline, the
 * receive limit, a client that stops reading (send says false at the high-water mark, onDrain once
 * it reads again), and a producer that ignores send's answer (stopped at its bound).
 */
import * as grpc from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeWithoutIndexing } from '../../src/http/hpack.js';
import { ErrorTable } from '../../src/platform/errors.js';
import { Limits } from '../../src/platform/limits.js';
import { decode, encode, messageType } from '../../src/proto/codec.js';
import type { RangeResponse } from '../../src/proto/etcd-types.js';
import { silentLogger } from '../../src/platform/logger.js';
import { probe, resetProbe, tableWithEcho } from './echo-methods.js';
import { startWithMemoryMember, type Running } from './helpers.js';
import {
  DATA, ENHANCE_YOUR_CALM, HEADERS, RST_STREAM, dataFrame, field, grpcMessage, headersFrame, openConnections, openRaw, readAnswer,
  requestHeaders, windowUpdateFrame, frame, type RawConnection,
} from './http2-raw-client.js';

const CANCEL = 0x8;

function resetFrame(streamId: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code, 0);
  return frame(RST_STREAM, 0, streamId, payload);
}

const putType = messageType('etcdserverpb.PutRequest');
const rangeResponseType = messageType('etcdserverpb.RangeResponse');

let running: Running;
let client: grpc.Client;

const EchoClient = grpc.makeGenericClientConstructor({
  Chat: {
    path: '/etcdserverpb.Echo/Chat',
    requestStream: true,
    responseStream: true,
    requestSerialize: (v: object) => Buffer.from(encode(putType, v)),
    requestDeserialize: (b: Buffer) => decode(putType, b),
    responseSerialize: (v: object) => Buffer.from(encode(rangeResponseType, v)),
    responseDeserialize: (b: Buffer) => decode(rangeResponseType, b),
  },
  Count: {
    path: '/etcdserverpb.Echo/Count',
    requestStream: false,
    responseStream: true,
    requestSerialize: (v: object) => Buffer.from(encode(putType, v)),
    requestDeserialize: (b: Buffer) => decode(putType, b),
    responseSerialize: (v: object) => Buffer.from(encode(rangeResponseType, v)),
    responseDeserialize: (b: Buffer) => decode(rangeResponseType, b),
  },
}, 'Echo');

test.before(async () => {
  running = await startWithMemoryMember({}, silentLogger, { methods: tableWithEcho });
  client = new EchoClient(`127.0.0.1:${running.server.port}`, grpc.credentials.createInsecure());
});

test.before.each(() => resetProbe());

test.after.each(() => {
  for (const c of [...openConnections]) c.destroy();
});

test.after(async () => {
  client.close();
  await running.server.close();
});

/** Waits until `condition` holds, checking every few ms; fails with `what` after 10 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(condition(), `timed out waiting for ${what}`);
}

const put = (key: string, value: string | Buffer = ''): object => ({ key: Buffer.from(key), value: Buffer.from(value) });
const chatPath = '/etcdserverpb.Echo/Chat';

function chatMessage(key: string, value: string | Buffer = ''): Buffer {
  return grpcMessage(encode(putType, put(key, value)));
}

function collect(call: grpc.ClientDuplexStream<object, RangeResponse> | grpc.ClientReadableStream<RangeResponse>): Promise<{ responses: RangeResponse[]; status: grpc.StatusObject }> {
  const responses: RangeResponse[] = [];
  return new Promise((resolve) => {
    call.on('data', (r: RangeResponse) => responses.push(r));
    call.on('error', () => undefined); // the status carries it
    call.on('status', (status: grpc.StatusObject) => resolve({ responses, status }));
  });
}

test('bidi: many messages each way in order; the client half-close ends the call OK', async () => {
  const call = client.makeBidiStreamRequest(chatPath, (v: object) => Buffer.from(encode(putType, v)), (b: Buffer) => decode(rangeResponseType, b) as RangeResponse, new grpc.Metadata());
  const done = collect(call);
  const n = 2000;
  for (let i = 0; i < n; i++) call.write(put('echo', `m${i}`));
  call.end();
  const { responses, status } = await done;
  assert.is(status.code, grpc.status.OK, status.details);
  assert.is(responses.length, n);
  responses.forEach((r, i) => assert.is(Buffer.from(r.kvs[0]!.value).toString(), `m${i}`));
  assert.is(probe.messages, n);
  assert.is(probe.halfCloses, 1);
  assert.is(probe.cancels, 0);
});

test('server-stream: one request, n responses, then OK; grpc_type labels say so', async () => {
  const call = client.makeServerStreamRequest('/etcdserverpb.Echo/Count', (v: object) => Buffer.from(encode(putType, v)), (b: Buffer) => decode(rangeResponseType, b) as RangeResponse, put('count', '500'));
  const { responses, status } = await collect(call);
  assert.is(status.code, grpc.status.OK, status.details);
  assert.equal(responses.map((r) => Buffer.from(r.kvs[0]!.key).toString()), Array.from({ length: 500 }, (_, i) => `count/${i}`));
  const metrics = await running.registry.metrics();
  assert.match(metrics, 'grpc_server_started_total{grpc_type="server_stream",grpc_service="etcdserverpb.Echo",grpc_method="Count"} 1');
  assert.match(metrics, 'grpc_server_handled_total{grpc_type="server_stream",grpc_service="etcdserverpb.Echo",grpc_method="Count",grpc_code="OK"} 1');
  assert.match(metrics, 'grpc_server_started_total{grpc_type="bidi_stream",grpc_service="etcdserverpb.Echo",grpc_method="Chat"}');
});

test('a handler ending with a member error: its etcd code and message, after the messages sent', async () => {
  const call = client.makeBidiStreamRequest(chatPath, (v: object) => Buffer.from(encode(putType, v)), (b: Buffer) => decode(rangeResponseType, b) as RangeResponse, new grpc.Metadata());
  const done = collect(call);
  call.write(put('echo', 'before'));
  call.write(put('fail'));
  const { responses, status } = await done;
  assert.is(responses.length, 1);
  assert.is(status.code, ErrorTable.NoLeader.grpc);
  assert.is(status.details, ErrorTable.NoLeader.message);
  call.end();
});

test('request metadata reaches the handler; the handler may end the call while the client still sends', async () => {
  const metadata = new grpc.Metadata();
  metadata.set('hasleader', 'true');
  metadata.set('x-probe', 'yes');
  const call = client.makeBidiStreamRequest(chatPath, (v: object) => Buffer.from(encode(putType, v)), (b: Buffer) => decode(rangeResponseType, b) as RangeResponse, metadata);
  const done = collect(call);
  call.write(put('end'));
  const { status } = await done;
  assert.is(status.code, grpc.status.OK);
  assert.is(probe.lastMetadata?.get('x-probe'), 'yes');
  assert.is(probe.lastMetadata?.get('hasleader'), 'true');
});

test('raw frames: a client reset (RST_STREAM CANCEL) reaches the handler once; later sends are dropped', async () => {
  const c = openRaw(running.server.port);
  const id = c.newStreamId();
  c.send(headersFrame(id, encodeWithoutIndexing(requestHeaders(chatPath))), dataFrame(id, chatMessage('echo', 'x')));
  await c.nextFrame((f) => f.streamId === id && f.type === DATA, 'the echo');
  c.send(resetFrame(id, CANCEL));
  await until(() => probe.cancels >= 1, 'the handler to hear the reset');
  await c.roundTrip();
  assert.is(probe.cancels, 1);
  assert.is(probe.halfCloses, 0);
});

test('raw frames: a deadline (grpc-timeout) ends the call DEADLINE_EXCEEDED and cancels the handler', async () => {
  const c = openRaw(running.server.port);
  const id = c.newStreamId();
  c.send(headersFrame(id, encodeWithoutIndexing([...requestHeaders(chatPath), ['grpc-timeout', '200m']])), dataFrame(id, chatMessage('echo', 'hi')));
  const answer = await readAnswer(c, id);
  assert.is(field(answer.trailers, 'grpc-status'), '4');
  assert.is(field(answer.trailers, 'grpc-message'), 'context deadline exceeded');
  await until(() => probe.cancels === 1, 'the handler to hear the deadline');
});

test('raw frames: a message over the receive limit is refused from its length prefix', async () => {
  const c = openRaw(running.server.port);
  const id = c.newStreamId();
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(100 * 1024 * 1024, 1);
  c.send(headersFrame(id, encodeWithoutIndexing(requestHeaders(chatPath))), dataFrame(id, chatMessage('echo', 'ok')), dataFrame(id, prefix));
  const answer = await readAnswer(c, id);
  assert.is(field(answer.trailers, 'grpc-status'), '8');
  assert.match(field(answer.trailers, 'grpc-message') ?? '', /^grpc: received message larger than max \(104857600 vs\. \d+\)$/);
});

test('raw frames: many small DATA frames and messages split across frames reassemble in order', async () => {
  const c = openRaw(running.server.port);
  const id = c.newStreamId();
  const bytes = Buffer.concat(Array.from({ length: 300 }, (_, i) => chatMessage('echo', `s${i}`)));
  const frames = [headersFrame(id, encodeWithoutIndexing(requestHeaders(chatPath)))];
  for (let at = 0; at < bytes.length; at += 7) frames.push(dataFrame(id, bytes.subarray(at, Math.min(bytes.length, at + 7)), { endStream: at + 7 >= bytes.length }));
  c.send(...frames);
  const answer = await readAnswer(c, id);
  assert.is(field(answer.trailers, 'grpc-status'), '0');
  const values: string[] = [];
  for (let at = 0; at < answer.body.length; ) {
    const length = answer.body.readUInt32BE(at + 1);
    const r = decode(rangeResponseType, answer.body.subarray(at + 5, at + 5 + length)) as RangeResponse;
    values.push(Buffer.from(r.kvs[0]!.value).toString());
    at += 5 + length;
  }
  assert.equal(values, Array.from({ length: 300 }, (_, i) => `s${i}`));
});

/** Bytes the server sent as DATA on a stream. */
function dataBytes(c: RawConnection, id: number): number {
  return c.frames.filter((f) => f.streamId === id && f.type === DATA).reduce((n, f) => n + f.payload.length, 0);
}

test('a client that stops reading: send says false at the high-water mark, nothing more is produced, onDrain once it reads', async () => {
  // The raw client grants only the default 64 KiB windows and sends no WINDOW_UPDATE: it reads nothing more.
  const c = openRaw(running.server.port);
  const id = c.newStreamId();
  const messageBytes = 16 * 1024;
  c.send(headersFrame(id, encodeWithoutIndexing(requestHeaders(chatPath))), dataFrame(id, chatMessage('flood', String(messageBytes))));
  await until(() => probe.sendFalse === 1, 'send to say false');
  // What left within the client's window, plus the call's high-water mark, plus the one message that crossed it.
  const bound = 65_535 + Limits.grpcStreamReplyBytesHighWater + messageBytes + 64;
  assert.ok(probe.floodBytesBeforeFalse <= bound, `produced ${probe.floodBytesBeforeFalse} bytes before send said false (bound ${bound})`);
  await c.roundTrip();
  assert.is(probe.drains, 0, 'no drain while the client reads nothing');
  assert.ok(dataBytes(c, id) <= 65_535, 'the server kept to the client windows');
  // The client reads: it opens both windows wide.
  c.send(windowUpdateFrame(0, 64 * 1024 * 1024), windowUpdateFrame(id, 64 * 1024 * 1024));
  await until(() => probe.drains >= 1, 'onDrain after the client read');
  // The handler flooded once more after the drain, and said false again.
  await until(() => probe.sendFalse === 2, 'send to say false again');
  assert.is(c.violations.length, 0, c.violations.join('; '));
  c.send(resetFrame(id, CANCEL));
  await until(() => probe.cancels === 1, 'the handler to hear the reset');
});

test('a producer that ignores send\'s answer is stopped at its bound: the stream is reset ENHANCE_YOUR_CALM', async () => {
  const c = openRaw(running.server.port);
  const id = c.newStreamId();
  c.send(headersFrame(id, encodeWithoutIndexing(requestHeaders(chatPath))), dataFrame(id, chatMessage('greedy')));
  const reset = await c.nextFrame((f) => f.streamId === id && f.type === RST_STREAM, 'the reset of the greedy stream');
  assert.is(reset.payload.readUInt32BE(0), ENHANCE_YOUR_CALM);
  const chunk = 64 * 1024 + 5;
  assert.ok(probe.greedyBytes <= Limits.grpcStreamReplyBytesQueuedMax + 65_535 + 2 * chunk, `offered ${probe.greedyBytes} bytes`);
  assert.is(probe.cancels, 1, 'the handler heard the call end');
  // The connection goes on: a new call on it is served.
  const id2 = c.newStreamId();
  c.send(headersFrame(id2, encodeWithoutIndexing(requestHeaders(chatPath))), dataFrame(id2, chatMessage('end')));
  await c.nextFrame((f) => f.streamId === id2 && f.type === HEADERS && (f.flags & 0x1) !== 0, 'the second call to end');
});

test.run();
