/**
 * Executable invariants. An assertion guards what must never happen; it stays on in production
 * because crashing beats running on corrupt state. Expected failures are typed errors
 * (errors.ts), never assertions.
 */
export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new AssertionError(typeof message === 'function' ? message() : message);
  }
}

/** Raft indexes, terms and revisions are plain numbers; this checks one is a safe integer >= 0. */
export function assertSafeCount(value: number, what: string): void {
  assert(Number.isSafeInteger(value) && value >= 0, () => `${what} must be a safe non-negative integer, got ${value}`);
}
