import { assert } from '../platform/assert.js';
import type { KeyValue } from '../proto/etcd-types.js';
import type { RecordArena } from './record-arena.js';
import { readUint64, writeUint64 } from './revision.js';

/**
 * The backend value of one revision record (its key is revision.ts's revisionKey):
 *
 *   put:        create_revision (8 B BE) | version (8 B BE) | lease (8 B BE, two's complement) | value
 *   tombstone:  empty (zero bytes)
 *
 * mod_revision and the key come from the record's key. A put record is at least 24 bytes, so an
 * empty record is unambiguous. Example: "foo"="bar" created at 3, version 2, no lease:
 *   00..03 | 00..02 | 00..00 | 62 61 72
 */

export const RECORD_HEADER_BYTES = 24;

const TOMBSTONE = Buffer.alloc(0);

/** The record, in `arena` (the store keeps a view of its value as the revision's value). */
export function encodePutRecord(createRevision: number, version: number, lease: bigint, value: Buffer, arena: RecordArena): Buffer {
  const out = arena.alloc(RECORD_HEADER_BYTES + value.length);
  writeUint64(out, createRevision, 0);
  writeUint64(out, version, 8);
  if (lease === 0n) {
    out.writeUInt32BE(0, 16);
    out.writeUInt32BE(0, 20);
  } else {
    out.writeBigInt64BE(lease, 16);
  }
  value.copy(out, RECORD_HEADER_BYTES);
  return out;
}

/** encodePutRecord into a buffer of its own (offline tools: snapshot restore). */
export function encodePutRecordBuffer(createRevision: number, version: number, lease: bigint, value: Buffer): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + value.length);
  writeUint64(out, createRevision, 0);
  writeUint64(out, version, 8);
  out.writeBigInt64BE(BigInt.asIntN(64, lease), 16);
  value.copy(out, RECORD_HEADER_BYTES);
  return out;
}

/** The fields of a put record (a view of its value, no copy). */
export function readPutRecord(record: Buffer): { createRevision: number; version: number; lease: bigint; value: Buffer } {
  assert(record.length >= RECORD_HEADER_BYTES, () => `mvcc record of ${record.length} bytes is truncated`);
  return {
    createRevision: readUint64(record, 0),
    version: readUint64(record, 8),
    lease: record.readBigInt64BE(16),
    value: record.subarray(RECORD_HEADER_BYTES),
  };
}

export function encodeTombstoneRecord(): Buffer {
  return TOMBSTONE;
}

export function isTombstoneRecord(record: Buffer): boolean {
  return record.length === 0;
}

/**
 * The KeyValue of a put record whose header is at [start, end) of `buffer` and whose value is
 * `value` (start-up reads the header in place from the backend scan's chunk and keeps the value as
 * a view of it, no copy: kv-store.ts recover).
 */
export function readPutRecordAt(key: Buffer, modRevision: number, buffer: Buffer, start: number, end: number, value: Buffer): KeyValue {
  if (end - start !== RECORD_HEADER_BYTES) assert(false, `mvcc record of ${end - start + value.length} bytes at revision ${modRevision} is truncated`);
  const lease = buffer.readUInt32BE(start + 16) === 0 && buffer.readUInt32BE(start + 20) === 0 ? 0n : buffer.readBigInt64BE(start + 16);
  return Object.freeze({
    key,
    create_revision: readUint64(buffer, start),
    mod_revision: modRevision,
    version: readUint64(buffer, start + 8),
    value,
    lease,
  });
}
