/**
 * A work budget per turn of the event loop for request work on the main thread (decoding and
 * running calls, encoding replies). A member has one main thread: before this, every request
 * that arrived in one socket read ran, and its reply was encoded, in one go with no I/O between
 * (60 Range calls of 10 MB in one 4 KB write held the thread 10.4 s and grew RSS by 1.2 GB, and a
 * client that had gone was noticed only at the end).
 *
 * Work comes as tasks, each on a lane (one per client connection). A task runs at once while the
 * current turn has budget left (Limits.workSliceMs) and its lane has nothing queued, so a lightly
 * loaded member pays nothing; otherwise it queues, and queued tasks run in slices of that budget,
 * one setImmediate apart, so timers, socket reads (a client that has gone, a reset, /health) and
 * writes all get their turn between slices. Lanes take turns one task at a time (a connection
 * with a thousand queued calls does not starve one with a single call).
 *
 * A lane may be closed to new work for a while (its `canRun` says no: its client is not reading
 * what it was already sent); it parks, and `wake` (called when any socket drains) lets it try
 * again. A task whose call was canceled is skipped when its turn comes: `cancel` makes it a no-op.
 *
 * A task may take longer than the budget (one large reply); the budget bounds how much more work
 * follows it in the same turn, not the task itself.
 */
import { performance } from 'node:perf_hooks';
import { assert } from '../platform/assert.js';

export interface WorkTask {
  run(): void;
  /** Set by the owner: the task is skipped when its turn comes. */
  canceled: boolean;
}

export class WorkLane {
  /** Tasks waiting, oldest first; `head` of them already ran or were skipped. */
  queue: WorkTask[] = [];
  head = 0;
  /** In the scheduler's ring of lanes with work, or parked. */
  scheduled = false;
  parked = false;
  closed = false;

  constructor(readonly canRun: () => boolean) {}

  get waiting(): number {
    return this.queue.length - this.head;
  }
}

export class WorkScheduler {
  /** Lanes with queued work, taking turns. */
  private ring: WorkLane[] = [];
  private readonly parked = new Set<WorkLane>();
  /** Start of the current turn's budget (performance.now()), or -1 outside a measured turn. */
  private turnStart = -1;
  private runScheduled = false;
  private readonly endTurn = (): void => this.runSlice();

  constructor(private readonly sliceMs: number) {
    assert(sliceMs > 0, `work slice of ${sliceMs} ms`);
  }

  lane(canRun: () => boolean): WorkLane {
    return new WorkLane(canRun);
  }

  /** Runs `task` now if the turn has budget and nothing is ahead of it on its lane; else queues it. */
  submit(lane: WorkLane, task: WorkTask): void {
    if (lane.closed || task.canceled) return;
    if (lane.waiting === 0 && this.hasBudget() && lane.canRun()) {
      task.run();
      return;
    }
    lane.queue.push(task);
    this.schedule(lane);
  }

  /** The lane's connection is gone: its queued tasks never run. */
  close(lane: WorkLane): void {
    lane.closed = true;
    lane.queue = [];
    lane.head = 0;
    this.parked.delete(lane);
  }

  /** Output drained: the parked `lane` (every parked lane if none is given) may run again. */
  wake(lane?: WorkLane): void {
    if (lane !== undefined) {
      if (!lane.parked) return;
      this.parked.delete(lane);
      this.unpark(lane);
      this.scheduleRun();
      return;
    }
    if (this.parked.size === 0) return;
    for (const parked of this.parked) this.unpark(parked);
    this.parked.clear();
    this.scheduleRun();
  }

  private unpark(lane: WorkLane): void {
    lane.parked = false;
    lane.scheduled = true;
    this.ring.push(lane);
  }

  /** Whether the current turn of the event loop still has budget for inline work. */
  private hasBudget(): boolean {
    const now = performance.now();
    if (this.turnStart < 0) {
      this.turnStart = now;
      this.scheduleRun();
    }
    return now - this.turnStart < this.sliceMs;
  }

  private schedule(lane: WorkLane): void {
    if (lane.scheduled || lane.parked) return;
    lane.scheduled = true;
    this.ring.push(lane);
    this.scheduleRun();
  }

  private scheduleRun(): void {
    if (this.runScheduled) return;
    this.runScheduled = true;
    setImmediate(this.endTurn);
  }

  /** One slice: lanes take turns, one task each, until the budget is spent or no lane can run. */
  private runSlice(): void {
    this.runScheduled = false;
    const start = performance.now();
    this.turnStart = start;
    let turn = 0;
    while (turn < this.ring.length) {
      if (performance.now() - start >= this.sliceMs) break;
      const lane = this.ring[turn]!;
      if (lane.closed || lane.waiting === 0) {
        lane.scheduled = false;
        this.ring[turn] = this.ring[this.ring.length - 1]!;
        this.ring.pop();
        continue;
      }
      if (!lane.canRun()) {
        lane.scheduled = false;
        lane.parked = true;
        this.parked.add(lane);
        this.ring[turn] = this.ring[this.ring.length - 1]!;
        this.ring.pop();
        continue;
      }
      const task = lane.queue[lane.head]!;
      lane.head++;
      if (lane.head === lane.queue.length) {
        lane.queue = [];
        lane.head = 0;
      } else if (lane.head >= 1024 && lane.head * 2 >= lane.queue.length) {
        lane.queue = lane.queue.slice(lane.head);
        lane.head = 0;
      }
      if (!task.canceled) task.run();
      turn = (turn + 1) % Math.max(1, this.ring.length);
    }
    // Budget spent with work left: the rest waits for the next turn, after I/O.
    if (this.ring.length > 0) this.scheduleRun();
    else {
      // A new turn's budget starts with the next submit.
      this.turnStart = -1;
    }
  }
}
