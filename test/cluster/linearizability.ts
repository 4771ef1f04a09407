/**
 * Linearizability checker for a key-value register, for the cluster fault tests.
 *
 * The approach is Wing & Gong's search with Lowe's memoization, as Porcupine (anishathalye/
 * porcupine) implements it:
 *
 * 1. Partition by key. Every operation touches one key, and linearizability is local (Herlihy &
 *    Wing, 1990): a history is linearizable iff each key's sub-history is. Checking 20 keys of 100
 *    operations each is far cheaper than one search over 2,000.
 * 2. Each operation becomes two events, call and return, in one list sorted by time; at equal
 *    times calls sort first, so operations that touch at a millisecond boundary count as
 *    concurrent (the lenient reading of a clock we cannot trust below its resolution).
 * 3. Depth-first search: walk the list from its head; at a call event, try to linearize that
 *    operation now (the model accepts its output in the current state). If it fits, lift its call
 *    and return out of the list, push it on a stack and restart from the head. Reaching a return
 *    event means the operation it closes was not linearized before it returned, so this branch is
 *    dead: pop the last choice, put its events back, and try the next call after it.
 * 4. The cache: the pair (set of linearized operations as a bitset, model state) fully determines
 *    the rest of the search, so a pair seen before is not explored again. This is what turns the
 *    factorial search into something that finishes on real histories.
 *
 * Worked example, one key, three clients (time runs right):
 *
 *     A: put(x, 1) |------|
 *     B:              get(x) -> 2  |-----|
 *     C:        put(x, 2) |-------------|
 *
 * List: callA callC retA callB retC retB. From the head: A fits (state 1), lift it; C fits
 * (state 2); B reads 2: fits. All linearized: ok, in the order A C B. Had B read 1 and started
 * after C returned, every branch would reach retC or retB with B unplaced: not linearizable.
 *
 * Operations whose outcome is unknown (a timeout or a dropped connection: the write may or may
 * not have been applied) get returnMs = Infinity, as in Porcupine: they may linearize anywhere
 * after their call, and "never happened" is the same as "linearized after everything else",
 * which an infinite return time allows. Their output is unknown, so the model accepts them in any
 * state (a cas with unknown outcome applies iff its compare holds in the state where it lands).
 * Reads with unknown outcome have no effect and are dropped before the search.
 *
 * The search is bounded by a time budget; past it the answer is `ok: 'unknown'`, never a hang.
 *
 * Cost (measured on generated histories of 2,000 ops from 10 clients, one core): 20 keys check in
 * 5-15 ms, 2 keys in 15-100 ms, 1 key in 0.2-0.7 s. What explodes is a violation on one key that
 * also carries many unknown outcomes (100 on one key: past a 20 s budget), because an op with an
 * infinite return is concurrent with everything after its call and the search must rule out every
 * place for it. So fault tests should spread their clients over many keys.
 */
import { performance } from 'node:perf_hooks';

/** A key's value; `null` means the key is absent (never written, or deleted). */
export type RegisterValue = string | null;

/**
 * One operation on one key, as the client saw it. `output` is `undefined` when the outcome is
 * unknown (and then `returnMs` is Infinity):
 * - put: output ignored (etcd's put cannot fail once applied).
 * - get: output is the value read, `null` for absent.
 * - delete: output is the number of keys deleted (0 or 1) if the client saw it, else undefined
 *   (a known delete whose count was not looked at is fine: only the effect is checked).
 * - cas: etcd's `txn(compare value(key) == expected, then put(key, value))`; output is whether it
 *   succeeded. `expected: null` means "compare create_revision == 0", i.e. the key is absent.
 */
export type Operation = OperationBase & (
  | { op: 'put'; input: { key: string; value: string }; output?: undefined }
  | { op: 'get'; input: { key: string }; output?: RegisterValue }
  | { op: 'delete'; input: { key: string }; output?: number }
  | { op: 'cas'; input: { key: string; expected: RegisterValue; value: string }; output?: boolean }
);

export interface OperationBase {
  clientId: number;
  /** Invocation time, monotonic milliseconds (performance.now()). */
  callMs: number;
  /** Completion time; Infinity when the outcome is unknown. */
  returnMs: number;
}

export type OperationKind = Operation['op'];
export type InputOf<K extends OperationKind> = Extract<Operation, { op: K }>['input'];
export type OutputOf<K extends OperationKind> = Exclude<Extract<Operation, { op: K }>['output'], undefined>;
/** What a recorded call resolves to: a put may resolve to anything (its response is not checked). */
export type CallResultOf<K extends OperationKind> = K extends 'put' ? unknown : OutputOf<K>;

