import { stat } from 'node:fs/promises';
import { crc32c } from '../platform/crc32c.js';
import { BboltReader } from '../storage/bbolt/bbolt-reader.js';
import { decodeEtcdRevisionKey, EtcdBucket } from './etcd-backend-layout.js';

/**
 * `snapshot status`, computed as etcdctl 3.4 computes it (clientv3/snapshot Status): a CRC-32C
 * over every bucket name and every key and value of every bucket, in bbolt's order; the main
 * revision of the last key of the `key` bucket; the number of pairs in all buckets; and the
 * database's size (pages in use x page size, trailer excluded). Same file, same four numbers.
 */
export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

export async function etcdSnapshotStatus(path: string): Promise<SnapshotStatus> {
  await stat(path); // a missing file fails here with its ENOENT, as etcdctl's os.Stat
  const reader = await BboltReader.open(path);
  try {
    let hash = 0;
    let revision = 0;
    let totalKey = 0;
    for (const bucket of await reader.buckets()) {
      hash = crc32c(bucket.name, hash);
      const isKey = bucket.name.toString('latin1') === EtcdBucket.key;
      for await (const batch of reader.entries(bucket)) {
        for (const e of batch) {
          hash = crc32c(e.key, hash);
          hash = crc32c(e.value, hash);
          if (isKey) revision = decodeEtcdRevisionKey(e.key)?.main ?? revision;
          totalKey++;
        }
      }
    }
    return { hash, revision, totalKey, totalSize: reader.meta.highWaterPgid * reader.meta.pageSize };
  } finally {
    await reader.close();
  }
}
