import { rm } from 'node:fs/promises';
import { decodeLeaseRecord } from '../lease/lease-record.js';
import { decodeMvccMeta, MVCC_META_KEY } from '../mvcc/kv-store.js';
import { isTombstoneRecord, RECORD_HEADER_BYTES } from '../mvcc/kv-record.js';
import { readUint64, REVISION_BYTES } from '../mvcc/revision.js';
import { assert } from '../platform/assert.js';
import { Bucket, type Backend } from '../storage/backend.js';
import { BboltWriter } from '../storage/bbolt/bbolt-writer.js';
import {
  encodeEtcdLease, encodeEtcdMember, encodeEtcdRevisionKey, encodeU64BE, ETCD_CLUSTER_VERSION, ETCD_REVISION_KEY_BYTES, EtcdBucket, EtcdMetaKey,
  etcdKeyValueSize, putEtcdKeyValue, putEtcdRevisionKey,
} from './etcd-backend-layout.js';
import type { MemberInfo } from './membership.js';

/**
 * Writes the member's state as etcd 3.4's backend, a bbolt file (etcd-backend-layout.ts), from
 * ONE consistent point: a LevelDB snapshot (Backend.snapshotReader) whose mvcc meta, records and
 * leases were all written by the same batches, so the file holds exactly the state at the
 * revision its meta names. Records are read in batches and pages written as they fill
 * (bbolt-writer.ts): memory stays bounded by a batch and the branch-level index, never the data.
 *
 * What goes where: mvcc records -> `key` (sub revisions numbered in key order within a revision);
 * keyraft's lease bucket (src/lease/lease-record.ts) -> `lease` as etcd's leasepb.Lease records;
 * the compacted revision -> meta's scheduledCompactRev only, so an etcd started on the file
 * finishes the compaction itself (keyraft removes compacted records in the background, and a
 * snapshot may be taken before it is done); the applied index -> consistent_index; the members
 * -> `members` / `members_removed`; `cluster`, `auth` as a fresh etcd 3.4 has them; `alarm`,
 * `authUsers`, `authRoles` empty (keyraft has no alarms or auth yet).
 */

export interface EtcdSnapshotWriteOptions {
  members: readonly MemberInfo[];
  removed: readonly bigint[];
}

export interface WrittenEtcdSnapshot {
  revision: number;
  compacted: number;
  appliedIndex: number;
  records: number;
  leases: number;
  sizeBytes: number;
}

