/**
 * ReadIndex rounds on the leader (Raft dissertation 6.4). A round records the commit index when a
 * read arrived and is confirmed when a quorum answers a heartbeat carrying its context: then no
 * newer leader can have committed anything the read would miss. Rounds are confirmed in order:
 * a quorum for a later round also confirms every earlier one (the later heartbeat was sent after).
 *
 * Batching: the member asks for one ReadIndex for every read waiting at that moment, so a round
 * serves them all; the core adds nothing per read.
 */
import type { MemberId } from './raft-types.js';

export interface ReadIndexRound {
  readonly index: number;
  readonly context: Uint8Array;
  /** Who asked: the leader itself, or a follower that forwarded the request. */
  readonly from: MemberId;
  readonly acks: Set<MemberId>;
}

export function contextKey(context: Uint8Array): string {
  let key = '';
  for (let i = 0; i < context.length; i++) key += String.fromCharCode(context[i]!);
  return key;
}

export class ReadOnly {
  private readonly rounds = new Map<string, ReadIndexRound>();
  private queue: string[] = [];

  get size(): number {
    return this.queue.length;
  }

  add(index: number, context: Uint8Array, from: MemberId): boolean {
    const key = contextKey(context);
    if (this.rounds.has(key)) return false;
    this.rounds.set(key, { index, context, from, acks: new Set() });
    this.queue.push(key);
    return true;
  }

  /** Records an ack; returns the round's ack set, or null if the round is unknown (stale). */
  recvAck(id: MemberId, context: Uint8Array): Set<MemberId> | null {
    const round = this.rounds.get(contextKey(context));
    if (round === undefined) return null;
    round.acks.add(id);
    return round.acks;
  }

  /** Removes and returns the round for context and every round queued before it. */
  advance(context: Uint8Array): ReadIndexRound[] {
    const key = contextKey(context);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const done = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: ReadIndexRound[] = [];
    for (const k of done) {
      out.push(this.rounds.get(k)!);
      this.rounds.delete(k);
    }
    return out;
  }

  reset(): void {
    this.rounds.clear();
    this.queue = [];
  }
}
