import type { Logger } from '../platform/logger.js';
import type { HashKVResponse } from '../proto/etcd-types.js';
import type { HashKVResult } from '../mvcc/hash.js';

/**
 * The corrupt check (etcd 3.4's etcdserver/corrupt.go): members compare HashKV at the same
 * revision over the peers' client URLs (the attributes each member publishes), as etcd does.
 *
 * Initial check (--experimental-initial-corrupt-check, on by default here): once the member knows
 * a leader, it hashes its own state at its current revision and asks every peer for HashKV at
 * that revision. A peer with the same compacted revision and a different hash is a mismatch:
 * etcd refuses to start; we raise the CORRUPT alarm (writes stop cluster-wide and an operator
 * looks, the data stays readable). Peers that are behind, compacted past the revision, or
 * unreachable are skipped and logged. Which member the alarm names:
 *   - the mismatching peers, when this member's hash is shared by a majority of the cluster's
 *     members (itself and the peers that agree): they are the odd ones out;
 *   - else this member (etcd's rule: the member that starts is the one that cannot vouch for
 *     its data), also when nobody has a majority (2 members, or peers unreachable).
 * "At start-up" is when a leader and a peer's client URL are known, which can be seconds in; a
 * healthy member whose check runs while another member's data is bad must not name itself.
 * Worked example (3 members, C's backend altered while it was down): C restarts, sees A and B
 * differ, its hash is alone: names C. A restarts (or its first check runs late) while C is up:
 * A's hash is B's too, 2 of 3: names C. A with B down and C differing: 1 of 3: names A (cannot tell).
 *
 * Periodic check (--experimental-corrupt-check-time, every 5 min by default here; 0 = off), on the
 * leader only, as etcd's PeriodicCheck: the leader hashes at its current revision, asks every
 * peer for HashKV at that revision, and hashes again. It raises CORRUPT naming
 *   - itself, if its own two hashes at the same revision and compaction differ;
 *   - a peer whose header revision or compacted revision is ahead of the leader's (impossible
 *     for a follower of this leader);
 *   - when a majority of the members (those with the leader's compacted revision) share a hash
 *     other than the leader's: itself, and any peer outside that majority;
 *   - otherwise a peer whose compacted revision is the leader's and whose hash differs from the
 *     leader's (etcd's rule; with a majority on the leader's hash these are exactly the odd ones).
 * Worked example (3 members, the leader's backend altered): both followers hash 7, the leader 9:
 * 7 is held by 2 of 3, the leader names itself only (etcd would name both healthy followers).
 */

export interface CorruptCheckHost {
  readonly memberId: bigint;
  isLeader(): boolean;
  hashKV(revision: number): Promise<HashKVResult>;
  /** The other members with a published client URL. */
  peers(): Array<{ id: bigint; clientUrl: string }>;
  /** Every member of the cluster, this one included, published or not (the initial check's majority). */
  memberCount(): number;
  /** Asks a peer for HashKV at `revision` (gRPC over its client URL). */
  peerHashKV(clientUrl: string, revision: number): Promise<HashKVResponse>;
  raiseCorrupt(memberId: bigint): void;
  count(result: 'ok' | 'mismatch' | 'incomplete'): void;
}

