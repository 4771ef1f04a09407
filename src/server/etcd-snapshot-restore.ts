import { mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeMvccMeta, MVCC_META_KEY } from '../mvcc/kv-store.js';
import { encodeLeaseRecord, leaseKey } from '../lease/lease-record.js';
import { encodePutRecordBuffer, encodeTombstoneRecord } from '../mvcc/kv-record.js';
import { prefixedRevisionKey } from '../mvcc/revision.js';
import type { Logger } from '../platform/logger.js';
import { Backend, Bucket } from '../storage/backend.js';
import { BboltFormatError } from '../storage/bbolt/bbolt-format.js';
import { BboltReader, type BboltBucketRef } from '../storage/bbolt/bbolt-reader.js';
import { checkSnapshotTrailer } from '../storage/bbolt/snapshot-trailer.js';
import { loadOrCreateIdentity, type ClusterIdentity } from './cluster-identity.js';
import type { MemberConfig } from './config.js';
import {
  decodeEtcdKeyValue, decodeEtcdLease, decodeEtcdRevisionKey, EtcdBucket, EtcdMetaKey, EtcdLayoutError,
} from './etcd-backend-layout.js';

/**
 * `keyraftctl snapshot restore`: turns a snapshot in etcd's format (from `etcdctl snapshot save`
 * against etcd 3.4 or keyraft, or keyraft's own Maintenance.Snapshot) into a keyraft data dir a
 * member starts from, as `etcdctl snapshot restore` makes an etcd data dir:
 *
 *   1. the trailer is checked (etcd's rule, snapshot-trailer.ts) before anything is written;
 *   2. etcd's `key` bucket becomes keyraft's mvcc records (etcd-backend-layout.ts says how), its
 *      compact revision keyraft's compacted revision (the member finishes a compaction etcd had
 *      scheduled), the current revision the highest one seen, as etcd's own restore computes it;
 *   3. etcd's `lease` bucket (leasepb.Lease records) becomes keyraft's lease bucket in the lessor's
 *      format (src/lease/lease-record.ts: granted and checkpointed remaining TTL); a snapshot of
 *      keyraft writes them back as leasepb.Lease, so leases and their keys survive a round trip
 *      either way, and the restored member's lessor serves and expires them;
 *   4. the old cluster's members are dropped (etcd's restore does the same): the new cluster is
 *      the one the flags describe, written as identity.json; the WAL starts empty, so the member
 *      bootstraps its Raft log at start and carries on from the restored revision.
 *
 * Everything is built in a scratch directory next to the data dir and renamed into place only
 * when complete, so a bad snapshot leaves nothing behind; a data dir that exists and is not
 * empty is refused, as etcdctl refuses it.
 */

