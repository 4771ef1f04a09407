/**
 * The core's executable invariants. src/raft imports nothing of ours (it must stay a pure library),
 * so it carries its own assert; like platform/assert.ts it stays on in production: crashing beats
 * acknowledging a write on a corrupt log.
 */
export class RaftAssertionError extends Error {
  override name = 'RaftAssertionError';
}

export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new RaftAssertionError(typeof message === 'function' ? message() : message);
  }
}
