import { crc32c } from '../platform/crc32c.js';
import { KeyraftError } from '../platform/errors.js';
import { Bucket, type Backend, type BackendSnapshotReader } from '../storage/backend.js';
import type { BPlusTree } from './b-plus-tree.js';
import { isTombstoneRecord, RECORD_HEADER_BYTES } from './kv-record.js';
import { entryKeptAt, type IndexEntry } from './key-index.js';
import type { LatestSlots } from './latest-slots.js';
import { readUint64, REVISION_BYTES } from './revision.js';

/**
 * HashKV and Hash (etcd 3.4's mvcc/kvstore.go HashByRev and backend.Hash): checksums members
 * compare to find a diverged replica (the corrupt check, server/corrupt-check.ts).
 *
 * HashKV(rev) is CRC-32C over the string "key" and then, for each revision record of the key
 * bucket in revision order up to `rev`, the record's etcd backend key and its marshalled
 * mvccpb.KeyValue, exactly the bytes etcd's bbolt holds:
 *
 *   backend key: main revision (8 B BE) | '_' | sub revision (8 B BE) [| 't' for a tombstone]
 *   value:       mvccpb.KeyValue{key, create_revision, mod_revision, version, value, lease}
 *                (proto3, zero fields omitted); a tombstone's value is KeyValue{key} only.
 *
 * Which records: every record with compacted < main <= rev, and of those at or below the
 * compacted revision only the ones etcd's `keep` set names: for each key, the revision a
 * compaction at `rev` would keep (KeyIndex.keptAt). etcd falls back to hashing every remaining
 * record at or below the compacted revision when that set is empty (no key is live at rev); what
 * remains there depends on how far etcd's background compaction got, so we hash what a finished
 * compaction leaves instead: the revisions keptAt(compacted) names. That makes the value
 * independent of compaction progress, so members agree whatever their compactor is doing.
 * Consequences, written down because tests rely on them:
 *   - HashKV(rev) fails with "required revision has been compacted" for rev <= compacted, as etcd.
 *   - A compaction at c < rev changes HashKV(rev) when some key's revision at or below c is not
 *     the one it keeps at rev (e.g. put a@2, compact 3, put a@4: HashKV(5) drops a@2). A
 *     compaction changes nothing for a key whose kept revision is still the one at rev.
 *   - Any put or delete at or below rev that is not compacted away changes it.
 *
 * Sub revisions: our backend keys a record by (main revision, key) and does not keep the op
 * order inside a txn (revision.ts), so the sub revision hashed is the record's position among
 * the hashed records of its main revision, in key order. That equals etcd's for single puts,
 * a DeleteRange (etcd deletes in key order too) and txns whose writes are in key order; a txn
 * that writes keys out of key order, or one revision whose some records were compacted away,
 * hashes differently from etcd (members of one keyraft cluster still agree with each other).
 *
 * Consistency: the records come from one LevelDB iterator (an implicit snapshot) opened once
 * every batch committed before the call is written; records above `rev` are ignored, so writes
 * meanwhile change nothing. A compaction applied while hashing could remove records the hash
 * needs, so the hash is computed again if the compacted revision moved (bounded retries).
 *
 * Cost: one pass over the key bucket up to `rev`, read 1,000 records per native call with the
 * CRC computed between reads on the main thread (about 1 MiB of records per turn), and the
 * look-ups of the compacted region's keys in the in-memory index.
 */

export interface HashKVResult {
  hash: number;
  /** The compacted revision when the hash was taken (-1 before any compaction). */
  compactRevision: number;
  /** The store's current revision when the hash was taken (etcd's header revision). */
  currentRevision: number;
  /** The revision hashed (rev, or current for 0). */
  hashRevision: number;
}

export interface HashSource {
  readonly index: BPlusTree<IndexEntry>;
  /** The slots of the index's keys in slot form (key-index.ts). */
  readonly latestSlots: LatestSlots;
  readonly backend: Backend;
  readonly currentRevision: number;
  readonly compactedRevision: number;
}

/** Retries of a hash that a concurrent compaction invalidated, before giving up with Timeout. */
const HASH_ATTEMPTS_MAX = 10;

const KEY_BUCKET_NAME = Buffer.from('key', 'ascii');

