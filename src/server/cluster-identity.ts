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
  /** The founding members from --initial-cluster (this one included), in its order. */
  initialMembers: InitialMember[];
  /** --initial-cluster-token: ids of members added later are derived from it too. */
  clusterToken: string;
}

export interface InitialMember {
  id: bigint;
  name: string;
  peerUrls: string[];
}

/**
 * The data dir's format. 0: keyraft 0.1's single member (no format field, a WAL without Raft
 * snapshot markers, votes written as 1). 1: the Raft member (this file's `format` is 1, the WAL
 * begins with the bootstrap snapshot marker holding the founding voters).
 */
export const DATA_DIR_FORMAT = 1;

export class DataDirFormatError extends Error {
  override name = 'DataDirFormatError';
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
  const initialMembers: InitialMember[] = [];
  let memberId = 0n;
  let peerUrls: string[] = [];
  for (const [name, urls] of config.initialCluster) {
    const id = computeMemberId(urls, config.initialClusterToken);
    memberIds.push(id);
    initialMembers.push({ id, name, peerUrls: urls });
    if (name === config.name) {
      memberId = id;
      peerUrls = urls;
    }
  }
  return { clusterId: computeClusterId(memberIds, config.initialClusterToken), memberId, name: config.name, peerUrls, initialMembers, clusterToken: config.initialClusterToken };
}

interface StoredIdentity {
  format?: number;
  clusterId: string;
  memberId: string;
  name: string;
  peerUrls: string[];
  initialMembers?: Array<{ id: string; name: string; peerUrls: string[] }>;
  clusterToken?: string;
}

/** Asks the members at these peer URLs which cluster they are in (a joining member's first step). */
export type ClusterIdDiscovery = (peerUrls: string[], memberId: bigint) => Promise<bigint>;

/**
 * Reads member/identity.json, or writes it (durably) from the config on first start. A member
 * joining an existing cluster (--initial-cluster-state existing) takes the cluster id from its
 * peers, as etcd does: the founding members' ids are not known to it.
 */
export async function loadOrCreateIdentity(memberDir: string, config: MemberConfig, discover?: ClusterIdDiscovery): Promise<ClusterIdentity> {
  const file = join(memberDir, 'identity.json');
  try {
    const stored = JSON.parse(await readFile(file, 'utf8')) as StoredIdentity;
    const format = stored.format ?? 0;
    if (format !== DATA_DIR_FORMAT) {
      // Never guess at another format's meaning: a format-0 WAL has no Raft snapshot marker and
      // votes of 1, which the Raft member would misread as a member id.
      throw new DataDirFormatError(`data dir ${memberDir} has format ${format}${format === 0 ? ' (single-member keyraft 0.1)' : ''}; `
        + `this keyraft reads format ${DATA_DIR_FORMAT} only. Move its data with a snapshot (save from the old version, restore into a new data dir)`);
    }
    return {
      clusterId: BigInt(stored.clusterId), memberId: BigInt(stored.memberId), name: stored.name, peerUrls: stored.peerUrls,
      initialMembers: (stored.initialMembers ?? []).map((m) => ({ id: BigInt(m.id), name: m.name, peerUrls: m.peerUrls })),
      clusterToken: stored.clusterToken ?? config.initialClusterToken,
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`cannot read ${file}: ${(err as Error).message}`);
    }
  }
  const identity = identityFromConfig(config);
  if (config.initialClusterState === 'existing') {
    if (discover === undefined) throw new Error('--initial-cluster-state existing needs the peer network to learn the cluster id');
    const others = identity.initialMembers.filter((m) => m.id !== identity.memberId).flatMap((m) => m.peerUrls);
    if (others.length === 0) throw new Error('--initial-cluster-state existing: --initial-cluster names no other member to join');
    identity.clusterId = await discover(others, identity.memberId);
  }
  const stored: StoredIdentity = {
    format: DATA_DIR_FORMAT,
    clusterId: identity.clusterId.toString(),
    memberId: identity.memberId.toString(),
    name: identity.name,
    peerUrls: identity.peerUrls,
    initialMembers: identity.initialMembers.map((m) => ({ id: m.id.toString(), name: m.name, peerUrls: m.peerUrls })),
    clusterToken: identity.clusterToken,
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