export interface RestoreOptions {
  snapshotPath: string;
  /** The member the data dir is for: name, data dir, --initial-cluster, token, peer URLs. */
  config: MemberConfig;
  skipHashCheck: boolean;
  logger: Logger;
  /** Called after each batch with the bytes of the database read so far and its size (a progress bar). */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface RestoreResult {
  dataDir: string;
  identity: ClusterIdentity;
  /** Records of etcd's key bucket restored. */
  records: number;
  leases: number;
  revision: number;
  compacted: number;
}

export class SnapshotRestoreError extends Error {
  override name = 'SnapshotRestoreError';
}

export async function restoreEtcdSnapshot(options: RestoreOptions): Promise<RestoreResult> {
  const { snapshotPath, config, logger } = options;
  const dataDir = config.dataDir;
  if (!(await isEmptyOrMissing(dataDir))) throw new SnapshotRestoreError(`data-dir ${JSON.stringify(dataDir)} not empty or could not be read`);
  const { dbBytes } = await checkSnapshotTrailer(snapshotPath, options.skipHashCheck);
  const reader = await BboltReader.open(snapshotPath, dbBytes);
  const scratch = `${dataDir.replace(/\/+$/, '')}.restoring-${process.pid}`;
  let backend: Backend | undefined;
  try {
    const buckets = new Map((await reader.buckets()).map((b) => [b.name.toString('latin1'), b]));
    const keyBucket = buckets.get(EtcdBucket.key);
    const metaBucket = buckets.get(EtcdBucket.meta);
    if (keyBucket === undefined || metaBucket === undefined) {
      throw new SnapshotRestoreError(`${snapshotPath} is a bbolt database but not an etcd snapshot: it has no "key" or no "meta" bucket (buckets: ${[...buckets.keys()].join(', ') || 'none'})`);
    }
    const compacted = await readCompactedRevision(reader, metaBucket);
    await rm(scratch, { recursive: true, force: true });
    const memberDir = join(scratch, 'member');
    await mkdir(memberDir, { recursive: true });
    backend = await Backend.open(join(memberDir, 'db'), { logger });
    let records = 0;
    let maxRevision = 0;
    for await (const batch of reader.entries(keyBucket)) {
      for (const e of batch) {
        const rev = decodeEtcdRevisionKey(e.key);
        if (rev === null) throw new SnapshotRestoreError(`${snapshotPath}: key bucket entry ${e.key.toString('hex')} is not an etcd revision key`);
        const kv = decodeEtcdKeyValue(e.value);
        if (kv.key.length === 0) throw new SnapshotRestoreError(`${snapshotPath}: revision ${rev.main}.${rev.sub} has an empty key`);
        const record = rev.tombstone ? encodeTombstoneRecord() : encodePutRecordBuffer(kv.createRevision, kv.version, kv.lease, kv.value);
        backend.putPrefixed(prefixedRevisionKey(Bucket.key, rev.main, kv.key), record);
        if (rev.main > maxRevision) maxRevision = rev.main;
      }
      records += batch.length;
      backend.commit();
      // Backpressure: one LevelDB batch in flight while the next pages are read.
      await backend.drain();
      options.onProgress?.(Math.min(dbBytes, reader.pagesRead * reader.meta.pageSize), dbBytes);
    }
    let leases = 0;
    const leaseBucket = buckets.get(EtcdBucket.lease);
    if (leaseBucket !== undefined) {
      for await (const batch of reader.entries(leaseBucket)) {
        for (const e of batch) {
          const lease = e.key.length === 8 ? decodeEtcdLease(e.value) : undefined;
          if (lease === undefined || lease.id !== e.key.readBigInt64BE(0)) {
            throw new SnapshotRestoreError(`${snapshotPath}: lease bucket entry ${e.key.toString('hex')} is not a lease record`);
          }
          backend.put(Bucket.lease, leaseKey(lease.id), encodeLeaseRecord(lease.ttlSeconds, lease.remainingTtlSeconds));
          leases++;
        }
      }
    }
    // etcd's restore: the current revision is the highest in the key bucket, at least the compacted one.
    const revision = Math.max(maxRevision, compacted, 1);
    // Applied index 0: the member bootstraps a fresh Raft log on this backend (its WAL is empty).
    backend.put(Bucket.meta, MVCC_META_KEY, encodeMvccMeta({ appliedIndex: 0, revision, compacted }));
    backend.commit();
    await backend.flush();
    await backend.close();
    backend = undefined;
    const identity = await loadOrCreateIdentity(memberDir, { ...config, initialClusterState: 'new' });
    await rmdir(dataDir).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
    await rename(scratch, dataDir);
    logger.info({ snapshot: snapshotPath, dataDir, records, leases, revision, compacted }, 'restored snapshot');
    return { dataDir, identity, records, leases, revision, compacted };
  } catch (err) {
    await backend?.close().catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
    if (err instanceof EtcdLayoutError) throw new SnapshotRestoreError(`${snapshotPath}: ${err.message}`);
    throw err;
  } finally {
    await reader.close();
  }
}

/**
 * The compacted revision a snapshot's meta bucket names: the scheduled one when it is ahead of
 * the finished one (etcd was compacting when the snapshot was taken; the member finishes it),
 * else the finished one; -1 when neither is there (never compacted).
 */
async function readCompactedRevision(reader: BboltReader, meta: BboltBucketRef): Promise<number> {
  let compacted = -1;
  for await (const batch of reader.entries(meta)) {
    for (const e of batch) {
      const name = e.key.toString('latin1');
      if (name !== EtcdMetaKey.scheduledCompactRev && name !== EtcdMetaKey.finishedCompactRev) continue;
      const rev = decodeEtcdRevisionKey(e.value);
      if (rev === null || rev.tombstone) throw new BboltFormatError('Malformed', `${reader.path}: meta ${name} is not a revision (${e.value.toString('hex')})`);
      compacted = Math.max(compacted, rev.main);
    }
  }
  return compacted;
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}
