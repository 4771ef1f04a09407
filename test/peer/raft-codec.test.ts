/**
 * The hand-written raftpb.Message codec (src/peer/raft-codec.ts): round trips of every message
 * type, agreement with protobufjs over protocol/raft/raft.proto in both directions, malformed input
 * (only RaftDecodeError, never anything else) and a seeded fuzz of random and mutated encodings.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import * as protobuf from 'protobufjs';
import { decodeRaftMessage, encodeRaftMessage, RaftDecodeError } from '../../src/peer/raft-codec.js';
import { packageRoot } from '../../src/platform/package-root.js';
import { EntryType, MessageType, makeMessage, type Entry, type Message, type Snapshot } from '../../src/raft/raft-types.js';
import { randomBytesSeeded, seededRandom } from './peer-test-helpers.js';

const root = protobuf.loadSync(join(packageRoot, 'protocol', 'raft', 'raft.proto'));
const MessagePb = root.lookupType('raftpb.Message');

const maxId = (1n << 64n) - 1n;
const bigIds = [1n, 127n, 128n, 1n << 63n, (1n << 63n) + 12345n, maxId];
const messageTypes = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number');

function randomId(random: () => number): bigint {
  const r = random();
  if (r < 0.3) return bigIds[Math.floor(random() * bigIds.length)]!;
  if (r < 0.4) return 0n;
  return (BigInt(Math.floor(random() * 2 ** 32)) << 32n) | BigInt(Math.floor(random() * 2 ** 32));
}

/** Safe integers around the varint byte boundaries, and 0 (omitted on the wire). */
function randomNumber(random: () => number): number {
  const r = random();
  if (r < 0.2) return 0;
  if (r < 0.4) return Number.MAX_SAFE_INTEGER - Math.floor(random() * 3);
  const bits = [7, 14, 21, 28, 35, 42, 49, 53][Math.floor(random() * 8)]!;
  return Math.floor(random() * 2 ** bits);
}

function randomEntry(random: () => number): Entry {
  return {
    term: randomNumber(random), index: randomNumber(random),
    type: random() < 0.8 ? EntryType.Normal : EntryType.ConfChange,
    data: randomBytesSeeded(random, random() < 0.2 ? 0 : Math.floor(random() * 300)),
  };
}

function randomSnapshot(random: () => number): Snapshot {
  const ids = (): bigint[] => Array.from({ length: Math.floor(random() * 5) }, () => randomId(random) || 1n);
  return {
    metadata: { index: randomNumber(random), term: randomNumber(random), confState: { voters: ids(), learners: ids() } },
    data: randomBytesSeeded(random, Math.floor(random() * 500)),
  };
}

function randomMessage(random: () => number, type?: MessageType): Message {
  const t = type ?? messageTypes[Math.floor(random() * messageTypes.length)]!;
  return makeMessage({
    type: t, from: randomId(random), to: randomId(random), term: randomNumber(random), logTerm: randomNumber(random),
    index: randomNumber(random), commit: randomNumber(random), reject: random() < 0.5, rejectHint: randomNumber(random),
    entries: Array.from({ length: random() < 0.3 ? 0 : Math.floor(random() * 6) }, () => randomEntry(random)),
    snapshot: random() < 0.4 ? randomSnapshot(random) : null,
    // An empty context is omitted on the wire and decodes as null: only null or non-empty round trips.
    context: random() < 0.5 ? null : randomBytesSeeded(random, 1 + Math.floor(random() * 40)),
    transferee: randomId(random),
  });
}

/** The codec's Message as plain values (bytes as arrays) for deep comparison. */
function plain(m: Message): unknown {
  const bytes = (b: Uint8Array | null): number[] | null => (b === null ? null : [...b]);
  return {
    ...m,
    entries: m.entries.map((e) => ({ ...e, data: bytes(e.data) })),
    snapshot: m.snapshot === null ? null : { metadata: m.snapshot.metadata, data: bytes(m.snapshot.data) },
    context: bytes(m.context),
  };
}