export type CheckResult =
  | { ok: true }
  | { ok: false; key: string; explanation: string }
  | { ok: 'unknown'; reason: string };

export interface CheckOptions {
  /** Budget for the whole history (all keys); past it the result is 'unknown'. Default 10 s. */
  timeoutMs?: number;
}

const defaultTimeoutMs = 10_000;
// How many search steps between two looks at the clock (performance.now() costs ~50 ns; a step
// ~100 ns, so the check stays a small fraction and the overrun a fraction of a millisecond).
const stepsPerClockCheck = 1024;

/** Outcome unknown: the op may have been applied or not (see the header). */
export function isUnknownOutcome(op: Operation): boolean {
  return op.returnMs === Infinity;
}

export function checkLinearizable(history: readonly Operation[], opts: CheckOptions = {}): CheckResult {
  const deadlineMs = performance.now() + (opts.timeoutMs ?? defaultTimeoutMs);
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    validate(op);
    // A read that never answered changed nothing and constrains nothing.
    if (op.op === 'get' && isUnknownOutcome(op)) continue;
    let ops = byKey.get(op.input.key);
    if (ops === undefined) byKey.set(op.input.key, ops = []);
    ops.push(op);
  }
  let unknownReason: string | undefined;
  // Sorted keys: the same history reports the same key.
  for (const key of [...byKey.keys()].sort()) {
    const result = checkKey(key, byKey.get(key)!, deadlineMs);
    if (result.ok === false) return result;
    if (result.ok === 'unknown') {
      unknownReason = result.reason;
      // A later key may still prove a violation; but without time left the others are unknown too.
      if (performance.now() >= deadlineMs) break;
    }
  }
  return unknownReason === undefined ? { ok: true } : { ok: 'unknown', reason: unknownReason };
}

function validate(op: Operation): void {
  if (!(op.callMs <= op.returnMs)) {
    throw new Error(`operation returns before its call: ${describe(op)}`);
  }
  if (isUnknownOutcome(op) !== (op.output === undefined) && op.op !== 'put' && op.op !== 'delete') {
    throw new Error(`output must be undefined exactly when returnMs is Infinity: ${describe(op)}`);
  }
}

// ---- The model: one register per key ----

/**
 * Whether `op` may take effect in `state`, and the state after it. Exported for tests of the
 * model itself; the search calls it for every candidate.
 */
export function stepRegister(state: RegisterValue, op: Operation): { ok: boolean; next: RegisterValue } {
  const known = !isUnknownOutcome(op);
  switch (op.op) {
    case 'put':
      return { ok: true, next: op.input.value };
    case 'get':
      return { ok: op.output === state, next: state };
    case 'delete': {
      const deleted = state === null ? 0 : 1;
      return { ok: !known || op.output === undefined || op.output === deleted, next: null };
    }
    case 'cas': {
      const holds = state === op.input.expected;
      return { ok: !known || op.output === holds, next: holds ? op.input.value : state };
    }
  }
}

// ---- The search (Porcupine's checkSingle) ----

/** A node of the doubly linked event list; a call points at its return. */
interface Event {
  isCall: boolean;
  /** Index of the operation in this key's list: its bit in the linearized set. */
  id: number;
  time: number;
  /** For a call: its return event. */
  match: Event | undefined;
  prev: Event | undefined;
  next: Event | undefined;
}

type KeyResult = { ok: true } | { ok: false; key: string; explanation: string } | { ok: 'unknown'; reason: string };

