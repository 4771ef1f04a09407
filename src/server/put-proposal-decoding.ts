import type { InternalRequest, PutRequest } from '../proto/etcd-types.js';

/**
 * Decodes the raft entry of a plain Put proposal (keyraftpb.InternalRequest with id, member_id and
 * put) by hand, as codec.decode would: the same object shape, Buffer views of the entry for key
 * and value, `id` as a number, `member_id` and `lease` as bigint, only the fields present on the
 * wire. Anything else (another request kind, an unknown or repeated field, a malformed entry)
 * returns null and the caller decodes it with protobufjs.
 *
 * Why: a follower decodes every entry it applies, and a cluster put's followers are half of its
 * CPU (bench/cluster/cluster-cpu-per-put.sh). protobufjs decodes in three passes (decode,
 * toObject, the bigint converter) with a Long per 64-bit field; this is one pass over ~300 bytes.
 */
export function decodePutProposal(data: Uint8Array): InternalRequest | null {
  const reader = new ProposalReader(data);
  let id: number | undefined;
  let memberId: bigint | undefined;
  let put: PutRequest | undefined;
  while (reader.pos < reader.end) {
    const tag = reader.varint32();
    if (tag === ID_TAG && id === undefined) id = reader.uint64AsNumber();
    else if (tag === MEMBER_ID_TAG && memberId === undefined) memberId = reader.uint64AsBigInt();
    else if (tag === PUT_TAG && put === undefined) {
      const length = reader.varint32();
      const end = reader.pos + length;
      if (length < 0 || end > reader.end) return null;
      put = decodePut(reader, end);
      if (put === undefined) return null;
    } else return null;
    if (reader.failed) return null;
  }
  if (put === undefined || reader.pos !== reader.end) return null;
  // Key order as protobufjs' toObject gives it (field declaration order: id, put, member_id).
  const request = {} as InternalRequest;
  if (id !== undefined) request.id = id;
  request.put = put;
  if (memberId !== undefined) request.member_id = memberId;
  return request;
}

const ID_TAG = (1 << 3) | 0;
const PUT_TAG = (2 << 3) | 2;
const MEMBER_ID_TAG = (7 << 3) | 0;

/** PutRequest fields 1-6 up to end; undefined when anything is unexpected. */
function decodePut(reader: ProposalReader, end: number): PutRequest | undefined {
  let key: Buffer | undefined;
  let value: Buffer | undefined;
  let lease: bigint | undefined;
  let prevKv: boolean | undefined;
  let ignoreValue: boolean | undefined;
  let ignoreLease: boolean | undefined;
  while (reader.pos < end) {
    const tag = reader.varint32();
    switch (tag) {
      case (1 << 3) | 2: if (key !== undefined) return undefined; key = reader.bytes(end); break;
      case (2 << 3) | 2: if (value !== undefined) return undefined; value = reader.bytes(end); break;
      case (3 << 3) | 0: if (lease !== undefined) return undefined; lease = BigInt.asIntN(64, reader.uint64AsBigInt()); break;
      case (4 << 3) | 0: if (prevKv !== undefined) return undefined; prevKv = reader.bool(); break;
      case (5 << 3) | 0: if (ignoreValue !== undefined) return undefined; ignoreValue = reader.bool(); break;
      case (6 << 3) | 0: if (ignoreLease !== undefined) return undefined; ignoreLease = reader.bool(); break;
      default: return undefined;
    }
    if (reader.failed || reader.pos > end) return undefined;
  }
  const put: PutRequest = {};
  if (key !== undefined) put.key = key;
  if (value !== undefined) put.value = value;
  if (lease !== undefined) put.lease = lease;
  if (prevKv !== undefined) put.prev_kv = prevKv;
  if (ignoreValue !== undefined) put.ignore_value = ignoreValue;
  if (ignoreLease !== undefined) put.ignore_lease = ignoreLease;
  return put;
}

/** A cursor over one entry; `failed` turns true on a truncated or over-long varint. */
class ProposalReader {
  pos: number;
  readonly end: number;
  failed = false;
  private readonly buffer: Buffer;

  constructor(data: Uint8Array) {
    this.buffer = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.pos = 0;
    this.end = data.byteLength;
  }

  /** A varint below 2^31 (tags, lengths); anything longer fails. */
  varint32(): number {
    let result = 0;
    for (let shift = 0; shift < 31; shift += 7) {
      if (this.pos >= this.end) break;
      const b = this.buffer[this.pos++]!;
      if (shift === 28 && b > 0x07) break;
      result |= (b & 0x7f) << shift;
      if (b < 0x80) return result;
    }
    this.failed = true;
    return 0;
  }

  /** The low and high 32 bits of the last varint64() (fields, not a returned pair: no allocation per field). */
  private lo = 0;
  private hi = 0;

  /** Reads a 64-bit varint into lo and hi. */
  private varint64(): void {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) break;
      const b = this.buffer[this.pos++]!;
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if (b < 0x80) {
        this.lo = lo >>> 0;
        this.hi = hi >>> 0;
        return;
      }
    }
    this.failed = true;
    this.lo = 0;
    this.hi = 0;
  }

  /** As protobufjs' unsigned Long.toNumber(): high x 2^32 + low, rounded as a double. */
  uint64AsNumber(): number {
    this.varint64();
    return this.hi * 4294967296 + this.lo;
  }

  uint64AsBigInt(): bigint {
    this.varint64();
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** 0 or 1; any other value (which protobufjs would read through its low 32 bits) fails. */
  bool(): boolean {
    this.varint64();
    if (this.hi !== 0 || this.lo > 1) this.failed = true;
    return this.lo === 1;
  }

  /** A length-delimited field as a view of the entry (protobufjs slices, not copies, too). */
  bytes(limit: number): Buffer | undefined {
    const length = this.varint32();
    if (this.failed || this.pos + length > limit) {
      this.failed = true;
      return undefined;
    }
    const view = this.buffer.subarray(this.pos, this.pos + length);
    this.pos += length;
    return view;
  }
}