/** The same message as protobufjs sees it (toObject with longs as strings, defaults omitted). */
function pbObject(m: Message): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const num = (name: string, v: number | bigint): void => {
    if (v !== 0 && v !== 0n) o[name] = String(v);
  };
  o.type = m.type;
  num('from', m.from);
  num('to', m.to);
  num('term', m.term);
  num('logTerm', m.logTerm);
  num('index', m.index);
  if (m.entries.length > 0) {
    o.entries = m.entries.map((e) => {
      const pe: Record<string, unknown> = {};
      if (e.term !== 0) pe.term = String(e.term);
      if (e.index !== 0) pe.index = String(e.index);
      if (e.type !== 0) pe.type = e.type;
      if (e.data.length > 0) pe.data = [...e.data];
      return pe;
    });
  }
  num('commit', m.commit);
  if (m.reject) o.reject = true;
  num('rejectHint', m.rejectHint);
  if (m.snapshot !== null) {
    const meta: Record<string, unknown> = {};
    if (m.snapshot.metadata.index !== 0) meta.index = String(m.snapshot.metadata.index);
    if (m.snapshot.metadata.term !== 0) meta.term = String(m.snapshot.metadata.term);
    const conf: Record<string, unknown> = {};
    if (m.snapshot.metadata.confState.voters.length > 0) conf.voters = m.snapshot.metadata.confState.voters.map(String);
    if (m.snapshot.metadata.confState.learners.length > 0) conf.learners = m.snapshot.metadata.confState.learners.map(String);
    meta.confState = conf;
    const snap: Record<string, unknown> = { metadata: meta };
    if (m.snapshot.data.length > 0) snap.data = [...m.snapshot.data];
    o.snapshot = snap;
  }
  if (m.context !== null && m.context.length > 0) o.context = [...m.context];
  num('transferee', m.transferee);
  return o;
}

const toObjectOptions = { longs: String, enums: Number, bytes: Array } as const;

/** Exactly a RaftDecodeError or a message; anything else (TypeError, assertion) fails the test. */
function decodeOrRefuse(bytes: Uint8Array, what: string): Message | null {
  try {
    return decodeRaftMessage(bytes);
  } catch (err) {
    if (err instanceof RaftDecodeError) return null;
    throw new Error(`${what}: decode threw ${(err as Error).name}: ${(err as Error).message} on ${Buffer.from(bytes).toString('hex')}`);
  }
}

test('worked example from raft-codec.ts header', () => {
  const m = makeMessage({ type: MessageType.Heartbeat, from: 1n, to: 2n, term: 3, commit: 5 });
  assert.is(Buffer.from(encodeRaftMessage(m)).toString('hex'), '0807100118022003' + '4005');
});

test('round trip of every message type, ids above 2^63, entries, snapshot and context', () => {
  const random = seededRandom(11);
  for (const type of messageTypes) {
    for (let i = 0; i < 50; i++) {
      const m = randomMessage(random, type);
      assert.equal(plain(decodeRaftMessage(encodeRaftMessage(m))), plain(m), `${MessageType[type]} #${i}`);
    }
  }
  const full = makeMessage({
    type: MessageType.Snap, from: maxId, to: 1n << 63n, term: Number.MAX_SAFE_INTEGER, transferee: (1n << 63n) + 1n,
    snapshot: { metadata: { index: 2 ** 40, term: 7, confState: { voters: [maxId, 1n], learners: [1n << 63n] } }, data: Uint8Array.of(1, 2, 3) },
    context: Uint8Array.of(9),
  });
  assert.equal(plain(decodeRaftMessage(encodeRaftMessage(full))), plain(full));
});

test('protobufjs decodes our bytes to the same values, and encodes those values to the same bytes', () => {
  const random = seededRandom(12);
  for (let i = 0; i < 500; i++) {
    const m = randomMessage(random);
    const mine = encodeRaftMessage(m);
    const theirs = MessagePb.toObject(MessagePb.decode(mine), toObjectOptions);
    assert.equal(theirs, pbObject(m), `message #${i} (${MessageType[m.type]}) decoded by protobufjs`);
    const pbBytes = MessagePb.encode(MessagePb.fromObject(pbObject(m))).finish();
    assert.is(Buffer.from(pbBytes).toString('hex'), Buffer.from(mine).toString('hex'), `message #${i} encoded by protobufjs`);
    assert.equal(plain(decodeRaftMessage(pbBytes)), plain(m), `message #${i}: our decoder on protobufjs bytes`);
  }
});

test('packed repeated ids (what proto3 writers emit by default) decode like unpacked ones', () => {
  // ConfState { voters: [1, 2^64-1] } packed: field 1, wire type 2.
  const packedConf = [0x0a, 0x0b, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x12, 0x01, 0x05];
  const meta = [0x08, 0x05, 0x1a, packedConf.length, ...packedConf];
  const snap = [0x0a, meta.length, ...meta];
  const bytes = Uint8Array.from([0x08, 0x09, 0x5a, snap.length, ...snap]);
  const m = decodeRaftMessage(bytes);
  assert.equal(m.snapshot?.metadata.confState, { voters: [1n, maxId], learners: [5n] });
  assert.is(m.snapshot?.metadata.index, 5);
});