function checkKey(key: string, ops: Operation[], deadlineMs: number): KeyResult {
  const n = ops.length;
  const head = buildEventList(ops);
  const words = Math.ceil(n / 32);
  const linearized = new Uint32Array(words);
  // Completed (known) operations not yet linearized: at 0 the rest are unknown-outcome ops, which
  // the model accepts in any state and any order, so they can always be placed at the end.
  let knownLeft = ops.reduce((count, op) => count + (isUnknownOutcome(op) ? 0 : 1), 0);
  const cache = new StateCache();
  const stack: Array<{ call: Event; state: RegisterValue }> = [];
  let state: RegisterValue = null;
  // The deepest point reached, for the explanation when the search fails.
  let deepest: number[] = [];
  let deepestState: RegisterValue = null;
  let steps = 0;

  let entry = head.next;
  while (knownLeft > 0) {
    if (++steps % stepsPerClockCheck === 0 && performance.now() >= deadlineMs) {
      return { ok: 'unknown', reason: `key ${JSON.stringify(key)}: search budget spent after ${steps} steps over ${n} operations (deepest ${deepest.length} linearized)` };
    }
    // Invariant: the list is never empty while a known op is unlinearized, and the walk never
    // falls off its end: the last event is a return (of the op whose return is latest).
    assert(entry !== undefined, `walked off the event list with ${knownLeft} known ops left`);
    if (entry.isCall) {
      const op = ops[entry.id]!;
      const { ok, next } = stepRegister(state, op);
      if (ok) {
        setBit(linearized, entry.id);
        if (cache.add(linearized, next)) {
          stack.push({ call: entry, state });
          state = next;
          if (!isUnknownOutcome(op)) knownLeft--;
          lift(entry);
          if (stack.length > deepest.length) {
            deepest = stack.map((s) => s.call.id);
            deepestState = state;
          }
          entry = head.next;
          continue;
        }
        clearBit(linearized, entry.id);
      }
      entry = entry.next;
    } else {
      // A return before its call was linearized: this prefix cannot be extended. Backtrack.
      const top = stack.pop();
      if (top === undefined) {
        return { ok: false, key, explanation: explain(key, ops, deepest, deepestState) };
      }
      state = top.state;
      clearBit(linearized, top.call.id);
      if (!isUnknownOutcome(ops[top.call.id]!)) knownLeft++;
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { ok: true };
}

/** A sentinel head followed by every call and return event, sorted by time, calls first on ties. */
function buildEventList(ops: Operation[]): Event {
  const events: Event[] = [];
  ops.forEach((op, id) => {
    const ret: Event = { isCall: false, id, time: op.returnMs, match: undefined, prev: undefined, next: undefined };
    const call: Event = { isCall: true, id, time: op.callMs, match: ret, prev: undefined, next: undefined };
    events.push(call, ret);
  });
  // Ties: calls before returns (see the header); among calls or returns, by id, for determinism.
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.id - b.id : a.isCall ? -1 : 1));
  const head: Event = { isCall: false, id: -1, time: -Infinity, match: undefined, prev: undefined, next: undefined };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return head;
}

/** Takes a call and its return out of the list; they keep their own links for `unlift`. */
function lift(call: Event): void {
  call.prev!.next = call.next;
  if (call.next) call.next.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

/** Undoes `lift` (in reverse order, so the links it restores are the ones it removed). */
function unlift(call: Event): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next) ret.next.prev = ret;
  call.prev!.next = call;
  if (call.next) call.next.prev = call;
}

function setBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5]! |= 1 << (i & 31);
}

function clearBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5]! &= ~(1 << (i & 31));
}

/** The set of (linearized bitset, state) pairs already explored, hashed into buckets. */
class StateCache {
  private readonly buckets = new Map<number, Array<{ bits: Uint32Array; state: RegisterValue }>>();

  /** Adds the pair; false if it was already there. */
  add(bits: Uint32Array, state: RegisterValue): boolean {
    const h = hash(bits, state);
    let bucket = this.buckets.get(h);
    if (bucket === undefined) this.buckets.set(h, bucket = []);
    for (const seen of bucket) {
      if (seen.state === state && equalBits(seen.bits, bits)) return false;
    }
    bucket.push({ bits: bits.slice(), state });
    return true;
  }
}

