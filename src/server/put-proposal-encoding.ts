/**
 * The entry data of a Put proposal, encoded by hand straight into the memory that keeps it (the
 * member's entry arena), instead of protobufjs' encode into a shared writer and a copy out of it.
 * Puts are most of what a member proposes; for them protobufjs cost a shallow clone of the request
 * (codec.ts' prepareForEncode), a Long for the member id, its generic encoder with a fork per
 * nested message, a pooled result buffer and then the copy into the arena.
 *
 * The bytes are exactly protobufjs' (test/server/put-proposal-encoding.test.ts compares them over
 * many shapes), so entries written either way decode alike and nothing on disk changes. That is
 * protobufjs 8's proto3 rule: a field is written only when set to a non-default value, in field
 * number order. keyraftpb.InternalRequest with a put:
 *
 *   08 <varint id>                     id = 1 (uint64), when not 0
 *   12 <varint n> <PutRequest, n bytes> put = 2
 *      0a <varint len> <key>            key = 1, when not empty
 *      12 <varint len> <value>          value = 2, when not empty
 *      18 <varint lease>                lease = 3 (int64, two's complement, 10 bytes if negative), when not 0
 *      20 01 / 28 01 / 30 01            prev_kv = 4, ignore_value = 5, ignore_lease = 6, when true
 *   38 <varint member_id>              member_id = 7 (uint64), when not 0
 *
 * Worked example: id 5, put { key "a", value "bc" }, member_id 0x81 gives
 *   08 05  12 07 0a 01 61 12 02 62 63  38 81 01
 *
 * A request of any other shape (another oneof member set, a key that is not bytes, a lease that
 * is not a bigint, a flag that is not a boolean, protobufjs' $unknowns) is not covered:
 * putProposalBytes returns -1 and the caller encodes it with protobufjs.
 */
import { assert } from '../platform/assert.js';
import type { InternalRequest, PutRequest } from '../proto/etcd-types.js';
import { bigVarintBytes, varintSize, writeVarint } from '../proto/varint.js';

/**
 * The varint of the last 64-bit value asked for, kept: a member id is the same in every proposal
 * of a member and a client tends to put many keys under one lease, while a bigint varint costs a
 * dozen bigint operations.
 */
class LastBigVarint {
  private last = 0n;
  private bytes: Uint8Array = bigVarintBytes(0n);

  of(n: bigint): Uint8Array {
    if (n !== this.last) {
      this.bytes = bigVarintBytes(n);
      this.last = n;
    }
    return this.bytes;
  }
}

const memberIdVarints = new LastBigVarint();
const leaseVarints = new LastBigVarint();

function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

/** Whether a bool field is one this encoder writes as protobufjs would (absent, false or true). */
function isFlag(value: unknown): boolean {
  return value === undefined || value === null || typeof value === 'boolean';
}

/** The PutRequest body's size, or -1 when its shape is not covered. */
function putBodyBytes(put: PutRequest): number {
  const { key, value, lease } = put;
  let bytes = 0;
  if (key !== undefined && key !== null) {
    if (!isBytes(key)) return -1;
    if (key.length > 0) bytes += 1 + varintSize(key.length) + key.length;
  }
  if (value !== undefined && value !== null) {
    if (!isBytes(value)) return -1;
    if (value.length > 0) bytes += 1 + varintSize(value.length) + value.length;
  }
  if (lease !== undefined && lease !== null) {
    if (typeof lease !== 'bigint') return -1;
    if (lease !== 0n) bytes += 1 + leaseVarints.of(lease).length;
  }
  if (!isFlag(put.prev_kv) || !isFlag(put.ignore_value) || !isFlag(put.ignore_lease)) return -1;
  if (put.prev_kv === true) bytes += 2;
  if (put.ignore_value === true) bytes += 2;
  if (put.ignore_lease === true) bytes += 2;
  if ((put as { $unknowns?: unknown }).$unknowns !== undefined) return -1;
  return bytes;
}

/**
 * The encoded size of `request` (an InternalRequest holding a put and nothing else of its oneof),
 * or -1 when its shape is one writePutProposal does not cover.
 */
export function putProposalBytes(request: InternalRequest): number {
  const put = request.put;
  if (put === undefined || put === null) return -1;
  if (request.delete_range != null || request.txn != null || request.compaction != null || request.publish != null
    || request.member_update != null || request.alarm != null || request.lease_grant != null
    || request.lease_revoke != null || request.lease_checkpoint != null
    || (request as { $unknowns?: unknown }).$unknowns !== undefined) return -1;
  const id = request.id;
  if (!Number.isSafeInteger(id) || id < 0) return -1;
  const memberId = request.member_id;
  if (memberId !== undefined && memberId !== null && typeof memberId !== 'bigint') return -1;
  const body = putBodyBytes(put);
  if (body < 0) return -1;
  let bytes = 1 + varintSize(body) + body;
  if (id !== 0) bytes += 1 + varintSize(id);
  if (memberId !== undefined && memberId !== null && memberId !== 0n) bytes += 1 + memberIdVarints.of(memberId).length;
  return bytes;
}

/**
 * Writes `request` into `out`, which is exactly putProposalBytes(request) long (> 0: the caller
 * checked the shape). Asserts the two agree: a mismatch would be a corrupt entry.
 */
export function writePutProposal(request: InternalRequest, out: Uint8Array): void {
  const put = request.put!;
  const id = request.id;
  let pos = 0;
  if (id !== 0) {
    out[pos++] = 0x08;
    pos = writeVarint(out, pos, id);
  }
  out[pos++] = 0x12;
  pos = writeVarint(out, pos, putBodyBytes(put));
  const { key, value, lease } = put;
  if (key != null && key.length > 0) {
    out[pos++] = 0x0a;
    pos = writeVarint(out, pos, key.length);
    out.set(key, pos);
    pos += key.length;
  }
  if (value != null && value.length > 0) {
    out[pos++] = 0x12;
    pos = writeVarint(out, pos, value.length);
    out.set(value, pos);
    pos += value.length;
  }
  if (lease != null && lease !== 0n) {
    out[pos++] = 0x18;
    const v = leaseVarints.of(lease);
    out.set(v, pos);
    pos += v.length;
  }
  if (put.prev_kv === true) { out[pos++] = 0x20; out[pos++] = 1; }
  if (put.ignore_value === true) { out[pos++] = 0x28; out[pos++] = 1; }
  if (put.ignore_lease === true) { out[pos++] = 0x30; out[pos++] = 1; }
  const memberId = request.member_id;
  if (memberId != null && memberId !== 0n) {
    out[pos++] = 0x38;
    const v = memberIdVarints.of(memberId);
    out.set(v, pos);
    pos += v.length;
  }
  assert(pos === out.length, () => `put proposal: wrote ${pos} bytes into ${out.length}`);
}