export async function writeEtcdSnapshotFile(backend: Backend, path: string, options: EtcdSnapshotWriteOptions): Promise<WrittenEtcdSnapshot> {
  const reader = backend.snapshotReader();
  let writer: BboltWriter | undefined;
  try {
    const metaBytes = await reader.get(Bucket.meta, MVCC_META_KEY);
    const meta = metaBytes === undefined ? { appliedIndex: 0, revision: 1, compacted: -1 } : decodeMvccMeta(metaBytes);
    reader.rewind();
    writer = await BboltWriter.create(path);
    const w = writer;
    w.beginBucket(Buffer.from(EtcdBucket.key));
    let records = 0;
    let leases = 0;
    let currentRev = -1;
    let sub = 0;
    let inKeyBucket = true;
    for (;;) {
      const batch = await reader.nextBatch();
      if (batch.length === 0) break;
      for (const [prefixed, value] of batch) {
        const bucket = prefixed[0];
        if (bucket === Bucket.key) {
          // prefixed: bucket | main revision (8) | user key; value: mvcc record (kv-record.ts).
          const rev = readUint64(prefixed, 1);
          sub = rev === currentRev ? sub + 1 : 0;
          currentRev = rev;
          const keyStart = 1 + REVISION_BYTES;
          const tombstone = isTombstoneRecord(value);
          let r;
          if (tombstone) {
            r = w.reserve(ETCD_REVISION_KEY_BYTES + 1, etcdKeyValueSize(prefixed.length - keyStart, 0, 0, 0, 0, 0n));
            putEtcdKeyValue(r.buf, r.valueAt, prefixed, keyStart, prefixed.length, 0, 0, 0, EMPTY, 0, 0, 0n);
          } else {
            const createRevision = readUint64(value, 0);
            const version = readUint64(value, 8);
            const lease = value.readUInt32BE(16) === 0 && value.readUInt32BE(20) === 0 ? 0n : value.readBigInt64BE(16);
            r = w.reserve(ETCD_REVISION_KEY_BYTES, etcdKeyValueSize(prefixed.length - keyStart, createRevision, rev, version, value.length - RECORD_HEADER_BYTES, lease));
            putEtcdKeyValue(r.buf, r.valueAt, prefixed, keyStart, prefixed.length, createRevision, rev, version, value, RECORD_HEADER_BYTES, value.length, lease);
          }
          putEtcdRevisionKey(r.buf, r.keyAt, rev, sub, tombstone);
          records++;
          const pending = w.commitReserved();
          if (pending) await pending;
          continue;
        }
        if (inKeyBucket) {
          await w.endBucket();
          w.beginBucket(Buffer.from(EtcdBucket.lease));
          inKeyBucket = false;
        }
        if (bucket === Bucket.lease) {
          assert(prefixed.length === 9, () => `lease bucket key of ${prefixed.length - 1} bytes`);
          const lease = decodeLeaseRecord(prefixed.subarray(1), value);
          const pending = w.put(prefixed.subarray(1), encodeEtcdLease({ id: lease.id, ttlSeconds: lease.ttlSeconds, remainingTtlSeconds: lease.remainingTtlSeconds }));
          leases++;
          if (pending) await pending;
        }
        // meta: read above; auth: nothing keyraft keeps yet; members: from `options` (the
        // founding members live in identity.json, not in the bucket).
      }
    }
    if (inKeyBucket) {
      await w.endBucket();
      w.beginBucket(Buffer.from(EtcdBucket.lease));
    }
    await w.endBucket();
    await writeSmallBucket(w, EtcdBucket.meta, [
      [EtcdMetaKey.consistentIndex, encodeU64BE(meta.appliedIndex)],
      ...(meta.compacted >= 0 ? [[EtcdMetaKey.scheduledCompactRev, encodeEtcdRevisionKey(meta.compacted, 0, false)] as [string, Buffer]] : []),
    ]);
    await writeSmallBucket(w, EtcdBucket.cluster, [['clusterVersion', Buffer.from(ETCD_CLUSTER_VERSION)]]);
    await writeSmallBucket(w, EtcdBucket.auth, [['authRevision', encodeU64BE(1)]]);
    await writeSmallBucket(w, EtcdBucket.members, options.members.map((m) => {
      const { key, value } = encodeEtcdMember(m);
      return [key.toString('latin1'), value];
    }));
    await writeSmallBucket(w, EtcdBucket.membersRemoved, options.removed.map((id) => [id.toString(16), Buffer.from('removed')]));
    for (const name of [EtcdBucket.alarm, EtcdBucket.authUsers, EtcdBucket.authRoles]) await writeSmallBucket(w, name, []);
    writer = undefined;
    const { sizeBytes } = await w.finish();
    return { revision: meta.revision, compacted: meta.compacted, appliedIndex: meta.appliedIndex, records, leases, sizeBytes };
  } catch (err) {
    if (writer !== undefined) {
      await writer.abort();
      await rm(path, { force: true });
    }
    throw err;
  } finally {
    await reader.close();
  }
}

const EMPTY = Buffer.alloc(0);

async function writeSmallBucket(w: BboltWriter, name: string, pairs: Array<[string, Buffer]>): Promise<void> {
  w.beginBucket(Buffer.from(name));
  const sorted = pairs.map(([k, v]) => [Buffer.from(k, 'latin1'), v] as const).sort((a, b) => Buffer.compare(a[0], b[0]));
  for (const [k, v] of sorted) {
    const pending = w.put(k, v);
    if (pending) await pending;
  }
  await w.endBucket();
}