function hash(bits: Uint32Array, state: RegisterValue): number {
  // FNV-1a over the words, then the state's characters; collisions only cost a compare.
  let h = 0x811c9dc5;
  for (let i = 0; i < bits.length; i++) h = Math.imul(h ^ bits[i]!, 0x01000193);
  if (state === null) return Math.imul(h ^ 0xff, 0x01000193) >>> 0;
  for (let i = 0; i < state.length; i++) h = Math.imul(h ^ state.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function equalBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- Explanations ----

const explainOpsMax = 40;

/**
 * The longest linearization the search found, the state it ends in, and the operations it could
 * not place next, followed by the key's history in call order (the first 40 operations).
 */
function explain(key: string, ops: Operation[], deepest: number[], state: RegisterValue): string {
  const placed = new Set(deepest);
  const lines = [
    `key ${JSON.stringify(key)}: no linearization of its ${ops.length} operations.`,
    `Longest linearizable prefix (${deepest.length} ops), ending in state ${show(state)}:`,
    ...deepest.slice(-explainOpsMax).map((id) => `  ${describe(ops[id]!)}`),
  ];
  // The unplaced operations that had to come next: those whose return is earliest.
  const pending = ops.map((op, id) => ({ op, id })).filter(({ id }) => !placed.has(id));
  const firstReturn = Math.min(...pending.map(({ op }) => op.returnMs));
  const blocking = pending.filter(({ op }) => op.returnMs === firstReturn || op.callMs < firstReturn);
  lines.push(`None of these fits next (in state ${show(state)}):`);
  for (const { op } of blocking.slice(0, explainOpsMax)) lines.push(`  ${describe(op)}`);
  lines.push(`History of the key by call time${ops.length > explainOpsMax ? ` (first ${explainOpsMax})` : ''}:`);
  const sorted = [...ops].sort((a, b) => a.callMs - b.callMs);
  for (const op of sorted.slice(0, explainOpsMax)) lines.push(`  ${describe(op)}`);
  return lines.join('\n');
}

/** `client 3 cas(k, "a" -> "b") -> true [12.000, 15.500]` */
export function describe(op: Operation): string {
  const k = JSON.stringify(op.input.key);
  let call: string;
  switch (op.op) {
    case 'put': call = `put(${k}, ${show(op.input.value)})`; break;
    case 'get': call = `get(${k})`; break;
    case 'delete': call = `delete(${k})`; break;
    case 'cas': call = `cas(${k}, ${show(op.input.expected)} -> ${show(op.input.value)})`; break;
  }
  const out = isUnknownOutcome(op) ? ' -> ? (outcome unknown)' : op.output === undefined ? '' : ` -> ${typeof op.output === 'string' || op.output === null ? show(op.output) : String(op.output)}`;
  const ret = op.returnMs === Infinity ? 'inf' : op.returnMs.toFixed(3);
  return `client ${op.clientId} ${call}${out} [${op.callMs.toFixed(3)}, ${ret}]`;
}

function show(value: RegisterValue): string {
  return value === null ? '<absent>' : JSON.stringify(value);
}

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`linearizability checker: ${message}`);
}

// ---- Recording a history ----

export interface HistoryRecorderOptions {
  /** Clock in milliseconds; performance.now() by default (monotonic, sub-millisecond). */
  now?: () => number;
  /**
   * Errors after which the operation certainly did not take effect (say, a request refused by
   * validation before it was proposed); those operations are left out of the history. Every
   * other error is an unknown outcome: a timeout or a lost connection may hide an applied write.
   * Default: none, which is always safe (only less sharp).
   */
  isDefiniteFailure?: (error: unknown) => boolean;
}

/**
 * Records the operations of concurrent clients for `checkLinearizable`:
 *
 *     const recorder = new HistoryRecorder();
 *     const value = await recorder.record(1, 'get', { key: 'k' }, async () => (await client.get('k').string()) ?? null);
 *     ...
 *     assert.equal(checkLinearizable(recorder.history()), { ok: true });
 *
 * `record` returns the call's result or rethrows its error, so the client loop sees what it
 * would see without the recorder. Operations still in flight when `history()` is called are
 * included with an unknown outcome.
 */
export class HistoryRecorder {
  private readonly now: () => number;
  private readonly isDefiniteFailure: (error: unknown) => boolean;
  private readonly done: Operation[] = [];
  private readonly inFlight = new Set<Operation>();

  constructor(options: HistoryRecorderOptions = {}) {
    this.now = options.now ?? (() => performance.now());
    this.isDefiniteFailure = options.isDefiniteFailure ?? (() => false);
  }

  async record<K extends OperationKind>(clientId: number, op: K, input: InputOf<K>, call: () => Promise<CallResultOf<K>>): Promise<CallResultOf<K>> {
    // Unknown until it answers; the cast is safe because op and input are tied by K.
    const entry = { clientId, op, input, output: undefined, callMs: this.now(), returnMs: Infinity } as Operation;
    this.inFlight.add(entry);
    try {
      const output = await call();
      entry.returnMs = this.now();
      // A put's output carries nothing the model checks.
      if (entry.op !== 'put') (entry as { output?: unknown }).output = output;
      this.done.push(entry);
      return output;
    } catch (error) {
      if (!this.isDefiniteFailure(error)) this.done.push(entry); // returnMs stays Infinity
      throw error;
    } finally {
      this.inFlight.delete(entry);
    }
  }

  /** Completed and unknown-outcome operations so far, plus those still in flight (unknown). */
  history(): Operation[] {
    return [...this.done, ...[...this.inFlight].map((op) => ({ ...op }))];
  }
}
