import { assert } from '../platform/assert.js';
import { bigVarintSize, varintSize } from '../proto/varint.js';
import {
  makeMessage, type ConfState, type Entry, type EntryType, type Message, type MessageType, type Snapshot,
} from '../raft/raft-types.js';

/**
 * raftpb.Message (protocol/raft/raft.proto) to and from the Raft core's Message, by hand: this is
 * the hottest encode on the peer port (every MsgApp carries the client's entries), and a direct
 * writer copies each entry's data once, keeps ids as bigint and indexes as numbers without Long
 * objects, and allocates one buffer per message.
 *
 * Protobuf wire facts used here: a field key is varint((number << 3) | wireType), wire type 0 is a
 * varint, 2 is length-delimited; proto3 omits fields at their default (0, false, empty), so a
 * decoder fills defaults for what is absent and skips fields it does not know.
 *
 * Worked example: a heartbeat {type 7, from 1, to 2, term 3, commit 5} encodes as
 *   08 07  10 01  18 02  20 03  40 05        (field 1 = 7, 2 = 1, 3 = 2, 4 = 3, 8 = 5)
 */

export class RaftDecodeError extends Error {
  override name = 'RaftDecodeError';
}

// ---- encode ------------------------------------------------------------------------------------

/** Key + varint of a numeric field, 0 when the value is the default (omitted). */
function numFieldBytes(value: number): number {
  return value === 0 ? 0 : 1 + varintSize(value);
}

function idFieldBytes(value: bigint): number {
  return value === 0n ? 0 : 1 + bigVarintSize(value);
}

function bytesFieldBytes(length: number): number {
  return length === 0 ? 0 : 1 + varintSize(length) + length;
}

function entryBodyBytes(e: Entry): number {
  return numFieldBytes(e.term) + numFieldBytes(e.index) + numFieldBytes(e.type) + bytesFieldBytes(e.data.length);
}

function confStateBodyBytes(c: ConfState): number {
  let n = 0;
  for (const id of c.voters) n += 1 + bigVarintSize(id);
  for (const id of c.learners) n += 1 + bigVarintSize(id);
  return n;
}

function metadataBodyBytes(s: Snapshot): number {
  const conf = confStateBodyBytes(s.metadata.confState);
  return numFieldBytes(s.metadata.index) + numFieldBytes(s.metadata.term) + 1 + varintSize(conf) + conf;
}

function snapshotBodyBytes(s: Snapshot): number {
  const meta = metadataBodyBytes(s);
  return 1 + varintSize(meta) + meta + bytesFieldBytes(s.data.length);
}

class Writer {
  at = 0;
  constructor(readonly buf: Uint8Array) {}

  varint(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, () => `raft codec: ${value} is not a safe non-negative integer`);
    while (value >= 128) {
      this.buf[this.at++] = (value % 128) | 128;
      value = Math.floor(value / 128);
    }
    this.buf[this.at++] = value;
  }

  bigVarint(value: bigint): void {
    assert(value >= 0n && value < 1n << 64n, () => `raft codec: id ${value} is not a uint64`);
    while (value >= 128n) {
      this.buf[this.at++] = Number(value & 127n) | 128;
      value >>= 7n;
    }
    this.buf[this.at++] = Number(value);
  }

  num(field: number, value: number): void {
    if (value === 0) return;
    this.buf[this.at++] = field << 3;
    this.varint(value);
  }

  id(field: number, value: bigint): void {
    if (value === 0n) return;
    this.buf[this.at++] = field << 3;
    this.bigVarint(value);
  }

  bytes(field: number, value: Uint8Array): void {
    if (value.length === 0) return;
    this.buf[this.at++] = (field << 3) | 2;
    this.varint(value.length);
    this.buf.set(value, this.at);
    this.at += value.length;
  }

  /** Starts an embedded message of `length` bytes (always written, even when empty). */
  embedded(field: number, length: number): void {
    this.buf[this.at++] = (field << 3) | 2;
    this.varint(length);
  }
}