export async function hashKV(src: HashSource, rev: number): Promise<HashKVResult> {
  for (let attempt = 0; attempt < HASH_ATTEMPTS_MAX; attempt++) {
    const compacted = src.compactedRevision;
    const current = src.currentRevision;
    if (rev > 0 && rev <= compacted) throw new KeyraftError('Compacted');
    if (rev > current) throw new KeyraftError('FutureRevision');
    const at = rev > 0 ? rev : current;
    await src.backend.drain();
    if (src.compactedRevision !== compacted) continue;
    const reader = src.backend.snapshotReader();
    let hash: number;
    try {
      hash = await hashRecords(reader, src.index, src.latestSlots, at, compacted);
    } finally {
      await reader.close();
    }
    if (src.compactedRevision !== compacted) continue;
    return { hash, compactRevision: compacted, currentRevision: current, hashRevision: at };
  }
  throw new KeyraftError('Timeout');
}

async function hashRecords(reader: BackendSnapshotReader, index: BPlusTree<IndexEntry>, slots: LatestSlots, at: number, compacted: number): Promise<number> {
  let h = crc32c(KEY_BUCKET_NAME);
  // etcd's `len(keep) > 0`: is any key's kept revision defined at `at`? (Usually the first key's.)
  const keepRev = compacted >= 0 && !anyKept(index, slots, at) ? compacted : at;
  const revKey = Buffer.alloc(REVISION_BYTES * 2 + 2);
  revKey[REVISION_BYTES] = 0x5f; // '_'
  revKey[REVISION_BYTES * 2 + 1] = 0x74; // 't'
  let lastMain = -1;
  let sub = 0;
  for (;;) {
    const batch = await reader.nextBatch();
    if (batch.length === 0) break;
    for (const [k, v] of batch) {
      if (k[0] !== Bucket.key) return h;
      const main = readUint64(k, 1);
      if (main > at) return h;
      const userKey = k.subarray(1 + REVISION_BYTES);
      if (main <= compacted) {
        const entry = index.get(userKey.toString('latin1'));
        if (entry === undefined || entryKeptAt(entry, slots, keepRev) !== main) continue;
      }
      if (main !== lastMain) {
        lastMain = main;
        sub = 0;
      }
      revKey.writeUInt32BE(Math.floor(main / 0x1_0000_0000), 0);
      revKey.writeUInt32BE(main >>> 0, 4);
      revKey.writeUInt32BE(Math.floor(sub / 0x1_0000_0000), REVISION_BYTES + 1);
      revKey.writeUInt32BE(sub >>> 0, REVISION_BYTES + 5);
      sub++;
      if (isTombstoneRecord(v)) {
        h = crc32c(revKey, h);
        h = crc32c(marshalKeyValue(userKey, 0, 0, 0, EMPTY, 0n), h);
      } else {
        h = crc32c(revKey.subarray(0, REVISION_BYTES * 2 + 1), h);
        h = hashPutRecord(h, userKey, main, v);
      }
    }
  }
  return h;
}

function anyKept(index: BPlusTree<IndexEntry>, slots: LatestSlots, at: number): boolean {
  for (const cursor = index.first(); cursor.valid; cursor.next()) {
    if (entryKeptAt(cursor.value, slots, at) !== 0) return true;
  }
  return false;
}

const EMPTY = Buffer.alloc(0);

/** Scratch for the marshalled fields around a value; grows for long keys, never shrinks. */
let scratch = Buffer.allocUnsafe(4096);

/**
 * Continues CRC `h` over the mvccpb.KeyValue of a put record (kv-record.ts layout), as
 * marshalKeyValue would write it, without building it: the fields before the value go through
 * a scratch buffer, the value is hashed in place, then the lease. Per record: no allocation.
 */
