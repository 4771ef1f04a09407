import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { PutRequest, TxnRequest } from '../proto/etcd-types.js';
import { BUCKET_IMAGE_FILE } from '../storage/bucket-image.js';

/**
 * The space quota (--quota-backend-bytes, etcd's backendQuota).
 *
 * What counts: the backend's size on disk, the sum of every file in data-dir/member/db (LevelDB
 * table files, its write-ahead log, MANIFEST, LOG). It is the number Status reports as db_size
 * and etcd_mvcc_db_total_size_in_bytes, measured every QUOTA_MEASURE_INTERVAL_MS and after a
 * compaction or a defrag. The WAL (member/wal) and state images (member/snap) do not count, as
 * etcd counts only its bbolt file. db_size_in_use is LevelDB's estimate of the table-file bytes
 * of our key range (approximateSize) plus its write-ahead log files (NNNNNN.log, the records of
 * the memtable not yet in a table): the records as stored, still counting overwritten ones until
 * LevelDB compacts them; never above db_size.
 *
 * What shrinks it: a compaction removes history records (deletes in LevelDB, reclaimed when
 * LevelDB compacts the tables holding them, which it does on its own over time); a defrag
 * (compactRange over everything) reclaims all of it at once and also empties the LevelDB log.
 *
 * The check, as etcd: a put, a txn with puts (and a lease grant) is refused at once with
 * "etcdserver: mvcc: database space exceeded" when size + its cost >= the quota, and the member
 * raises the NOSPACE alarm through the log; from then on every member refuses such writes at
 * apply time until `alarm disarm`. The cost is etcd's estimate of what a request adds.
 */

/** How often the member measures the backend's size for the quota check and the metrics. */
export const QUOTA_MEASURE_INTERVAL_MS = 500;

/** etcd's kvOverhead: an estimate of a key's metadata cost in the backend. */
const KV_OVERHEAD_BYTES = 256;
/** etcd's leaseOverhead: what a lease grant costs (for the lessor's quota check). */
export const LEASE_GRANT_COST_BYTES = 64;

/** etcd's costPut: the request's size plus a key's metadata. */
export function costPut(p: PutRequest): number {
  return KV_OVERHEAD_BYTES + (p.key?.length ?? 0) + (p.value?.length ?? 0) + 16;
}

/**
 * etcd's costTxn: the larger of the two branches' put costs (top-level puts only, as etcd). A
 * txn of ranges and deletes costs 0 and is never refused for space.
 */
export function costTxn(t: TxnRequest): number {
  const branch = (ops: TxnRequest['success']) => (ops ?? []).reduce((sum, op) => sum + (op.request_put ? costPut(op.request_put) : 0), 0);
  return Math.max(branch(t.success), branch(t.failure));
}

export class BackendQuota {
  /** Bytes on disk, as last measured. */
  sizeBytes = 0;
  /** LevelDB's estimate of the bytes in use, as last measured (never above sizeBytes). */
  inUseBytes = 0;

  constructor(private readonly dbDir: string, readonly quotaBytes: number) {}

  /** Whether a request of `costBytes` fits (etcd: size + cost < quota). */
  available(costBytes: number): boolean {
    return this.sizeBytes + costBytes < this.quotaBytes;
  }

  /** Measures the backend: its files' sizes, and the in-use estimate from `approximateSize`. */
  async measure(approximateSize: () => Promise<number>): Promise<void> {
    const { total: size, logBytes } = await directorySizes(this.dbDir);
    let inUse = size;
    try {
      inUse = (await approximateSize()) + logBytes;
    } catch {
      // The backend closed under us (an image install swaps it): keep the file size alone.
    }
    this.sizeBytes = size;
    this.inUseBytes = Math.min(inUse, size);
  }
}

/** Sum of the sizes of the files directly in `dir` (0 if it does not exist). */
export async function directorySize(dir: string): Promise<number> {
  return (await directorySizes(dir)).total;
}

/** The sizes of the files in a LevelDB directory: all of them, and its write-ahead logs (*.log). */
async function directorySizes(dir: string): Promise<{ total: number; logBytes: number }> {
  let total = 0;
  let logBytes = 0;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { total: 0, logBytes: 0 };
    throw err;
  }
  for (const name of names) {
    // The history image (and its temporary file) is a start-up cache beside LevelDB's files,
    // not the database: etcd's db size and the quota leave it out.
    if (name.startsWith(BUCKET_IMAGE_FILE)) continue;
    try {
      const size = (await stat(join(dir, name))).size;
      total += size;
      if (name.endsWith('.log')) logBytes += size;
    } catch (err) {
      // LevelDB deletes obsolete files as it compacts: a file listed a moment ago may be gone.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return { total, logBytes };
}
