/**
 * How the HTTP/2 connection gathers its output (http/http2-connection.ts): every frame queued in a
 * tick goes out in one socket write, in the order queued, and a PING ACK is held while a stream is
 * open so that it rides in the write of that stream's reply (http/held-output.ts), for at most
 * the hold. What must never happen when writes are gathered: a frame lost, frames of two streams
 * mixed up (a header block split by another stream's frame, one stream's bytes in another's
 * answer), a PING never acknowledged, or a write after the connection closed.
 *
 * Two levels: a real client port under many concurrent streams with PINGs among them, every answer
 * checked byte for byte; and an Http2Connection over a stand-in socket that records each write, so
 * which frames share a write is seen exactly (no timing: a loopback read may merge or split writes).
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeWithoutIndexing } from '../../src/http/hpack.js';
import { HeldOutput } from '../../src/http/held-output.js';
import { Http2Connection, Http2SharedBudget, HTTP2_PREFACE, DEFAULT_HTTP2_TIMING, type Http2ServerStream, type PieceOutput, type PieceWriter } from '../../src/http/http2-connection.js';
import { Limits } from '../../src/platform/limits.js';
import { silentLogger } from '../../src/platform/logger.js';
import { decode, encode } from '../../src/proto/codec.js';
import { rng } from '../seeded-random.js';
import { startWithMemoryMember, type Running } from './helpers.js';
import {
  openConnections, openRaw, frame, settingsFrame, headersFrame, dataFrame, pingFrame, windowUpdateFrame, unaryFrames, putRequest, grpcMessage, rangeType,
  rangeResponseType, readAnswer, assertOk, describe, requestHeaders, PING, HEADERS, DATA, SETTINGS, FLAG_ACK, FLAG_END_STREAM, FLAG_END_HEADERS,
  SETTINGS_INITIAL_WINDOW_SIZE, type Frame,
} from './http2-raw-client.js';

let running: Running;

test.before(async () => {
  running = await startWithMemoryMember();
});

test.after(async () => {
  for (const c of openConnections) c.destroy();
  await running.server.close();
});

/** Waits (polling, no fixed sleep) until `check` holds. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function queuedReplyBytes(): Promise<number> {
  const text = await running.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith('keyraft_client_reply_bytes_queued '));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

// ---- a real client port ------------------------------------------------------------------------

/** A unary Put whose message goes in DATA frames of at most 16 KB (the server's frame size). */
function putFrames(streamId: number, key: string, value: Buffer): Buffer[] {
  const message = putRequest(key, value);
  const frames = [headersFrame(streamId, encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put')))];
  for (let at = 0; at < message.length; at += 16_384) {
    frames.push(dataFrame(streamId, message.subarray(at, at + 16_384), { endStream: at + 16_384 >= message.length }));
  }
  return frames;
}

test('600 concurrent Range calls on one connection, PINGs among them, windows opened as data arrives: every answer is its own key and value byte for byte, every PING is acknowledged', async () => {
  const random = rng(13);
  // Values from 1 byte to 40 KB: small answers fit one DATA frame, large ones span several
  // frames and wait for window, so gathered writes mix whole answers with pieces of others.
  const values = new Map<string, Buffer>();
  const writer = openRaw(running.server.port);
  for (let i = 0; i < 60; i++) {
    const size = i % 10 === 0 ? 20_000 + Math.floor(random() * 20_000) : 1 + Math.floor(random() * 300);
    const value = Buffer.alloc(size);
    for (let j = 0; j < size; j++) value[j] = Math.floor(random() * 256);
    const key = `gather/${i}`;
    values.set(key, value);
    const id = writer.newStreamId();
    writer.send(...putFrames(id, key, value));
    assertOk(await readAnswer(writer, id));
  }
  writer.destroy();

  // Stream windows of 16 KB and the connection's default 64 KB, opened only as data arrives: the
  // large answers wait for our WINDOW_UPDATEs while small ones go on, so gathered writes mix whole
  // answers with pieces of others.
  const c = openRaw(running.server.port, [[SETTINGS_INITIAL_WINDOW_SIZE, 16_384]]);
  const keys = [...values.keys()];
  const asked = new Map<number, string>();
  const pings: Buffer[] = [];
  const frames: Buffer[] = [];
  for (let i = 0; i < 600; i++) {
    const key = keys[Math.floor(random() * keys.length)]!;
    const id = c.newStreamId();
    asked.set(id, key);
    frames.push(...unaryFrames(id, '/etcdserverpb.KV/Range', grpcMessage(encode(rangeType, { key: Buffer.from(key) }))));
    // Three PINGs: more, sent before any answer, would be too many (etcd's ping policy: GOAWAY).
    if (i % 200 === 100) {
      const data = Buffer.alloc(8);
      data.writeUInt32BE(i, 4);
      pings.push(data);
      frames.push(pingFrame(data));
    }
  }
  // All of it in three writes, so the server reads many calls per read and answers them in one turn.
  const third = Math.ceil(frames.length / 3);
  for (let at = 0; at < frames.length; at += third) c.send(...frames.slice(at, at + third));
  const credited = new Map<number, number>();
  let connectionCredited = 0;
  const ended = (): number => c.frames.filter((f) => (f.flags & FLAG_END_STREAM) !== 0 && (f.type === HEADERS || f.type === DATA)).length;
  await waitFor('all 600 answers', () => {
    for (const [id, bytes] of c.streamData) {
      const given = credited.get(id) ?? 0;
      if (bytes > given) {
        c.send(windowUpdateFrame(id, bytes - given));
        credited.set(id, bytes);
      }
    }
    if (c.connectionData > connectionCredited) {
      c.send(windowUpdateFrame(0, c.connectionData - connectionCredited));
      connectionCredited = c.connectionData;
    }
    return ended() === asked.size;
  }, 60_000).catch((err) => { throw new Error(`${(err as Error).message}: ${ended()} ended, ${c.frames.length} frames, data ${c.connectionData}, last ${c.frames.slice(-5).map(describe).join(', ')}, violations ${c.violations.join('; ')}`); });
  assert.equal(c.violations, [], 'no frame of another stream inside a header block, no window overrun, every header block decodes');
  for (const [id, key] of asked) {
    const answer = await readAnswer(c, id);
    const response = decode<any>(rangeResponseType, assertOk(answer));
    assert.is(response.kvs.length, 1, `stream ${id}: one kv`);
    assert.is(Buffer.from(response.kvs[0].key).toString(), key, `stream ${id} answers its own key`);
    assert.ok(Buffer.from(response.kvs[0].value).equals(values.get(key)!), `stream ${id}: the value of ${key}, byte for byte`);
    // Per stream: response HEADERS, then DATA, then trailers ending it, nothing after.
    const own = answer.frames;
    assert.is(own[0]!.type, HEADERS, `stream ${id} begins with HEADERS`);
    assert.ok(own.slice(1, -1).every((f) => f.type === DATA), `stream ${id}: only DATA between its header blocks: ${own.map(describe).join(', ')}`);
    assert.ok(own.at(-1)!.type === HEADERS && (own.at(-1)!.flags & FLAG_END_STREAM) !== 0, `stream ${id} ends with trailers`);
  }
  for (const data of pings) {
    assert.ok(c.frames.some((f) => f.type === PING && (f.flags & FLAG_ACK) !== 0 && f.payload.equals(data)), `PING ${data.toString('hex')} acknowledged`);
  }
});

test('a client that closes its connection while many large answers are being written: nothing is held afterwards and the port serves on', async () => {
  const big = Buffer.alloc(200_000, 0x7a);
  const writer = openRaw(running.server.port);
  const id = writer.newStreamId();
  writer.send(...putFrames(id, 'gather/big', big));
  assertOk(await readAnswer(writer, id));
  writer.destroy();

  const c = openRaw(running.server.port, [[SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]);
  c.send(windowUpdateFrame(0, 2 ** 31 - 1 - 65_535));
  const frames: Buffer[] = [];
  for (let i = 0; i < 200; i++) frames.push(...unaryFrames(c.newStreamId(), '/etcdserverpb.KV/Range', grpcMessage(encode(rangeType, { key: Buffer.from('gather/big') }))));
  c.send(...frames);
  // Close as soon as the first answer bytes arrive: the rest is queued or in gathered writes.
  await c.waitFor(() => (c.connectionData > 0 ? true : undefined), 'the first DATA');
  c.destroy();
  await waitFor('the queued reply bytes to be released', async () => (await queuedReplyBytes()) === 0);
  const after = openRaw(running.server.port);
  const next = after.newStreamId();
  after.send(...unaryFrames(next, '/etcdserverpb.KV/Put', putRequest('gather/after', 'still serving')));
  assertOk(await readAnswer(after, next));
  after.destroy();
});

// ---- one connection over a recording socket ----------------------------------------------------

/** A stand-in socket: takes every write whole and records it; 'close' is emitted by the test. */
class RecordingSocket extends EventEmitter {
  readonly writes: Buffer[] = [];
  writableLength = 0;
  writableNeedDrain = false;
  bytesWritten = 0;
  ended = false;
  write(data: Buffer): boolean {
    assert.not.ok(this.ended, 'a write after the socket ended');
    this.writes.push(Buffer.from(data));
    this.bytesWritten += data.length;
    return true;
  }
  pause(): this { return this; }
  resume(): this { return this; }
  end(): this { this.ended = true; return this; }
  destroy(): this { this.ended = true; return this; }
}

/** The frames of one write, as the raw client would parse them. */
function framesOf(write: Buffer): Frame[] {
  const out: Frame[] = [];
  for (let at = 0; at + 9 <= write.length; ) {
    const length = write.readUIntBE(at, 3);
    out.push({ type: write[at + 3]!, flags: write[at + 4]!, streamId: write.readUInt32BE(at + 5) & 0x7fffffff, payload: write.subarray(at + 9, at + 9 + length) });
    at += 9 + length;
  }
  return out;
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Bench {
  socket: RecordingSocket;
  connection: Http2Connection;
  streams: Http2ServerStream[];
  held: HeldOutput;
  budget: Http2SharedBudget;
}

/** An Http2Connection past the preface whose streams wait for the test to answer them. */
async function connectionOverRecorder(holdMs = 60_000): Promise<Bench> {
  const socket = new RecordingSocket();
  const streams: Http2ServerStream[] = [];
  const held = new HeldOutput(holdMs);
  const budget = new Http2SharedBudget();
  const connection = new Http2Connection(socket as unknown as Socket, {
    onStream(stream) {
      streams.push(stream);
      stream.handler = { onData() {}, onEnd() {}, onAbort() {} };
    },
    onWritable() {},
  }, silentLogger, budget, { ...DEFAULT_HTTP2_TIMING, pingAckHoldMs: holdMs }, undefined, held);
  connection.receive(Buffer.concat([HTTP2_PREFACE, frame(SETTINGS, 0, 0)]));
  await tick();
  socket.writes.length = 0; // our preface and the SETTINGS ACK
  return { socket, connection, streams, held, budget };
}

const requestBlock = encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put'));
const responseBlock = encodeWithoutIndexing([[':status', '200'], ['content-type', 'application/grpc']]);
const trailerBlock = encodeWithoutIndexing([['grpc-status', '0']]);

function answer(stream: Http2ServerStream, body: string): void {
  stream.respond(responseBlock, false);
  stream.write(Buffer.from(body));
  stream.end(trailerBlock);
}

test('held output: a tick writes only the connections that held before the tick before it (each holds between holdMs / 2 and holdMs)', () => {
  const held = new HeldOutput(60_000); // the real timer never fires here: the test ticks
  const written: string[] = [];
  const conn = (name: string) => ({ flushHeld: () => written.push(name) });
  const a = conn('a'); const b = conn('b'); const c = conn('c');
  held.add(a);
  held.tick();
  assert.equal(written, [], 'a began just before the tick: it keeps holding');
  held.add(b);
  held.add(c);
  held.delete(c); // c wrote by itself
  held.tick();
  assert.equal(written, ['a']);
  held.tick();
  assert.equal(written, ['a', 'b']);
  held.add(a);
  held.flushAll();
  assert.equal(written, ['a', 'b', 'a']);
  held.tick();
  assert.equal(written, ['a', 'b', 'a'], 'nothing twice');
});

test('recorder: a PING with no stream open on a connection that has had no call is answered in the next write, alone', async () => {
  const b = await connectionOverRecorder();
  b.connection.receive(pingFrame(Buffer.from('pingpong')));
  await tick();
  assert.is(b.socket.writes.length, 1);
  const [ack] = framesOf(b.socket.writes[0]!);
  assert.ok(ack!.type === PING && (ack!.flags & FLAG_ACK) !== 0 && ack!.payload.toString() === 'pingpong', describe(ack!));
  b.connection.destroy();
});

test('recorder: a PING that comes just after a reply (no call open) is held and rides with the next call\'s reply; after the hold it goes alone', async () => {
  // As a grpc-go client with one call at a time: it PINGs as it reads each reply, and its next
  // call comes later. Answered at once, each such PING costs a socket write of its own.
  const b = await connectionOverRecorder();
  b.connection.receive(Buffer.concat([headersFrame(1, requestBlock), dataFrame(1, putRequest('a'), { endStream: true })]));
  await tick();
  answer(b.streams[0]!, 'reply-1');
  await tick();
  assert.is(b.socket.writes.length, 1);
  b.connection.receive(pingFrame(Buffer.from('after-r1')));
  await tick();
  assert.is(b.socket.writes.length, 1, 'the ACK waits for the next reply');
  b.connection.receive(Buffer.concat([headersFrame(3, requestBlock), dataFrame(3, putRequest('b'), { endStream: true })]));
  await tick();
  answer(b.streams[1]!, 'reply-3');
  await tick();
  assert.is(b.socket.writes.length, 2, 'the ACK and the reply in one write');
  assert.equal(framesOf(b.socket.writes[1]!).map((f) => [f.type, f.streamId]), [[PING, 0], [HEADERS, 3], [DATA, 3], [HEADERS, 3]]);
  // No next call: the hold's end writes the ACK alone.
  b.connection.receive(pingFrame(Buffer.from('after-r3')));
  await tick();
  assert.is(b.socket.writes.length, 2);
  b.held.flushAll();
  assert.is(b.socket.writes.length, 3);
  assert.equal(framesOf(b.socket.writes[2]!).map((f) => [f.type, f.flags, f.payload.toString()]), [[PING, FLAG_ACK, 'after-r3']]);
  b.connection.destroy();
});

test('recorder: a PING that arrives with a call waits for the call\'s answer and goes first in the same write', async () => {
  const b = await connectionOverRecorder();
  // As grpc-go writes it: WINDOW_UPDATE, PING, then the call, in one read.
  b.connection.receive(Buffer.concat([windowUpdateFrame(0, 100), pingFrame(Buffer.from('bdp-ping')), headersFrame(1, requestBlock), dataFrame(1, putRequest('k'), { endStream: true })]));
  await tick();
  await tick();
  assert.is(b.socket.writes.length, 0, 'nothing written while the call is unanswered');
  answer(b.streams[0]!, 'reply-1');
  await tick();
  assert.is(b.socket.writes.length, 1, 'the ACK and the answer in one write');
  const frames = framesOf(b.socket.writes[0]!);
  assert.equal(frames.map((f) => [f.type, f.streamId]), [[PING, 0], [HEADERS, 1], [DATA, 1], [HEADERS, 1]]);
  assert.is(frames[0]!.payload.toString(), 'bdp-ping');
  assert.is(frames[2]!.payload.toString(), 'reply-1');
  b.connection.destroy();
});

test('recorder: a held ACK whose call never answers goes when the hold ends (the shared timer), alone; a real timer fires too', async () => {
  const b = await connectionOverRecorder();
  b.connection.receive(Buffer.concat([headersFrame(1, requestBlock, { endStream: false }), pingFrame(Buffer.from('held-ack'))]));
  await tick();
  assert.is(b.socket.writes.length, 0);
  b.held.flushAll(); // what the timer does when it fires
  assert.is(b.socket.writes.length, 1);
  assert.equal(framesOf(b.socket.writes[0]!).map((f) => [f.type, f.flags, f.payload.toString()]), [[PING, FLAG_ACK, 'held-ack']]);
  // Later output is not held back by what went before.
  answer(b.streams[0]!, 'late');
  await tick();
  assert.is(b.socket.writes.length, 2);
  b.connection.destroy();

  const short = await connectionOverRecorder(5);
  short.connection.receive(Buffer.concat([headersFrame(1, requestBlock, { endStream: false }), pingFrame(Buffer.from('timer-ak'))]));
  await waitFor('the hold timer to write the ACK', () => short.socket.writes.length === 1);
  assert.is(framesOf(short.socket.writes[0]!)[0]!.payload.toString(), 'timer-ak');
  short.connection.destroy();
});

test('recorder: answers of many streams queued in one tick go in one write, each stream\'s frames in order, nothing lost', async () => {
  const b = await connectionOverRecorder();
  const calls: Buffer[] = [];
  for (let id = 1; id <= 199; id += 2) calls.push(headersFrame(id, requestBlock), dataFrame(id, putRequest(`k${id}`), { endStream: true }));
  b.connection.receive(Buffer.concat(calls));
  await tick();
  assert.is(b.streams.length, 100);
  // Answered in a scrambled order, all in one tick.
  const order = b.streams.map((s, i) => ({ s, k: (i * 37) % 100 })).sort((x, y) => x.k - y.k).map((x) => x.s);
  for (const s of order) answer(s, `reply-${s.id}`);
  await tick();
  assert.is(b.socket.writes.length, 1);
  const frames = framesOf(b.socket.writes[0]!);
  assert.is(frames.length, 300);
  for (let i = 0; i < 100; i++) {
    const s = order[i]!;
    const [h, d, t] = frames.slice(3 * i, 3 * i + 3);
    assert.equal([h!.type, d!.type, t!.type], [HEADERS, DATA, HEADERS]);
    assert.ok(h!.streamId === s.id && d!.streamId === s.id && t!.streamId === s.id, `frames ${3 * i}..${3 * i + 2} are stream ${s.id}'s`);
    assert.is(d!.payload.toString(), `reply-${s.id}`);
    assert.ok((h!.flags & FLAG_END_HEADERS) !== 0 && (t!.flags & (FLAG_END_HEADERS | FLAG_END_STREAM)) === (FLAG_END_HEADERS | FLAG_END_STREAM));
  }
  b.connection.destroy();
});

test('recorder: the connection closes between queuing answers and their gathered write: nothing is written, every byte is released, a held ACK is dropped', async () => {
  const b = await connectionOverRecorder();
  const calls: Buffer[] = [];
  for (let id = 1; id <= 19; id += 2) calls.push(headersFrame(id, requestBlock), dataFrame(id, putRequest(`k${id}`), { endStream: true }));
  // One more call that stays open, and a PING for it to hold.
  calls.push(headersFrame(21, requestBlock, { endStream: false }), pingFrame(Buffer.from('ack-gone')));
  b.connection.receive(Buffer.concat(calls));
  await tick();
  assert.is(b.socket.writes.length, 0, 'the ACK is held');
  assert.ok(b.budget.requestBytes > 0, 'the requests are held until their streams close');
  let aborted = 0;
  b.streams[10]!.handler = { onData() {}, onEnd() {}, onAbort: () => aborted++ };
  // Three answers larger than a stream's window (65,535 until the client says otherwise): part of
  // each waits on its stream; the rest of everything is gathered for the tick's write.
  for (const s of b.streams.slice(0, 3)) {
    s.respond(responseBlock, false);
    s.write(Buffer.alloc(100_000, 0x61));
    s.end(trailerBlock);
  }
  for (const s of b.streams.slice(3, 10)) answer(s, 'x'.repeat(1000));
  assert.ok(b.budget.replyBytes > 0, 'reply bytes wait for window');
  // Three windows' worth (196 KB) outgrew the turn's chunk (Limits.http2OutputChunkBytes): the
  // full chunks went out as they filled; the small answers after them are still gathered.
  const writesBeforeClose = b.socket.writes.length;
  assert.ok(writesBeforeClose >= 1 && b.socket.bytesWritten < 3 * 65_535 + 7 * 1000, 'part of the turn is still gathered at the close');
  b.socket.emit('close'); // before the tick's flush
  await tick();
  await tick();
  assert.is(b.socket.writes.length, writesBeforeClose, 'nothing written after the close');
  assert.is(b.budget.requestBytes, 0, 'request bytes released');
  assert.is(b.budget.replyBytes, 0, 'reply bytes released');
  assert.is(aborted, 1, 'the open stream heard of the close');
  b.held.flushAll(); // the hold ending later writes nothing for a closed connection
  assert.is(b.socket.writes.length, writesBeforeClose);
});

test('recorder: a turn\'s output past Limits.http2OutputChunkBytes goes in several writes, none larger, as it fills; every frame whole and in order', async () => {
  const b = await connectionOverRecorder();
  b.connection.receive(Buffer.concat([settingsFrame([[SETTINGS_INITIAL_WINDOW_SIZE, 8 * 1024 * 1024]]), windowUpdateFrame(0, 8 * 1024 * 1024)]));
  await tick();
  b.socket.writes.length = 0;
  const calls: Buffer[] = [];
  for (let id = 1; id <= 39; id += 2) calls.push(headersFrame(id, requestBlock), dataFrame(id, putRequest(`k${id}`), { endStream: true }));
  b.connection.receive(Buffer.concat(calls));
  await tick();
  b.socket.writes.length = 0;
  // 20 answers of 20 KB: 400 KB framed in one turn.
  for (const s of b.streams) {
    s.respond(responseBlock, false);
    s.write(Buffer.alloc(20_000, s.id));
    s.end(trailerBlock);
  }
  const writtenBeforeTheTick = b.socket.writes.length;
  assert.ok(writtenBeforeTheTick >= 4, `full chunks are written as the turn goes (${writtenBeforeTheTick} writes before its end)`);
  await tick();
  const all = Buffer.concat(b.socket.writes);
  for (const w of b.socket.writes) assert.ok(w.length <= Limits.http2OutputChunkBytes, `a write of ${w.length} bytes`);
  // Every write ends on a frame boundary, and the frames are each stream's in order.
  for (const w of b.socket.writes) {
    let at = 0;
    while (at < w.length) at += 9 + w.readUIntBE(at, 3);
    assert.is(at, w.length, 'a write ends where a frame ends');
  }
  const body = new Map<number, Buffer[]>();
  for (const f of framesOf(all)) if (f.type === DATA) body.set(f.streamId, [...(body.get(f.streamId) ?? []), f.payload]);
  for (const s of b.streams) assert.ok(Buffer.concat(body.get(s.id) ?? []).equals(Buffer.alloc(20_000, s.id)), `stream ${s.id}'s body`);
  b.connection.destroy();
});

test('recorder: writeDirect fills DATA frames in place, a piece never split, frames no larger than the client\'s frame size; refused (nothing written) when the window is short or body waits', async () => {
  const b = await connectionOverRecorder();
  b.connection.receive(Buffer.concat([headersFrame(1, requestBlock, { endStream: false }), headersFrame(3, requestBlock, { endStream: false })]));
  await tick();
  const [s1, s3] = b.streams as [Http2ServerStream, Http2ServerStream];
  s1.respond(responseBlock, false);
  // 60 pieces of 1,000 bytes = 60,000 of the 65,535 window: one DATA frame holds 16 of them (16,384 max).
  const pieces = (count: number, size: number, fill: number): PieceWriter => ({
    writePieces(out: PieceOutput) {
      for (let i = 0; i < count; i++) {
        const at = out.reserve(size);
        out.buffer.fill(fill + (i % 7), at, at + size);
      }
    },
  });
  assert.ok(s1.writeDirect(60 * 1000, 1000, pieces(60, 1000, 10)));
  assert.not.ok(s1.writeDirect(10 * 1000, 1000, pieces(10, 1000, 20)), 'the stream window has 5,535 bytes left');
  s3.respond(responseBlock, false);
  s3.write(Buffer.alloc(70_000, 1)); // more than its window: part waits
  assert.not.ok(s3.writeDirect(100, 100, pieces(1, 100, 30)), 'body of the stream waits before it');
  await tick();
  const frames = framesOf(Buffer.concat(b.socket.writes)).filter((f) => f.type === DATA && f.streamId === 1);
  assert.ok(frames.length === 4 && frames.every((f) => f.payload.length <= 16_384 && f.payload.length % 1000 === 0), `frames of ${frames.map((f) => f.payload.length)}`);
  const body = Buffer.concat(frames.map((f) => f.payload));
  assert.is(body.length, 60_000);
  for (let i = 0; i < 60; i++) assert.ok(body.subarray(i * 1000, (i + 1) * 1000).every((x) => x === 10 + (i % 7)), `piece ${i}`);
  b.connection.destroy();
});

test.run();
