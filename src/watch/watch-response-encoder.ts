import { assert } from '../platform/assert.js';
import { EventType, type KeyValue, type ResponseHeader } from '../proto/etcd-types.js';
import { bigVarintSize, varintSize, writeVarint } from '../proto/varint.js';

/**
 * Protobuf encoding of etcdserverpb.WatchResponse, written by hand for the fan-out path: each
 * event (mvccpb.Event) is encoded ONCE per revision into bytes that every response carrying it
 * copies (watch-hub.ts caches them per revision, with and without prev_kv), and a response is
 * the small header part plus those bytes, in one allocation. Field numbers are etcd's
 * (protocol/etcd/rpc.proto, kv.proto); fields at their proto3 default are omitted, as Go's
 * marshaler does, and written in field-number order.
 *
 *   WatchResponse: 1 header, 2 watch_id (int64), 3 created, 4 canceled, 5 compact_revision,
 *                  6 cancel_reason, 7 fragment, 11 events (repeated Event)
 *   Event:         1 type (enum, PUT = 0 omitted), 2 kv, 3 prev_kv
 *   KeyValue:      1 key, 2 create_revision, 3 mod_revision, 4 version, 5 value, 6 lease
 *   ResponseHeader: 1 cluster_id (uint64), 2 member_id, 3 revision (int64), 4 raft_term (uint64)
 *
 * Worked example: a PUT of foo=bar at revision 5 (created at 5, version 1) encodes its Event as
 *   12 0e | 0a 03 66 6f 6f | 10 05 | 18 05 | 20 01 | 2a 03 62 61 72
 * (field 2 = kv, 14 bytes long), and a response for watch 0 at revision 5 is
 *   0a <header> | 5a 10 <those 16 bytes>   (watch_id 0 omitted)
 */

export interface ResponseFields {
  header: ResponseHeader;
  watchId: number;
  created?: boolean;
  canceled?: boolean;
  compactRevision?: number;
  cancelReason?: string;
  fragment?: boolean;
}

/** Encodes one Event: `type` from the kv (create_revision 0 = a delete's tombstone). */
export function encodeEvent(kv: KeyValue, prev: KeyValue | undefined): Uint8Array {
  const kvLen = kvSize(kv);
  const isDelete = kv.create_revision === 0;
  let size = (isDelete ? 2 : 0) + 1 + varintSize(kvLen) + kvLen;
  let prevLen = 0;
  if (prev !== undefined) {
    prevLen = kvSize(prev);
    size += 1 + varintSize(prevLen) + prevLen;
  }
  const w = new Writer(size);
  if (isDelete) { w.byte(0x08); w.varint(EventType.DELETE); }
  w.byte(0x12); w.varint(kvLen); w.kv(kv);
  if (prev !== undefined) { w.byte(0x1a); w.varint(prevLen); w.kv(prev); }
  return w.done();
}

/** Size of the response's non-event fields, with their tags. */
function fieldsSize(f: ResponseFields, headerLen: number): number {
  let size = 1 + varintSize(headerLen) + headerLen;
  if (f.watchId !== 0) size += 1 + varintSize(f.watchId);
  if (f.created) size += 2;
  if (f.canceled) size += 2;
  if (f.compactRevision) size += 1 + varintSize(f.compactRevision);
  if (f.cancelReason) {
    const n = Buffer.byteLength(f.cancelReason);
    size += 1 + varintSize(n) + n;
  }
  if (f.fragment) size += 2;
  return size;
}

/** Encodes a WatchResponse whose events are already encoded (encodeEvent). */
export function encodeWatchResponse(f: ResponseFields, events: readonly Uint8Array[] = NO_EVENTS): Uint8Array {
  const headerLen = headerSize(f.header);
  let size = fieldsSize(f, headerLen);
  for (const e of events) size += 1 + varintSize(e.length) + e.length;
  const w = new Writer(size);
  w.byte(0x0a); w.varint(headerLen); w.header(f.header);
  if (f.watchId !== 0) { w.byte(0x10); w.varint(f.watchId); }
  if (f.created) { w.byte(0x18); w.byte(1); }
  if (f.canceled) { w.byte(0x20); w.byte(1); }
  if (f.compactRevision) { w.byte(0x28); w.varint(f.compactRevision); }
  if (f.cancelReason) { w.byte(0x32); w.string(f.cancelReason); }
  if (f.fragment) { w.byte(0x38); w.byte(1); }
  for (const e of events) { w.byte(0x5a); w.varint(e.length); w.bytes(e); }
  return w.done();
}

/** The encoded size a response would have (fragmenting decides with it, as etcd's wr.Size()). */
export function watchResponseSize(f: ResponseFields, events: readonly Uint8Array[]): number {
  let size = fieldsSize(f, headerSize(f.header));
  for (const e of events) size += 1 + varintSize(e.length) + e.length;
  return size;
}

const NO_EVENTS: readonly Uint8Array[] = [];

/**
 * A WatchResponse's header field (tag, length, ResponseHeader) encoded once, to be shared by every
 * response of one revision (watch-hub.ts keeps the last one): the cluster and member ids are
 * 64-bit varints, costly to encode per response.
 */