test('unknown fields of every wire type are skipped', () => {
  const base = [...encodeRaftMessage(makeMessage({ type: MessageType.App, from: 1n, to: 2n, term: 3, entries: [{ term: 3, index: 4, type: EntryType.Normal, data: Uint8Array.of(7) }] }))];
  const unknown = [
    0xa0, 0x01, 0x96, 0x01, // field 20 varint 150
    0xa9, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, // field 21 fixed64
    0xb2, 0x01, 0x02, 0xaa, 0xbb, // field 22 bytes
    0xbd, 0x01, 1, 2, 3, 4, // field 23 fixed32
  ];
  const m = decodeRaftMessage(Uint8Array.from([...unknown, ...base, ...unknown]));
  assert.is(m.type, MessageType.App);
  assert.is(m.term, 3);
  assert.is(m.entries[0]?.index, 4);
});

test('malformed input throws RaftDecodeError (and only that)', () => {
  const valid = [...encodeRaftMessage(makeMessage({ type: MessageType.Heartbeat, from: 1n, to: 2n, term: 3, commit: 5 }))];
  const cases: Array<[string, number[]]> = [
    ['truncated varint value', [0x08, 0x87]],
    ['truncated key', [0x80]],
    ['varint longer than 10 bytes', [0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ['index beyond 2^53', [0x08, 0x01, 0x30, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]],
    ['id beyond 64 bits', [0x08, 0x01, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]],
    ['length past the end', [0x08, 0x01, 0x3a, 0x05, 0x08, 0x01]],
    ['entry length past the end of the message', [0x08, 0x01, 0x3a, 0x7f]],
    ['inner field runs past its entry', [0x08, 0x01, 0x3a, 0x02, 0x22, 0x05, 0x00, 0x00, 0x00]],
    ['wire type 3 (start group)', [...valid, 0xa3, 0x01]],
    ['wire type 4 (end group)', [...valid, 0xa4, 0x01]],
    ['wire type 6', [...valid, 0xa6, 0x01]],
    ['wire type 7', [...valid, 0xa7, 0x01]],
    ['truncated fixed64', [...valid, 0xa9, 0x01, 1, 2, 3]],
    ['truncated fixed32', [...valid, 0xad, 0x01, 1]],
    ['unknown message type 15', [0x08, 0x0f]],
    ['message type 0 (absent)', [0x10, 0x01]],
    ['empty input', []],
    ['unknown entry type', [0x08, 0x01, 0x3a, 0x02, 0x18, 0x02]],
    ['voter id beyond 64 bits', [0x08, 0x09, 0x5a, 0x0f, 0x0a, 0x0d, 0x1a, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]],
  ];
  for (const [what, bytes] of cases) {
    assert.throws(() => decodeRaftMessage(Uint8Array.from(bytes)), (err: unknown) => err instanceof RaftDecodeError, what);
  }
});

test('fuzz: random bytes and mutated encodings decode to a message or throw RaftDecodeError', () => {
  const seed = 2026;
  const random = seededRandom(seed);
  let decoded = 0;
  let refused = 0;
  for (let i = 0; i < 4000; i++) {
    let bytes: Uint8Array;
    if (i % 4 === 0) {
      bytes = randomBytesSeeded(random, Math.floor(random() * 64));
    } else {
      const valid = encodeRaftMessage(randomMessage(random));
      bytes = Uint8Array.from(valid);
      const r = random();
      if (r < 0.3 && bytes.length > 0) {
        bytes = bytes.subarray(0, Math.floor(random() * bytes.length)); // truncated
      } else {
        const flips = 1 + Math.floor(random() * 4);
        for (let f = 0; f < flips && bytes.length > 0; f++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      }
    }
    const m = decodeOrRefuse(bytes, `seed ${seed} case ${i}`);
    if (m === null) {
      refused++;
      continue;
    }
    decoded++;
    // What decodes is a valid message: it encodes again and decodes to the same values.
    assert.ok(m.type >= 1 && m.type <= 14, `case ${i}: type ${m.type}`);
    assert.equal(plain(decodeRaftMessage(encodeRaftMessage(m))), plain(m), `case ${i}: re-encode`);
  }
  assert.ok(decoded > 100 && refused > 100, `decoded ${decoded}, refused ${refused}`);
});

test.run();