export function encodeRaftMessage(m: Message): Uint8Array {
  let size = numFieldBytes(m.type) + idFieldBytes(m.from) + idFieldBytes(m.to) + numFieldBytes(m.term)
    + numFieldBytes(m.logTerm) + numFieldBytes(m.index) + numFieldBytes(m.commit) + (m.reject ? 2 : 0)
    + numFieldBytes(m.rejectHint) + bytesFieldBytes(m.context?.length ?? 0) + idFieldBytes(m.transferee);
  const entrySizes = new Array<number>(m.entries.length);
  for (let i = 0; i < m.entries.length; i++) {
    const body = entryBodyBytes(m.entries[i]!);
    entrySizes[i] = body;
    size += 1 + varintSize(body) + body;
  }
  const snapBody = m.snapshot !== null ? snapshotBodyBytes(m.snapshot) : 0;
  if (m.snapshot !== null) size += 1 + varintSize(snapBody) + snapBody;

  const w = new Writer(Buffer.allocUnsafe(size));
  w.num(1, m.type);
  w.id(2, m.from);
  w.id(3, m.to);
  w.num(4, m.term);
  w.num(5, m.logTerm);
  w.num(6, m.index);
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i]!;
    w.embedded(7, entrySizes[i]!);
    w.num(1, e.term);
    w.num(2, e.index);
    w.num(3, e.type);
    w.bytes(4, e.data);
  }
  w.num(8, m.commit);
  if (m.reject) w.num(9, 1);
  w.num(10, m.rejectHint);
  if (m.snapshot !== null) {
    const s = m.snapshot;
    w.embedded(11, snapBody);
    const meta = metadataBodyBytes(s);
    w.embedded(1, meta);
    w.num(1, s.metadata.index);
    w.num(2, s.metadata.term);
    w.embedded(3, confStateBodyBytes(s.metadata.confState));
    for (const id of s.metadata.confState.voters) { w.buf[w.at++] = 1 << 3; w.bigVarint(id); }
    for (const id of s.metadata.confState.learners) { w.buf[w.at++] = 2 << 3; w.bigVarint(id); }
    w.bytes(2, s.data);
  }
  if (m.context !== null) w.bytes(12, m.context);
  w.id(13, m.transferee);
  assert(w.at === size, () => `raft codec: wrote ${w.at} bytes of ${size}`);
  return w.buf;
}

// ---- decode ------------------------------------------------------------------------------------

class Reader {
  at: number;
  constructor(readonly buf: Uint8Array, start: number, readonly end: number) {
    this.at = start;
  }

  done(): boolean {
    return this.at >= this.end;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) throw new RaftDecodeError('truncated varint');
      const b = this.buf[this.at++]!;
      value += (b & 127) * scale;
      if (b < 128) {
        if (!Number.isSafeInteger(value)) throw new RaftDecodeError(`varint ${value} exceeds 2^53`);
        return value;
      }
      scale *= 128;
    }
    throw new RaftDecodeError('varint longer than 10 bytes');
  }

  bigVarint(): bigint {
    let value = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) throw new RaftDecodeError('truncated varint');
      const b = this.buf[this.at++]!;
      value |= BigInt(b & 127) << shift;
      if (b < 128) {
        if (value >= 1n << 64n) throw new RaftDecodeError('id exceeds 64 bits');
        return value;
      }
      shift += 7n;
    }
    throw new RaftDecodeError('varint longer than 10 bytes');
  }

  /** A length-delimited field's [start, end). */
  span(): [number, number] {
    const length = this.varint();
    const start = this.at;
    if (start + length > this.end) throw new RaftDecodeError(`field of ${length} bytes runs past its message`);
    this.at = start + length;
    return [start, start + length];
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0: this.varint(); return;
      case 1: this.at += 8; break;
      case 2: this.span(); return;
      case 5: this.at += 4; break;
      default: throw new RaftDecodeError(`unsupported wire type ${wireType}`);
    }
    if (this.at > this.end) throw new RaftDecodeError('truncated fixed field');
  }
}

function decodeEntry(r: Reader, start: number, end: number): Entry {
  const e = new Reader(r.buf, start, end);
  let term = 0, index = 0, type = 0;
  let data: Uint8Array = empty;
  while (!e.done()) {
    const key = e.varint();
    switch (key) {
      case (1 << 3): term = e.varint(); break;
      case (2 << 3): index = e.varint(); break;
      case (3 << 3): type = e.varint(); break;
      case (4 << 3) | 2: { const [s, t] = e.span(); data = r.buf.subarray(s, t); break; }
      default: e.skip(key & 7);
    }
  }
  if (type !== 0 && type !== 1) throw new RaftDecodeError(`unknown entry type ${type}`);
  return { term, index, type: type as EntryType, data };
}

