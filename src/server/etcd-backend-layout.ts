import { assert } from '../platform/assert.js';
import { bigVarintSize, varintSize, writeVarint } from '../proto/varint.js';

/**
 * etcd 3.4's backend layout (mvcc/kvstore.go, mvcc/revision.go, etcdserver/cindex,
 * etcdserver/api/membership/store.go, lease/lessor.go, auth/store.go): the buckets of the bbolt
 * file that `etcdctl snapshot save` writes and `etcdctl snapshot restore` reads, and how keyraft's
 * state maps onto them. One place for these facts; the snapshot writer and the restore use them.
 *
 *   key              17-byte revision key: main (8 B big-endian) | '_' | sub (8 B big-endian),
 *                    an 18th byte 't' on a tombstone -> mvccpb.KeyValue (a tombstone's holds only
 *                    the key). Sub orders the changes of one revision (a txn's writes).
 *   meta             consistent_index -> u64 BE (the applied Raft index); scheduledCompactRev and
 *                    finishedCompactRev -> a 17-byte revision key {main: compacted, sub: 0}.
 *   lease            lease id (8 B BE) -> leasepb.Lease {ID=1, TTL=2, RemainingTTL=3}
 *   members          member id in hex, no padding (Go's types.ID.String) -> JSON {"id", "peerURLs",
 *                    "name", "clientURLs", "isLearner" only when true}
 *   members_removed  member id in hex -> "removed"
 *   cluster          clusterVersion -> "3.4.0"
 *   auth             authRevision -> u64 BE (1 on a fresh etcd); enabled -> 1 byte when on
 *   authUsers, authRoles, alarm: empty unless those features are in use
 *
 * keyraft keeps one record per (main revision, key) (mvcc/revision.ts): a key changes at most
 * once per revision, so the sub revision carries nothing keyraft needs. Out of keyraft, subs are
 * numbered 0, 1, ... in key order within a revision; into keyraft they are dropped. Worked example:
 * a txn at revision 9 that deletes "b" and puts "a" is (9, "a") and (9, "b") in keyraft, and
 * 00..09 5f 00..00 -> {key "a", ...} and 00..09 5f 00..01 74 -> {key "b"} in etcd's layout.
 */

export const EtcdBucket = {
  key: 'key',
  meta: 'meta',
  lease: 'lease',
  alarm: 'alarm',
  cluster: 'cluster',
  members: 'members',
  membersRemoved: 'members_removed',
  auth: 'auth',
  authUsers: 'authUsers',
  authRoles: 'authRoles',
} as const;

export const EtcdMetaKey = {
  consistentIndex: 'consistent_index',
  scheduledCompactRev: 'scheduledCompactRev',
  finishedCompactRev: 'finishedCompactRev',
} as const;

/** The cluster version etcd 3.4 records; keyraft serves etcd 3.4's API. */
export const ETCD_CLUSTER_VERSION = '3.4.0';

export const ETCD_REVISION_KEY_BYTES = 17;
const TOMBSTONE_MARK = 0x74; // 't'
const SEPARATOR = 0x5f; // '_'

export interface EtcdRevisionKey {
  main: number;
  sub: number;
  tombstone: boolean;
}

export function encodeEtcdRevisionKey(main: number, sub: number, tombstone: boolean): Buffer {
  const out = Buffer.allocUnsafe(ETCD_REVISION_KEY_BYTES + (tombstone ? 1 : 0));
  putEtcdRevisionKey(out, 0, main, sub, tombstone);
  return out;
}

/** The revision key, or null when `key` is not one (wrong length, separator or marker). */
export function decodeEtcdRevisionKey(key: Buffer): EtcdRevisionKey | null {
  if (key.length !== ETCD_REVISION_KEY_BYTES && key.length !== ETCD_REVISION_KEY_BYTES + 1) return null;
  if (key[8] !== SEPARATOR) return null;
  if (key.length === ETCD_REVISION_KEY_BYTES + 1 && key[17] !== TOMBSTONE_MARK) return null;
  const main = readU64BE(key, 0);
  const sub = readU64BE(key, 9);
  if (main < 0 || sub < 0) return null;
  return { main, sub, tombstone: key.length === ETCD_REVISION_KEY_BYTES + 1 };
}

/** mvccpb.KeyValue, as etcd stores it (64-bit fields as numbers, the lease id as bigint). */
export interface EtcdKeyValue {
  key: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Buffer;
  lease: bigint;
}

