import { assert } from '../platform/assert.js';

/**
 * Revisions: the store's logical clock. The store starts at revision 1; each mutating request
 * that changes something moves it forward by one (a txn with several writes too: its writes are
 * ordered inside the revision by their position in the request, etcd's "sub revision").
 *
 * Backend encoding of a revision record's key: the main revision as 8 bytes big-endian, then the
 * user key. Big-endian makes LevelDB's byte order the revision order. A key changes at most once
 * per revision (the API layer refuses a txn that writes one key twice), so (revision, key) is
 * unique; were a key written twice in one revision, the later record would replace the earlier,
 * which is also the only one a read at that revision may return.
 *
 * Example: key "foo" put at revision 5 is stored under 00 00 00 00 00 00 00 05 66 6f 6f.
 */

export const REVISION_BYTES = 8;

/** Revisions fit in 53 bits; the high word of the 8-byte encoding stays below 2^21. */
const TWO_32 = 0x1_0000_0000;

export function writeUint64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32BE(Math.floor(value / TWO_32), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
}

export function readUint64(buf: Buffer, offset: number): number {
  const value = buf.readUInt32BE(offset) * TWO_32 + buf.readUInt32BE(offset + 4);
  // The message closure only when it fails: this runs several times per record at start-up.
  if (!Number.isSafeInteger(value)) assert(false, `8-byte integer at offset ${offset} exceeds 2^53: corrupt record`);
  return value;
}

/** Backend key (without bucket byte) of `key` written at revision `main`. */
export function revisionKey(main: number, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(REVISION_BYTES + key.length);
  writeUint64(out, main, 0);
  key.copy(out, REVISION_BYTES);
  return out;
}

/** revisionKey with the backend's bucket byte in front (for Backend.putPrefixed). */
export function prefixedRevisionKey(bucket: number, main: number, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + REVISION_BYTES + key.length);
  out[0] = bucket;
  writeUint64(out, main, 1);
  key.copy(out, 1 + REVISION_BYTES);
  return out;
}

/** The main revision of a backend revision key. */
export function revisionOf(revisionKeyBytes: Buffer): number {
  assert(revisionKeyBytes.length > REVISION_BYTES, () => `revision key of ${revisionKeyBytes.length} bytes is too short`);
  return readUint64(revisionKeyBytes, 0);
}

/** The user key of a backend revision key (a view, not a copy). */
export function userKeyOf(revisionKeyBytes: Buffer): Buffer {
  return revisionKeyBytes.subarray(REVISION_BYTES);
}

/** An 8-byte big-endian encoding of a safe integer (meta values). */
export function encodeUint64(value: number): Buffer {
  assert(Number.isSafeInteger(value) && value >= 0, () => `cannot encode ${value} as uint64`);
  const out = Buffer.allocUnsafe(8);
  writeUint64(out, value, 0);
  return out;
}
