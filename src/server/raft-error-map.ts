import { KeyraftError } from '../platform/errors.js';
import { RaftError, type RaftErrorCode } from '../raft/raft-errors.js';

/**
 * The one mapping from the Raft core's refusals to etcd's client errors (etcd's
 * etcdserver/errors.go for the texts; the codes are in platform/errors.ts).
 */
const raftToEtcd: Record<RaftErrorCode, ConstructorParameters<typeof KeyraftError>[0]> = {
  'no-leader': 'NoLeader',
  // etcd refuses proposals during a leadership transfer; its client sees the leader change.
  'transfer-in-progress': 'LeaderChanged',
  'not-leader': 'NotLeader',
  'queue-full': 'TooManyRequests',
  'conf-change-pending': 'ConfChangePending',
  'conf-change-invalid': 'ConfChangeInvalid',
  // Compaction refusals are the member's own bookkeeping, never a client's request.
  'compacted': 'Internal',
  'unavailable-index': 'Internal',
};

/** Maps a RaftError to etcd's error; anything else is returned as is (a bug to surface). */
export function toKeyraftError(err: unknown): Error {
  if (err instanceof RaftError) return new KeyraftError(raftToEtcd[err.code], raftToEtcd[err.code] === 'Internal' ? err.message : undefined);
  return err as Error;
}