/** Encodes mvccpb.KeyValue as Go's proto3 marshaller does (zero fields omitted, in field order). */
export function encodeEtcdKeyValue(kv: EtcdKeyValue): Buffer {
  const size = etcdKeyValueSize(kv.key.length, kv.createRevision, kv.modRevision, kv.version, kv.value.length, kv.lease);
  const out = Buffer.allocUnsafe(size);
  const end = putEtcdKeyValue(out, 0, kv.key, 0, kv.key.length, kv.createRevision, kv.modRevision, kv.version, kv.value, 0, kv.value.length, kv.lease);
  assert(end === size, () => `KeyValue encoded in ${end} bytes, sized ${size}`);
  return out;
}

/** The encoded size of a KeyValue with these fields. */
export function etcdKeyValueSize(keyLength: number, createRevision: number, modRevision: number, version: number, valueLength: number, lease: bigint): number {
  return bytesFieldSize(keyLength) + intFieldSize(createRevision) + intFieldSize(modRevision)
    + intFieldSize(version) + bytesFieldSize(valueLength) + (lease === 0n ? 0 : 1 + bigVarintSize(lease));
}

/**
 * Encodes a KeyValue at `at` of `out` from slices of other buffers (the snapshot writer encodes
 * straight from backend records into the page, no buffer per record); returns the end offset.
 */
export function putEtcdKeyValue(
  out: Buffer, at: number, key: Buffer, keyStart: number, keyEnd: number, createRevision: number, modRevision: number,
  version: number, value: Buffer, valueStart: number, valueEnd: number, lease: bigint,
): number {
  if (keyEnd > keyStart) {
    out[at++] = (1 << 3) | 2;
    at = writeVarint(out, at, keyEnd - keyStart);
    at += key.copy(out, at, keyStart, keyEnd);
  }
  at = putIntField(out, at, 2, createRevision);
  at = putIntField(out, at, 3, modRevision);
  at = putIntField(out, at, 4, version);
  if (valueEnd > valueStart) {
    out[at++] = (5 << 3) | 2;
    at = writeVarint(out, at, valueEnd - valueStart);
    at += value.copy(out, at, valueStart, valueEnd);
  }
  if (lease !== 0n) {
    out[at++] = (6 << 3) | 0;
    at = putBigVarint(out, at, lease);
  }
  return at;
}

/** Writes the revision key {main, sub} (+ 't' for a tombstone) at `at` of `out`. */
export function putEtcdRevisionKey(out: Buffer, at: number, main: number, sub: number, tombstone: boolean): void {
  writeU64BE(out, main, at);
  out[at + 8] = SEPARATOR;
  writeU64BE(out, sub, at + 9);
  if (tombstone) out[at + 17] = TOMBSTONE_MARK;
}

export class EtcdLayoutError extends Error {
  override name = 'EtcdLayoutError';
}

/**
 * Decodes mvccpb.KeyValue; unknown fields are skipped, as protobuf requires. Runs once per record
 * of a restore: varints are read as numbers (exact below 2^53), the lease as bigint.
 */
export function decodeEtcdKeyValue(bytes: Buffer): EtcdKeyValue {
  const kv: EtcdKeyValue = { key: EMPTY, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0n };
  const r = new ProtoReader(bytes);
  while (!r.done()) {
    const tag = r.number();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === 2) {
      const b = r.bytes();
      if (field === 1) kv.key = b;
      else if (field === 5) kv.value = b;
    } else if (wire === 0 && field === 6) {
      kv.lease = BigInt.asIntN(64, r.varint());
    } else if (wire === 0) {
      const v = r.number();
      if (field === 2) kv.createRevision = v;
      else if (field === 3) kv.modRevision = v;
      else if (field === 4) kv.version = v;
    } else {
      r.skip(wire);
    }
  }
  return kv;
}

/** etcd's leasepb.Lease: the id, the granted TTL and the remaining TTL of the last checkpoint (0 = none), in seconds. */
export interface EtcdLease {
  id: bigint;
  ttlSeconds: number;
  remainingTtlSeconds: number;
}

