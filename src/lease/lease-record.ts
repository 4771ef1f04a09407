import { assert } from '../platform/assert.js';

/**
 * A lease as the backend's lease bucket (0x03) stores it (etcd's leasepb.Lease {ID, TTL,
 * RemainingTTL}, here fixed-width):
 *
 *   key:   lease id, 8 bytes big-endian two's complement (ids are positive int64)
 *   value: granted TTL in seconds (8 B BE) | remaining TTL in seconds at the last checkpoint (8 B
 *          BE; 0 = none, the full TTL applies)
 *
 * Example: lease 0x694d7d7c6b2e1a04 granted 60 s, checkpointed at 42 s left:
 *   key 69 4d 7d 7c 6b 2e 1a 04, value 00..00 3c | 00..00 2a.
 * Attached keys are not stored here: they are the live MVCC keys whose lease field names the id,
 * rebuilt from the key index at start-up (one fact, one home).
 */
export const LEASE_RECORD_BYTES = 16;

export function leaseKey(id: bigint): Buffer {
  const key = Buffer.allocUnsafe(8);
  key.writeBigInt64BE(id, 0);
  return key;
}

export function encodeLeaseRecord(ttlSeconds: number, remainingTtlSeconds: number): Buffer {
  assert(Number.isSafeInteger(ttlSeconds) && Number.isSafeInteger(remainingTtlSeconds),
    () => `lease record with TTL ${ttlSeconds} and remaining TTL ${remainingTtlSeconds}`);
  const value = Buffer.allocUnsafe(LEASE_RECORD_BYTES);
  value.writeBigInt64BE(BigInt(ttlSeconds), 0);
  value.writeBigInt64BE(BigInt(remainingTtlSeconds), 8);
  return value;
}

export function decodeLeaseRecord(key: Buffer, value: Buffer): { id: bigint; ttlSeconds: number; remainingTtlSeconds: number } {
  assert(key.length === 8 && value.length === LEASE_RECORD_BYTES,
    () => `lease record with a ${key.length}-byte key and a ${value.length}-byte value (expected 8 and ${LEASE_RECORD_BYTES})`);
  return {
    id: key.readBigInt64BE(0),
    ttlSeconds: Number(value.readBigInt64BE(0)),
    remainingTtlSeconds: Number(value.readBigInt64BE(8)),
  };
}