function hashPutRecord(h: number, key: Buffer, modRevision: number, record: Buffer): number {
  const valueBytes = record.length - RECORD_HEADER_BYTES;
  if (scratch.length < key.length + 64) scratch = Buffer.allocUnsafe(key.length + 64);
  const out = scratch;
  let o = 0;
  if (key.length > 0) {
    out[o++] = 0x0a;
    o = writeVarint(out, o, key.length);
    o += key.copy(out, o);
  }
  const createRevision = readUint64(record, 0);
  const version = readUint64(record, 8);
  if (createRevision !== 0) { out[o++] = 0x10; o = writeVarint(out, o, createRevision); }
  if (modRevision !== 0) { out[o++] = 0x18; o = writeVarint(out, o, modRevision); }
  if (version !== 0) { out[o++] = 0x20; o = writeVarint(out, o, version); }
  if (valueBytes > 0) {
    out[o++] = 0x2a;
    o = writeVarint(out, o, valueBytes);
    h = crc32c(out.subarray(0, o), h);
    h = crc32c(record.subarray(RECORD_HEADER_BYTES), h);
    o = 0;
  }
  if (record.readUInt32BE(16) !== 0 || record.readUInt32BE(20) !== 0) {
    out[o++] = 0x30;
    let v = BigInt.asUintN(64, record.readBigInt64BE(16));
    while (v >= 0x80n) {
      out[o++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    out[o++] = Number(v);
  }
  return o > 0 ? crc32c(out.subarray(0, o), h) : h;
}

/**
 * mvccpb.KeyValue as gogoproto marshals it: fields in number order, zero values omitted.
 * 1 key (bytes), 2 create_revision, 3 mod_revision, 4 version (int64), 5 value (bytes), 6 lease (int64).
 */
export function marshalKeyValue(key: Buffer, createRevision: number, modRevision: number, version: number, value: Buffer, lease: bigint): Buffer {
  const out = Buffer.allocUnsafe(key.length + value.length + 4 * 11 + 2 * 6);
  let o = 0;
  if (key.length > 0) {
    out[o++] = 0x0a;
    o = writeVarint(out, o, key.length);
    o += key.copy(out, o);
  }
  if (createRevision !== 0) { out[o++] = 0x10; o = writeVarint(out, o, createRevision); }
  if (modRevision !== 0) { out[o++] = 0x18; o = writeVarint(out, o, modRevision); }
  if (version !== 0) { out[o++] = 0x20; o = writeVarint(out, o, version); }
  if (value.length > 0) {
    out[o++] = 0x2a;
    o = writeVarint(out, o, value.length);
    o += value.copy(out, o);
  }
  if (lease !== 0n) {
    out[o++] = 0x30;
    let v = BigInt.asUintN(64, lease);
    while (v >= 0x80n) {
      out[o++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    out[o++] = Number(v);
  }
  return out.subarray(0, o);
}

function writeVarint(out: Buffer, o: number, n: number): number {
  while (n >= 0x80) {
    out[o++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[o++] = n;
  return o;
}

/** Bucket names as etcd names its bbolt buckets, written before each bucket's records in Hash. */
const BUCKET_NAMES: ReadonlyMap<number, Buffer> = new Map<number, Buffer>(
  Object.entries(Bucket).filter(([name]) => name !== 'sync').map(([name, byte]) => [byte, Buffer.from(name, 'ascii')]),
);

/** The mvcc meta key, whose first 8 bytes (the applied index) Hash skips, as etcd skips consistent_index. */
const MVCC_META_KEY = Buffer.from('mvcc', 'ascii');

/**
 * Hash: CRC-32C over the whole backend (every bucket but the sync barrier): each bucket's name,
 * then its keys and values in key order, as etcd's backend.Hash. The applied index in the mvcc
 * meta is left out (etcd leaves out consistent_index): it differs between members for reasons
 * that are not divergence. Keyraft's layout is not etcd's bbolt, so the value is comparable
 * between keyraft members only.
 */
export async function hashBackend(backend: Backend): Promise<number> {
  await backend.drain();
  const reader = backend.snapshotReader();
  try {
    let h = 0;
    let bucket = -1;
    for (;;) {
      const batch = await reader.nextBatch();
      if (batch.length === 0) break;
      for (const [k, v] of batch) {
        if (k[0] !== bucket) {
          bucket = k[0]!;
          h = crc32c(BUCKET_NAMES.get(bucket) ?? Buffer.from([bucket]), h);
        }
        h = crc32c(k.subarray(1), h);
        const skipApplied = bucket === Bucket.meta && k.length === 1 + MVCC_META_KEY.length && k.subarray(1).equals(MVCC_META_KEY);
        h = crc32c(skipApplied ? v.subarray(8) : v, h);
      }
    }
    return h;
  } finally {
    await reader.close();
  }
}