/** leasepb.Lease {ID = 1, TTL = 2, RemainingTTL = 3}, all int64; undefined without an ID. */
export function decodeEtcdLease(bytes: Buffer): EtcdLease | undefined {
  const r = new ProtoReader(bytes);
  let id: bigint | undefined;
  let ttlSeconds = 0;
  let remainingTtlSeconds = 0;
  while (!r.done()) {
    const tag = r.varint();
    const wire = Number(tag & 7n);
    if (wire === 0) {
      const v = BigInt.asIntN(64, r.varint());
      const field = tag >> 3n;
      if (field === 1n) id = v;
      else if (field === 2n) ttlSeconds = Number(v);
      else if (field === 3n) remainingTtlSeconds = Number(v);
    } else {
      r.skip(wire);
    }
  }
  return id === undefined ? undefined : { id, ttlSeconds, remainingTtlSeconds };
}

export function encodeEtcdLease(lease: EtcdLease): Buffer {
  const out = Buffer.allocUnsafe(3 * 11);
  let at = 0;
  const fields: Array<[number, bigint]> = [[1, lease.id], [2, BigInt(lease.ttlSeconds)], [3, BigInt(lease.remainingTtlSeconds)]];
  for (const [field, value] of fields) {
    if (value === 0n) continue;
    out[at++] = field << 3;
    at = putBigVarint(out, at, value);
  }
  return Buffer.from(out.subarray(0, at));
}

/** A member as etcd 3.4 stores it in its members bucket. */
export function encodeEtcdMember(m: { id: bigint; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean }): { key: Buffer; value: Buffer } {
  // The id is a uint64: JSON.stringify would lose it past 2^53, so it is spliced in as text.
  const json = `{"id":${m.id.toString()},"peerURLs":${JSON.stringify(m.peerURLs)},"name":${JSON.stringify(m.name)},`
    + `"clientURLs":${JSON.stringify(m.clientURLs)}${m.isLearner ? ',"isLearner":true' : ''}}`;
  return { key: Buffer.from(m.id.toString(16)), value: Buffer.from(json) };
}

export function encodeU64BE(value: number): Buffer {
  const out = Buffer.allocUnsafe(8);
  writeU64BE(out, value, 0);
  return out;
}

export function readU64BE(buf: Buffer, at: number): number {
  const high = buf.readUInt32BE(at);
  if (high >= 0x200000) return -1;
  return high * 0x1_0000_0000 + buf.readUInt32BE(at + 4);
}

function writeU64BE(buf: Buffer, value: number, at: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, () => `cannot encode ${value} as u64`);
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), at);
  buf.writeUInt32BE(value >>> 0, at + 4);
}

const EMPTY = Buffer.alloc(0);

function intFieldSize(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n);
}

function bytesFieldSize(length: number): number {
  return length === 0 ? 0 : 1 + varintSize(length) + length;
}

function putBigVarint(out: Buffer, at: number, n: bigint): number {
  let u = BigInt.asUintN(64, n);
  while (u >= 128n) {
    out[at++] = Number(u & 0x7fn) | 0x80;
    u >>= 7n;
  }
  out[at++] = Number(u);
  return at;
}

function putIntField(out: Buffer, at: number, field: number, n: number): number {
  if (n === 0) return at;
  out[at++] = field << 3;
  return writeVarint(out, at, n);
}

class ProtoReader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}

  done(): boolean {
    return this.at >= this.buf.length;
  }

  /** A varint that must be below 2^53 (revisions, versions, lengths, tags). */
  number(): number {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (this.at >= this.buf.length) throw new EtcdLayoutError('protobuf varint runs past the end of its message');
      const b = this.buf[this.at++]!;
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(result)) throw new EtcdLayoutError(`protobuf integer ${result} is beyond 2^53`);
        return result;
      }
      scale *= 128;
      if (scale > 2 ** 63) throw new EtcdLayoutError('protobuf varint longer than 10 bytes');
    }
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.at >= this.buf.length) throw new EtcdLayoutError('protobuf varint runs past the end of its message');
      const b = this.buf[this.at++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new EtcdLayoutError('protobuf varint longer than 10 bytes');
    }
  }

  bytes(): Buffer {
    const length = this.number();
    if (this.at + length > this.buf.length) throw new EtcdLayoutError(`protobuf field of ${length} bytes runs past the end of its message`);
    const out = this.buf.subarray(this.at, this.at + length);
    this.at += length;
    return out;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.at += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.at += 4;
    else throw new EtcdLayoutError(`protobuf wire type ${wire} is not supported`);
    if (this.at > this.buf.length) throw new EtcdLayoutError('protobuf field runs past the end of its message');
  }
}
