/**
 * Membership changes and their encoding in a ConfChange entry's data.
 *
 * Changes are single-server (Raft dissertation 4.1): each changes the voter set by at most one
 * member, so any majority of the old voters and any majority of the new ones overlap. A member uses
 * the latest configuration in its log, committed or not (dissertation 4.1: "a server always uses
 * the latest configuration in its log"); a truncated configuration entry reverts it. Learners
 * receive the log but neither vote nor count for commit; AddVoter on a learner promotes it.
 *
 * Encoding (big-endian), fixed so the core needs no codec:
 *   byte 0      ConfChangeType
 *   bytes 1..8  member id, uint64
 *   bytes 9..   context: opaque to the core (the member puts its peer URLs there)
 */
import { assert } from './raft-assert.js';
import type { ConfState, MemberId } from './raft-types.js';

export enum ConfChangeType {
  AddVoter = 0,
  RemoveMember = 1,
  AddLearner = 2,
}

export interface ConfChange {
  readonly type: ConfChangeType;
  readonly memberId: MemberId;
  readonly context: Uint8Array;
}

const headerBytes = 9;

export function encodeConfChange(change: ConfChange): Uint8Array {
  assert(change.memberId > 0n && change.memberId < 1n << 64n, () => `conf change member id out of range: ${change.memberId}`);
  const out = new Uint8Array(headerBytes + change.context.length);
  const view = new DataView(out.buffer);
  out[0] = change.type;
  view.setBigUint64(1, change.memberId);
  out.set(change.context, headerBytes);
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  assert(data.length >= headerBytes, () => `conf change entry too short: ${data.length} bytes`);
  const type = data[0] as ConfChangeType;
  assert(type === ConfChangeType.AddVoter || type === ConfChangeType.RemoveMember || type === ConfChangeType.AddLearner,
    () => `unknown conf change type ${type}`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { type, memberId: view.getBigUint64(1), context: data.subarray(headerBytes) };
}

/** The configuration after change. Pure; the caller validated the change (validateConfChange). */
export function applyConfChange(conf: ConfState, change: ConfChange): ConfState {
  const id = change.memberId;
  const voters = conf.voters.filter((v) => v !== id);
  const learners = conf.learners.filter((l) => l !== id);
  switch (change.type) {
    case ConfChangeType.AddVoter:
      voters.push(id);
      break;
    case ConfChangeType.AddLearner:
      learners.push(id);
      break;
    case ConfChangeType.RemoveMember:
      break;
  }
  return { voters, learners };
}

/** Why change may not be proposed against conf, or null when it may. */
export function validateConfChange(conf: ConfState, change: ConfChange): string | null {
  const isVoter = conf.voters.includes(change.memberId);
  const isLearner = conf.learners.includes(change.memberId);
  switch (change.type) {
    case ConfChangeType.AddVoter:
      return isVoter ? `member ${change.memberId} is already a voter` : null;
    case ConfChangeType.AddLearner:
      if (isLearner) return `member ${change.memberId} is already a learner`;
      if (isVoter && conf.voters.length === 1) return `member ${change.memberId} is the last voter`;
      return null;
    case ConfChangeType.RemoveMember:
      if (!isVoter && !isLearner) return `member ${change.memberId} is not in the configuration`;
      if (isVoter && conf.voters.length === 1) return `member ${change.memberId} is the last voter`;
      return null;
  }
}

export function confStatesEqual(a: ConfState, b: ConfState): boolean {
  return sameMembers(a.voters, b.voters) && sameMembers(a.learners, b.learners);
}

function sameMembers(a: readonly MemberId[], b: readonly MemberId[]): boolean {
  if (a.length !== b.length) return false;
  for (const id of a) if (!b.includes(id)) return false;
  return true;
}
