/**
 * Expected refusals of the Raft core, as typed errors with stable codes. The member maps them to
 * etcd's errors (no leader -> "etcdserver: no leader", transfer -> "etcdserver: leader changed"...).
 * Broken invariants are not RaftErrors: they throw RaftAssertionError (raft-assert.ts).
 */
export type RaftErrorCode =
  /** No leader is known: nowhere to send a proposal or ReadIndex. */
  | 'no-leader'
  /** Leadership is being transferred: the leader refuses proposals until it ends. */
  | 'transfer-in-progress'
  /** A configuration change is still uncommitted, or the leader has not committed in its term yet. */
  | 'conf-change-pending'
  /** The configuration change is not allowed (unknown member, last voter, more than one voter changed). */
  | 'conf-change-invalid'
  /** The operation needs the leader and this member is not it. */
  | 'not-leader'
  /** A bounded queue in the core is full (pending ReadIndex requests). */
  | 'queue-full'
  /** The snapshot or compaction index is out of range (not applied yet, or already compacted). */
  | 'compacted'
  | 'unavailable-index';

export class RaftError extends Error {
  override name = 'RaftError';
  constructor(readonly code: RaftErrorCode, message: string) {
    super(message);
  }
}

export function isRaftError(err: unknown, code?: RaftErrorCode): err is RaftError {
  return err instanceof RaftError && (code === undefined || err.code === code);
}