export class CorruptCheck {
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly host: CorruptCheckHost, private readonly periodMs: number, private readonly logger: Logger) {}

  start(): void {
    if (this.periodMs <= 0) return;
    this.timer = setInterval(() => {
      if (!this.host.isLeader() || this.running) return;
      void this.periodic();
    }, this.periodMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The start-up check; returns the ids it raised CORRUPT for (this member, or the peers that differ). */
  async initial(): Promise<bigint[]> {
    const local = await this.host.hashKV(0);
    const answers = await this.ask(local.hashRevision);
    const differing: bigint[] = [];
    let agreeing = 0;
    for (const { id, response, error } of answers) {
      if (response === undefined) {
        this.logger.warn({ peer: id.toString(16), err: error }, 'initial corrupt check: cannot check this peer');
        continue;
      }
      if (response.compact_revision !== local.compactRevision) {
        this.logger.warn({ peer: id.toString(16), compactRevision: response.compact_revision, local: local.compactRevision },
          'initial corrupt check: the peer compacted differently; skipped');
        continue;
      }
      if (response.hash === local.hash) {
        agreeing++;
        continue;
      }
      differing.push(id);
      this.logger.error({ peer: id.toString(16), revision: local.hashRevision, hash: local.hash, peerHash: response.hash },
        'initial corrupt check: HashKV differs from a peer at the same revision');
    }
    const checked = agreeing + differing.length;
    this.host.count(differing.length > 0 ? 'mismatch' : checked === answers.length ? 'ok' : 'incomplete');
    if (differing.length === 0) {
      this.logger.info({ revision: local.hashRevision, peersChecked: checked, peers: answers.length }, 'initial corrupt check passed');
      return [];
    }
    // This member's hash held by a majority of all members: the peers that differ are the odd ones.
    const members = Math.max(this.host.memberCount(), answers.length + 1);
    const holders = 1 + agreeing;
    const corrupt = holders > members / 2 ? differing : [this.host.memberId];
    this.logger.error({ revision: local.hashRevision, sameHash: holders, members, corrupt: corrupt.map((id) => id.toString(16)) },
      holders > members / 2
        ? 'initial corrupt check: a majority of the members agree with this one; raising CORRUPT for the peers that differ'
        : 'initial corrupt check: no majority of the members agrees with this one; raising CORRUPT for this member');
    for (const id of corrupt) this.host.raiseCorrupt(id);
    return corrupt;
  }

  /** The leader's periodic check; returns the ids it raised CORRUPT for. */
  async periodic(): Promise<bigint[]> {
    this.running = true;
    try {
      const first = await this.host.hashKV(0);
      const answers = await this.ask(first.hashRevision);
      const second = await this.host.hashKV(first.hashRevision);
      const corrupt = new Set<bigint>();
      if (second.hash !== first.hash && second.compactRevision === first.compactRevision) corrupt.add(this.host.memberId);
      let incomplete = false;
      // Members per hash at first.hashRevision (this one included), and the peers that differ.
      const holders = new Map<number, number>([[first.hash, 1]]);
      const differing: Array<{ id: bigint; hash: number }> = [];
      for (const { id, response } of answers) {
        if (response === undefined) {
          incomplete = true;
          continue;
        }
        const peerRevision = response.header?.revision ?? 0;
        if (peerRevision > second.currentRevision || response.compact_revision > second.compactRevision) corrupt.add(id);
        else if (response.compact_revision === first.compactRevision) {
          holders.set(response.hash, (holders.get(response.hash) ?? 0) + 1);
          if (response.hash !== first.hash) differing.push({ id, hash: response.hash });
        }
      }
      // A hash held by a majority of all members is the right one: a leader outside it is the odd
      // member (it names itself and the peers outside it too); without a majority, etcd's rule:
      // every peer that differs from the leader.
      const members = Math.max(this.host.memberCount(), answers.length + 1);
      const majority = [...holders].find(([, n]) => n > members / 2)?.[0];
      if (majority !== undefined && majority !== first.hash) corrupt.add(this.host.memberId);
      for (const { id, hash } of differing) if (majority === undefined || hash !== majority) corrupt.add(id);
      for (const id of corrupt) {
        this.logger.error({ member: id.toString(16), revision: first.hashRevision, hash: first.hash }, 'corrupt check: HashKV mismatch; raising CORRUPT');
        this.host.raiseCorrupt(id);
      }
      this.host.count(corrupt.size > 0 ? 'mismatch' : incomplete ? 'incomplete' : 'ok');
      return [...corrupt];
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'corrupt check could not run');
      this.host.count('incomplete');
      return [];
    } finally {
      this.running = false;
    }
  }

  private ask(revision: number): Promise<Array<{ id: bigint; response?: HashKVResponse; error?: string }>> {
    return Promise.all(this.host.peers().map(async ({ id, clientUrl }) => {
      try {
        return { id, response: await this.host.peerHashKV(clientUrl, revision) };
      } catch (err) {
        return { id, error: (err as Error).message };
      }
    }));
  }
}
