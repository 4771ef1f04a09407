import type { Member as MemberRecord } from '../proto/etcd-types.js';
import { Bucket, type Backend } from '../storage/backend.js';
import type { InitialMember } from './cluster-identity.js';

/**
 * The cluster's members as the state machine knows them: id, name, peer URLs (from
 * --initial-cluster or the MemberAdd that brought a member in), client URLs (published by each
 * member through the log once it has a leader), learner or voter, and the ids removed for good.
 * Changed only by applied entries, so every member holds the same table at the same index.
 *
 * Stored in the backend's members bucket, staged in the same batch as the applied index:
 *   key   member id, 8 bytes big-endian
 *   value JSON {"name", "peerURLs", "clientURLs", "isLearner", "removed"}
 * The founding members come from identity.json; the bucket overlays them.
 */
export interface MemberInfo {
  id: bigint;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

interface StoredMember {
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
  removed?: boolean;
}

export class Membership {
  private readonly members = new Map<bigint, MemberInfo>();
  private readonly removed = new Set<bigint>();

  private constructor(private readonly backend: Backend) {}

  static async load(backend: Backend, initial: readonly InitialMember[]): Promise<Membership> {
    const m = new Membership(backend);
    for (const f of initial) m.members.set(f.id, { id: f.id, name: f.name, peerURLs: [...f.peerUrls], clientURLs: [], isLearner: false });
    await backend.scan(Bucket.members, (key, value) => {
      const id = key.readBigUInt64BE(0);
      const stored = JSON.parse(value.toString('utf8')) as StoredMember;
      if (stored.removed === true) {
        m.members.delete(id);
        m.removed.add(id);
      } else {
        m.members.set(id, { id, name: stored.name, peerURLs: stored.peerURLs, clientURLs: stored.clientURLs, isLearner: stored.isLearner });
      }
    });
    return m;
  }

  get(id: bigint): MemberInfo | undefined {
    return this.members.get(id);
  }

  /** Ids removed for good (etcd's members_removed). */
  removedIds(): bigint[] {
    return [...this.removed];
  }

  isRemoved(id: bigint): boolean {
    return this.removed.has(id);
  }

  all(): MemberInfo[] {
    return [...this.members.values()];
  }

  /** Adds or replaces a member (staged: lands with the next backend commit). */
  set(info: MemberInfo): void {
    this.members.set(info.id, info);
    this.stage(info.id, { name: info.name, peerURLs: info.peerURLs, clientURLs: info.clientURLs, isLearner: info.isLearner });
  }

  remove(id: bigint): void {
    this.members.delete(id);
    this.removed.add(id);
    this.stage(id, { name: '', peerURLs: [], clientURLs: [], isLearner: false, removed: true });
  }

  /** etcd's MemberList shape. */
  toRecords(): MemberRecord[] {
    return this.all().map((m) => ({ ID: m.id, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner }));
  }

  private stage(id: bigint, stored: StoredMember): void {
    const key = Buffer.alloc(8);
    key.writeBigUInt64BE(id);
    this.backend.put(Bucket.members, key, Buffer.from(JSON.stringify(stored)));
  }
}