function decodeSnapshot(r: Reader, start: number, end: number): Snapshot {
  const s = new Reader(r.buf, start, end);
  let index = 0, term = 0;
  const voters: bigint[] = [];
  const learners: bigint[] = [];
  let data: Uint8Array = empty;
  while (!s.done()) {
    const key = s.varint();
    if (key === ((1 << 3) | 2)) {
      const [ms, me] = s.span();
      const m = new Reader(r.buf, ms, me);
      while (!m.done()) {
        const mk = m.varint();
        if (mk === (1 << 3)) index = m.varint();
        else if (mk === (2 << 3)) term = m.varint();
        else if (mk === ((3 << 3) | 2)) {
          const [cs, ce] = m.span();
          const c = new Reader(r.buf, cs, ce);
          while (!c.done()) {
            const ck = c.varint();
            if (ck === (1 << 3)) voters.push(c.bigVarint());
            else if (ck === (2 << 3)) learners.push(c.bigVarint());
            else if (ck === ((1 << 3) | 2)) readPackedIds(c, voters);
            else if (ck === ((2 << 3) | 2)) readPackedIds(c, learners);
            else c.skip(ck & 7);
          }
        } else m.skip(mk & 7);
      }
    } else if (key === ((2 << 3) | 2)) {
      const [ds, de] = s.span();
      data = r.buf.subarray(ds, de);
    } else s.skip(key & 7);
  }
  return { metadata: { index, term, confState: { voters, learners } }, data };
}

const empty = new Uint8Array(0);

/**
 * A packed repeated uint64 (one length-delimited run of varints): what proto3 writers emit by
 * default. We write ids unpacked ([packed = false] in raft.proto, as etcd's proto2 raftpb does);
 * a protobuf parser must accept both forms.
 */
function readPackedIds(r: Reader, out: bigint[]): void {
  const [start, end] = r.span();
  const p = new Reader(r.buf, start, end);
  while (!p.done()) out.push(p.bigVarint());
}

/** Decodes one raftpb.Message; throws RaftDecodeError on malformed bytes (never an assertion). */
export function decodeRaftMessage(buf: Uint8Array): Message {
  const r = new Reader(buf, 0, buf.length);
  let type = 0, term = 0, logTerm = 0, index = 0, commit = 0, rejectHint = 0;
  let from = 0n, to = 0n, transferee = 0n;
  let reject = false;
  const entries: Entry[] = [];
  let snapshot: Snapshot | null = null;
  let context: Uint8Array | null = null;
  while (!r.done()) {
    const key = r.varint();
    switch (key) {
      case (1 << 3): type = r.varint(); break;
      case (2 << 3): from = r.bigVarint(); break;
      case (3 << 3): to = r.bigVarint(); break;
      case (4 << 3): term = r.varint(); break;
      case (5 << 3): logTerm = r.varint(); break;
      case (6 << 3): index = r.varint(); break;
      case (7 << 3) | 2: { const [s, e] = r.span(); entries.push(decodeEntry(r, s, e)); break; }
      case (8 << 3): commit = r.varint(); break;
      case (9 << 3): reject = r.varint() !== 0; break;
      case (10 << 3): rejectHint = r.varint(); break;
      case (11 << 3) | 2: { const [s, e] = r.span(); snapshot = decodeSnapshot(r, s, e); break; }
      // proto3 cannot tell an empty context from none: both decode as null (raft.proto: "empty = none").
      case (12 << 3) | 2: { const [s, e] = r.span(); context = s === e ? null : buf.subarray(s, e); break; }
      case (13 << 3): transferee = r.bigVarint(); break;
      default: r.skip(key & 7);
    }
  }
  if (type < 1 || type > 14) throw new RaftDecodeError(`unknown message type ${type}`);
  return makeMessage({
    type: type as MessageType, from, to, term, logTerm, index, entries, commit, reject, rejectHint,
    snapshot, context, transferee,
  });
}
