/** Framing: the hand-written RaftBatch encoder against protobufjs, and the decoder over random TCP splits. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameDecoder } from '../../src/peer/frame-decoder.js';
import {
  decodeEnvelope, encodeHandshakeFrame, encodeRaftBatchFrames, encodeRawEnvelopeFrame, encodeSnapshotChunkFrame,
  EnvelopeType, PeerDecodeError, StreamKind,
} from '../../src/peer/peer-codec.js';
import { randomBytesSeeded, seededRandom } from './peer-test-helpers.js';

function randomBatch(random: () => number): Buffer[] {
  const count = 1 + Math.floor(random() * 40);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const r = random();
    // Mostly small (heartbeats, votes), some empty, some around varint boundaries, a few large.
    const len = r < 0.1 ? 0 : r < 0.6 ? Math.floor(random() * 100) : r < 0.97 ? 120 + Math.floor(random() * 5000) : Math.floor(random() * 100_000);
    out.push(randomBytesSeeded(random, len));
  }
  return out;
}

test('hand-written RaftBatch frame is byte-identical to protobufjs encoding', () => {
  const random = seededRandom(7);
  for (let round = 0; round < 200; round++) {
    const batch = randomBatch(random);
    const mine = encodeRaftBatchFrames(batch, 0, batch.length, 1 << 30);
    const body = EnvelopeType.encode(EnvelopeType.fromObject({ raft_batch: { messages: batch } })).finish();
    assert.is(mine.readUInt32BE(0), body.length, `round ${round}: length prefix`);
    assert.ok(Buffer.from(body).equals(mine.subarray(4)), `round ${round}: payload differs`);
  }
});

test('worked example from peer-codec.ts header', () => {
  const frame = encodeRaftBatchFrames([Buffer.from([0xaa, 0xbb, 0xcc]), Buffer.alloc(0)], 0, 2, 1024);
  assert.is(frame.toString('hex'), '000000091a070a03aabbcc0a00');
});

test('property: random batches through random TCP split points decode to the same messages in order', () => {
  const seed = 1234;
  const random = seededRandom(seed);
  for (let round = 0; round < 300; round++) {
    const batches: Buffer[][] = [];
    const parts: Buffer[] = [];
    const frameBytesMax = 1 + Math.floor(random() * 300_000);
    const expected: Buffer[] = [];
    const batchCount = 1 + Math.floor(random() * 6);
    for (let b = 0; b < batchCount; b++) {
      const batch = randomBatch(random).filter((m) => m.length + 16 <= frameBytesMax);
      batches.push(batch);
      expected.push(...batch);
      parts.push(encodeRaftBatchFrames(batch, 0, batch.length, frameBytesMax));
      // Zero-length frames (empty envelopes) may sit anywhere between frames.
      if (random() < 0.3) parts.push(Buffer.alloc(4));
    }
    const stream = Buffer.concat(parts);
    // Cut the byte stream at random points: 1-byte reads, reads inside headers, many frames per read.
    const cuts: number[] = [];
    for (let pos = 0; pos < stream.length;) {
      const r = random();
      pos += r < 0.2 ? 1 : r < 0.4 ? 1 + Math.floor(random() * 5) : 1 + Math.floor(random() * 70_000);
      cuts.push(Math.min(pos, stream.length));
    }
    const decoder = new FrameDecoder(frameBytesMax);
    const got: Buffer[] = [];
    let empties = 0;
    let start = 0;
    for (const cut of cuts) {
      // Copy each read, as a socket would hand us fresh buffers.
      const error = decoder.push(Buffer.from(stream.subarray(start, cut)), (payload) => {
        const env = decodeEnvelope(payload);
        if (env.kind === 'none') empties++;
        else if (env.kind === 'raftBatch') got.push(...env.messages.map((m) => Buffer.from(m)));
        else assert.unreachable(`unexpected ${env.kind}`);
      });
      assert.is(error, null, `seed ${seed} round ${round}`);
      start = cut;
    }
    assert.is(decoder.bufferedBytes, 0, `round ${round}: bytes left over`);
    assert.is(got.length, expected.length, `seed ${seed} round ${round}: message count`);
    for (let i = 0; i < got.length; i++) assert.ok(got[i]!.equals(expected[i]!), `seed ${seed} round ${round}: message ${i} differs`);
    assert.is(empties, parts.filter((p) => p.length === 4).length);
  }
});

test('a batch larger than frameBytesMax is cut into several frames in one buffer', () => {
  const messages = Array.from({ length: 10 }, (_, i) => Buffer.alloc(1000, i));
  const out = encodeRaftBatchFrames(messages, 0, messages.length, 2500);
  const decoder = new FrameDecoder(2500);
  const frames: Buffer[][] = [];
  assert.is(decoder.push(out, (p) => {
    assert.ok(p.length <= 2500);
    const env = decodeEnvelope(p);
    if (env.kind === 'raftBatch') frames.push(env.messages.map((m) => Buffer.from(m)));
  }), null);
  assert.is(frames.length, 5);
  assert.equal(frames.flat().map((m) => m[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('oversize length is refused as soon as its header is seen, before buffering the payload', () => {
  const decoder = new FrameDecoder(1000);
  let frames = 0;
  assert.is(decoder.push(Buffer.from([0, 0]), () => frames++), null);
  const err = decoder.push(Buffer.from([0x10, 0x00]), () => frames++);
  assert.match(err ?? '', 'exceeds the 1000-byte limit');
  assert.is(decoder.bufferedBytes, 0);
  // The decoder stays failed: later input is refused, nothing is emitted.
  assert.ok(decoder.push(Buffer.alloc(100), () => frames++) !== null);
  assert.is(frames, 0);
  // 0xffffffff: a length that does not fit any limit.
  assert.match(new FrameDecoder(1 << 30).push(Buffer.from([0xff, 0xff, 0xff, 0xff, 1]), () => {}) ?? '', 'exceeds');
});

test('frame at exactly the limit is accepted; one byte over is refused', () => {
  const ok = new FrameDecoder(10);
  let got = 0;
  assert.is(ok.push(Buffer.concat([Buffer.from([0, 0, 0, 10]), Buffer.alloc(10)]), () => got++), null);
  assert.is(got, 1);
  assert.ok(new FrameDecoder(10).push(Buffer.from([0, 0, 0, 11]), () => {}) !== null);
});

test('garbage payloads fail to decode with PeerDecodeError, never another exception', () => {
  const random = seededRandom(99);
  let decodeErrors = 0;
  for (let i = 0; i < 5000; i++) {
    const payload = randomBytesSeeded(random, 1 + Math.floor(random() * 64));
    try {
      decodeEnvelope(payload);
    } catch (err) {
      assert.instance(err, PeerDecodeError);
      decodeErrors++;
    }
  }
  assert.ok(decodeErrors > 2500, `only ${decodeErrors} of 5000 random payloads were refused`);
  assert.throws(() => decodeEnvelope(Buffer.from([0x1a, 0x05, 0x0a])), (e: unknown) => e instanceof PeerDecodeError);
  // Only an unknown field: not a frame we understand.
  assert.throws(() => decodeEnvelope(Buffer.from([0x78, 0x01])), (e: unknown) => e instanceof PeerDecodeError);
});

test('handshake and snapshot chunk round-trip, including 64-bit ids above 2^63', () => {
  const h = { clusterId: 0xfedcba9876543210n, fromMemberId: 0x8000000000000001n, toMemberId: 2n, protocolVersion: 1, stream: StreamKind.Snapshot };
  const env = decodeEnvelope(encodeHandshakeFrame(h).subarray(4));
  assert.equal(env, { kind: 'handshake', handshake: h });
  const c = { snapshotId: 0xffffffffffffffffn, offset: 2 ** 40, data: Buffer.from('abc'), metadata: Buffer.from('m'), last: true, totalBytes: 2 ** 40 + 3, sha256: Buffer.alloc(32, 7) };
  const back = decodeEnvelope(encodeSnapshotChunkFrame(c).subarray(4));
  assert.is(back.kind, 'snapshotChunk');
  if (back.kind !== 'snapshotChunk') return;
  assert.is(back.chunk.snapshotId, c.snapshotId);
  assert.is(back.chunk.offset, c.offset);
  assert.is(back.chunk.totalBytes, c.totalBytes);
  assert.ok(Buffer.from(back.chunk.data).equals(c.data));
  assert.ok(Buffer.from(back.chunk.sha256).equals(c.sha256));
  // An offset beyond 2^53 is refused as garbage, not rounded.
  const huge = encodeRawEnvelopeFrame({ snapshot_chunk: { offset: '18446744073709551615' } });
  assert.throws(() => decodeEnvelope(huge.subarray(4)), (e: unknown) => e instanceof PeerDecodeError);
});

test.run();
