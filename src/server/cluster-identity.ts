import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { MemberConfig } from './config.js';

/**
 * Cluster and member ids, derived as etcd derives them so the same flags give ids of the same
 * shape: member id = first 8 bytes (big-endian) of sha1(sorted peer URLs joined + cluster token);
 * cluster id = first 8 bytes of sha1(sorted member ids as 8-byte big-endian + cluster token).
 * They are fixed at bootstrap and kept in `member/identity.json`: on restart the stored ids win,
 * as etcd ignores --initial-* flags once the data dir exists.
 */
export interface ClusterIdentity {
  clusterId: bigint;
  memberId: bigint;
  name: string;
  peerUrls: string[];
}

export function computeMemberId(peerUrls: string[], clusterToken: string): bigint {
  const sorted = [...peerUrls].sort();
  const digest = createHash('sha1').update(sorted.join('') + clusterToken).digest();
  return digest.readBigUInt64BE(0);
}

export function computeClusterId(memberIds: bigint[], clusterToken: string): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const bytes = Buffer.alloc(8 * sorted.length);
  sorted.forEach((id, i) => bytes.writeBigUInt64BE(id, 8 * i));
  const digest = createHash('sha1').update(Buffer.concat([bytes, Buffer.from(clusterToken)])).digest();
  return digest.readBigUInt64BE(0);
}

export function identityFromConfig(config: MemberConfig): ClusterIdentity {
  const memberIds: bigint[] = [];
  let memberId = 0n;
  let peerUrls: string[] = [];
  for (const [name, urls] of config.initialCluster) {
    const id = computeMemberId(urls, config.initialClusterToken);
    memberIds.push(id);
    if (name === config.name) {
      memberId = id;
      peerUrls = urls;
    }
  }
  return { clusterId: computeClusterId(memberIds, config.initialClusterToken), memberId, name: config.name, peerUrls };
}

interface StoredIdentity {
  clusterId: string;
  memberId: string;
  name: string;
  peerUrls: string[];
}

/** Reads member/identity.json, or writes it (durably) from the config on first start. */
export async function loadOrCreateIdentity(memberDir: string, config: MemberConfig): Promise<ClusterIdentity> {
  const file = join(memberDir, 'identity.json');
  try {
    const stored = JSON.parse(await readFile(file, 'utf8')) as StoredIdentity;
    return { clusterId: BigInt(stored.clusterId), memberId: BigInt(stored.memberId), name: stored.name, peerUrls: stored.peerUrls };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`cannot read ${file}: ${(err as Error).message}`);
    }
  }
  const identity = identityFromConfig(config);
  const stored: StoredIdentity = {
    clusterId: identity.clusterId.toString(),
    memberId: identity.memberId.toString(),
    name: identity.name,
    peerUrls: identity.peerUrls,
  };
  await mkdir(memberDir, { recursive: true });
  // Write-then-rename with fsync so a crash leaves either no file or the whole file.
  const tmp = `${file}.tmp`;
  await writeFile(tmp, JSON.stringify(stored, null, 2));
  const handle = await open(tmp, 'r+');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
  return identity;
}
