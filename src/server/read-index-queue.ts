import { KeyraftError } from '../platform/errors.js';

/**
 * Linearizable reads, batched: every read that arrives while no round is being started joins the
 * next ReadIndex round, so one round (one heartbeat quorum on the leader, or one MsgReadIndex to it
 * from a follower) serves all of them. A round's answer is a read index; its reads are served once
 * the member has applied up to it.
 *
 * Example: reads r1, r2 arrive in one turn -> round #7 starts with context 7. r3 arrives while #7
 * is out -> waits in the next batch, round #8 starts on the next turn. The core answers #7 with
 * index 120; applied is 118 -> r1, r2 wait; apply reaches 120 -> r1, r2 resolve.
 *
 * A round unanswered for retryMs is asked again with a new context (a follower's MsgReadIndex or
 * the leader's heartbeat may be lost); after timeoutMs its reads fail with etcd's "request timed
 * out". Bounded: more than capacity waiting reads are refused with TooManyRequests.
 */
interface Round {
  readers: Array<{ resolve: () => void; reject: (err: Error) => void }>;
  startedMs: number;
  askedMs: number;
  /** The answer, once it arrived. */
  index: number;
}

export class ReadIndexQueue {
  private next: Round['readers'] = [];
  /** Rounds asked and not answered, by context number. */
  private readonly asked = new Map<number, Round>();
  /** Rounds answered, waiting for apply to reach their index (in answer order). */
  private waitingApply: Round[] = [];
  private nextContext = 1;
  private waitingReads = 0;
  /** Rounds asked again because no answer came in time (etcd_server_slow_read_indexes_total). */
  slowRounds = 0;

  constructor(
    /** Contexts start with it: the leader keys pending reads by context, across all members. */
    private readonly memberId: bigint,
    private readonly timeoutMs: number,
    private readonly retryMs: number,
    private readonly capacity: number,
  ) {}

  add(): Promise<void> {
    if (this.waitingReads >= this.capacity) return Promise.reject(new KeyraftError('TooManyRequests'));
    this.waitingReads++;
    return new Promise<void>((resolve, reject) => this.next.push({ resolve, reject }));
  }

  /** Starts a round for the reads waiting now; `ask` hands its context to the core (or returns its refusal). */
  startRound(nowMs: number, ask: (context: Uint8Array) => Error | null): void {
    if (this.next.length === 0) return;
    const round: Round = { readers: this.next, startedMs: nowMs, askedMs: nowMs, index: -1 };
    this.next = [];
    const context = this.nextContext++;
    const refusal = ask(this.encodeContext(context));
    if (refusal !== null) {
      this.settle(round, refusal);
      return;
    }
    this.asked.set(context, round);
  }

  /** The core answered a round: serve it now if applied has reached its index, else when it does. */
  answered(context: Uint8Array, index: number, appliedIndex: number): void {
    const key = this.decodeContext(context);
    const round = this.asked.get(key);
    if (round === undefined) return; // answered twice, or failed meanwhile
    this.asked.delete(key);
    round.index = index;
    if (appliedIndex >= index) this.settle(round, null);
    else this.waitingApply.push(round);
  }

  /** Apply reached appliedIndex: serve every answered round at or below it. */
  applied(appliedIndex: number): void {
    if (this.waitingApply.length === 0) return;
    const still: Round[] = [];
    for (const round of this.waitingApply) {
      if (round.index <= appliedIndex) this.settle(round, null);
      else still.push(round);
    }
    this.waitingApply = still;
  }

  /** Called on every tick: asks again for rounds unanswered past retryMs, fails those past timeoutMs. */
  retryDue(nowMs: number, ask: (context: Uint8Array) => Error | null): void {
    for (const [key, round] of this.asked) {
      if (nowMs - round.startedMs >= this.timeoutMs) {
        this.asked.delete(key);
        this.settle(round, new KeyraftError('Timeout'));
      } else if (nowMs - round.askedMs >= this.retryMs) {
        this.asked.delete(key);
        this.slowRounds++;
        const context = this.nextContext++;
        round.askedMs = nowMs;
        const refusal = ask(this.encodeContext(context));
        if (refusal !== null) this.settle(round, refusal);
        else this.asked.set(context, round);
      }
    }
    for (const round of this.waitingApply) {
      if (nowMs - round.startedMs >= this.timeoutMs) this.settle(round, new KeyraftError('Timeout'));
    }
    this.waitingApply = this.waitingApply.filter((r) => r.readers.length > 0);
  }

  /** Fails every read (leadership change, stop). */
  failAll(err: () => Error): void {
    const rounds = [...this.asked.values(), ...this.waitingApply];
    this.asked.clear();
    this.waitingApply = [];
    for (const round of rounds) this.settle(round, err());
    const waiting = this.next;
    this.next = [];
    for (const r of waiting) {
      this.waitingReads--;
      r.reject(err());
    }
  }

  private settle(round: Round, err: Error | null): void {
    const readers = round.readers;
    round.readers = [];
    this.waitingReads -= readers.length;
    for (const r of readers) {
      if (err === null) r.resolve();
      else r.reject(err);
    }
  }

  /** 16 bytes: this member's id, then the round number (big-endian). */
  private encodeContext(n: number): Uint8Array {
    const b = Buffer.allocUnsafe(16);
    b.writeBigUInt64BE(this.memberId, 0);
    b.writeBigUInt64BE(BigInt(n), 8);
    return b;
  }

  private decodeContext(b: Uint8Array): number {
    if (b.length !== 16) return -1;
    const view = Buffer.from(b.buffer, b.byteOffset, 16);
    if (view.readBigUInt64BE(0) !== this.memberId) return -1;
    return Number(view.readBigUInt64BE(8));
  }
}