export function encodeHeaderField(h: ResponseHeader): Buffer {
  const len = headerSize(h);
  const w = new Writer(1 + varintSize(len) + len);
  w.byte(0x0a); w.varint(len); w.header(h);
  return w.done() as Buffer;
}

/**
 * Length-prefixed responses, as gRPC frames messages on the wire (a flag byte 0, then the length
 * as 4 bytes big-endian, then the message): several watchers' responses of one revision go to a
 * stream as one buffer, one allocation and one write, instead of one of each per watcher.
 */
export const FRAME_PREFIX_BYTES = 5;

/** Bytes an event-carrying response for `watchId` takes (without its frame prefix). */
export function eventsResponseSize(headerField: Uint8Array, watchId: number, events: readonly Uint8Array[]): number {
  let size = headerField.length;
  if (watchId !== 0) size += 1 + varintSize(watchId);
  for (let i = 0; i < events.length; i++) size += 1 + varintSize(events[i]!.length) + events[i]!.length;
  return size;
}

/**
 * Writes one framed response (prefix, shared header field, watch_id, events) of `size` bytes
 * (eventsResponseSize) into `out` at `at`; returns the offset after it.
 */
export function writeFramedEventsResponse(out: Buffer, at: number, size: number, headerField: Uint8Array, watchId: number, events: readonly Uint8Array[]): number {
  out[at] = 0;
  out.writeUInt32BE(size, at + 1);
  let pos = at + FRAME_PREFIX_BYTES;
  // The header field is ~25 bytes: a loop costs less than TypedArray.set's call at that size.
  for (let i = 0; i < headerField.length; i++) out[pos + i] = headerField[i]!;
  pos += headerField.length;
  if (watchId !== 0) { out[pos++] = 0x10; pos = watchId < 0 ? writeNegativeVarint(out, pos, watchId) : writeVarint(out, pos, watchId); }
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    out[pos++] = 0x5a;
    pos = writeVarint(out, pos, e.length);
    out.set(e, pos);
    pos += e.length;
  }
  // Checked before the message is built: once per watcher and revision, no closure allocated.
  if (pos !== at + FRAME_PREFIX_BYTES + size) assert(false, `watch response wrote ${pos - at - FRAME_PREFIX_BYTES} bytes of ${size}`);
  return pos;
}

function writeNegativeVarint(out: Buffer, at: number, n: number): number {
  let v = BigInt.asUintN(64, BigInt(n));
  while (v >= 0x80n) {
    out[at++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  out[at++] = Number(v);
  return at;
}

function kvSize(kv: KeyValue): number {
  let size = 0;
  if (kv.key.length > 0) size += 1 + varintSize(kv.key.length) + kv.key.length;
  if (kv.create_revision !== 0) size += 1 + varintSize(kv.create_revision);
  if (kv.mod_revision !== 0) size += 1 + varintSize(kv.mod_revision);
  if (kv.version !== 0) size += 1 + varintSize(kv.version);
  if (kv.value.length > 0) size += 1 + varintSize(kv.value.length) + kv.value.length;
  if (kv.lease !== 0n) size += 1 + bigVarintSize(kv.lease);
  return size;
}

function headerSize(h: ResponseHeader): number {
  let size = 0;
  if (h.cluster_id !== 0n) size += 1 + bigVarintSize(h.cluster_id);
  if (h.member_id !== 0n) size += 1 + bigVarintSize(h.member_id);
  if (h.revision !== 0) size += 1 + varintSize(h.revision);
  if (h.raft_term !== 0) size += 1 + varintSize(h.raft_term);
  return size;
}

class Writer {
  private readonly buf: Buffer;
  private pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  /** A non-negative safe integer, or a negative one as protobuf's 10-byte two's complement. */
  varint(n: number): void {
    if (n < 0) {
      this.bigVarint(BigInt(n));
      return;
    }
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  bigVarint(n: bigint): void {
    let v = BigInt.asUintN(64, n);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  string(s: string): void {
    const n = Buffer.byteLength(s);
    this.varint(n);
    this.pos += this.buf.write(s, this.pos);
  }

  kv(kv: KeyValue): void {
    if (kv.key.length > 0) { this.byte(0x0a); this.varint(kv.key.length); this.bytes(kv.key); }
    if (kv.create_revision !== 0) { this.byte(0x10); this.varint(kv.create_revision); }
    if (kv.mod_revision !== 0) { this.byte(0x18); this.varint(kv.mod_revision); }
    if (kv.version !== 0) { this.byte(0x20); this.varint(kv.version); }
    if (kv.value.length > 0) { this.byte(0x2a); this.varint(kv.value.length); this.bytes(kv.value); }
    if (kv.lease !== 0n) { this.byte(0x30); this.bigVarint(kv.lease); }
  }

  header(h: ResponseHeader): void {
    if (h.cluster_id !== 0n) { this.byte(0x08); this.bigVarint(h.cluster_id); }
    if (h.member_id !== 0n) { this.byte(0x10); this.bigVarint(h.member_id); }
    if (h.revision !== 0) { this.byte(0x18); this.varint(h.revision); }
    if (h.raft_term !== 0) { this.byte(0x20); this.varint(h.raft_term); }
  }

  done(): Uint8Array {
    if (this.pos !== this.buf.length) assert(false, `watch encoder wrote ${this.pos} bytes of ${this.buf.length}`);
    return this.buf;
  }
}
