/**
 * Gives the V8 heap's slack back to the OS soon after the process goes idle (issue 13, "RSS after
 * 500,000 puts to one key"). A burst of requests leaves the heap bigger than what is live: garbage
 * the next full GC has not met yet, and empty pages V8 keeps pooled for reuse. V8's own memory
 * reducer returns them only 8-10 s after the load stops on Node 20 and 22, and on Node 24 it did
 * not run at all in 2 of 3 runs measured (RSS 157-164 MiB 20 s after the puts, where etcd holds
 * 152-161). An operator sizing a host then sees the memory of the last burst, not of the data.
 *
 * Here: every `checkIntervalMs` the event loop's utilization over that interval is read
 * (performance.eventLoopUtilization: the share of time the loop was busy). When it is below
 * `idleUtilization` and the committed heap has grown by `growthBytesMin` since the last
 * reduction, one memory-reducing full GC runs, synchronously, on the main thread:
 *
 * - Node 22+ (V8 12+): gc({ flavor: 'last-resort' }), what V8 runs on a low-memory notification:
 *   full GCs with compaction until nothing more is freed, then the young generation shrunk to its
 *   initial 1 MiB and pooled pages unmapped. Measured after 500,000 puts to one key, 2 runs each,
 *   RSS 2 s after the load: Node 22 152/161 -> 126/133 MiB, Node 24 164/161 -> 133/132 MiB, at a
 *   40-50 ms pause (scratch runs, 2026-12-03 21:40 UTC).
 * - Node 20 (V8 11.3) knows no flavor: a plain full GC. It frees the garbage (measured in a
 *   scratch process: heap 148 -> 38 MiB, RSS 195 -> 85 MiB) but leaves the young generation at
 *   its size; the run-time cap on it (heap-tuning.ts) bounds that.
 *
 * Why a pause is acceptable: it runs only after a whole interval in which the loop was nearly
 * idle, once per burst (the growth condition), and only while the heap in use is small enough
 * (`usedBytesMax`) that it lasts tens of milliseconds: a request that arrives during it waits
 * that long once; a cluster's heartbeats (100 ms, election timeout 1 s) are not at risk. A large
 * heap (a store of millions of keys) is left to V8's own reducer, which marks incrementally. The gc function comes from a fresh vm context with --expose-gc set only while
 * that context is made, so no `gc` global appears in the process's own contexts or in workers.
 */
import { performance } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface IdleHeapReducerOptions {
  /** How often utilization is read; also how long the loop must have been idle. */
  checkIntervalMs: number;
  /** The event loop's busy share (0-1) over an interval below which the process counts as idle. */
  idleUtilization: number;
  /** Committed heap growth since the last reduction (or start) that makes one worth its pause. */
  growthBytesMin: number;
  /**
   * No reduction while more than this is in use: the pause grows with what the GC must mark,
   * and a large heap is left to V8's own reducer, which marks incrementally.
   */
  usedBytesMax: number;
  /**
   * Told after each reduction: the committed heap before it, and the pause. (What it gave back
   * shows only later: V8 sweeps and unmaps pages after the pause, concurrently.)
   */
  onReduced?: (info: { heapBytesBefore: number; pauseMs: number }) => void;
}

export interface IdleHeapReducer {
  /** Reductions run so far. */
  readonly reductions: number;
  stop(): void;
}

type GcFunction = (options?: { type: 'major'; execution: 'sync'; flavor?: 'last-resort' }) => void;

/** V8's gc function, without exposing it as a global anywhere (see the header). */
function exposedGc(): GcFunction {
  setFlagsFromString('--expose-gc');
  try {
    return runInNewContext('gc') as GcFunction;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

/** V8 12 (Node 22) has the 'last-resort' flavor; V8 11 (Node 20) does not. */
function supportsLastResortFlavor(): boolean {
  return Number(process.versions.v8.split('.')[0]) >= 12;
}

export function startIdleHeapReducer(options: IdleHeapReducerOptions): IdleHeapReducer {
  const gc = exposedGc();
  const lastResort = supportsLastResortFlavor();
  let baselineBytes = getHeapStatistics().total_heap_size;
  let previous = performance.eventLoopUtilization();
  let reductions = 0;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const interval = performance.eventLoopUtilization(now, previous);
    previous = now;
    const heap = getHeapStatistics();
    const heapBytesBefore = heap.total_heap_size;
    // After a reduction the heap grows back a little under light load: measure from the lowest.
    if (heapBytesBefore < baselineBytes) baselineBytes = heapBytesBefore;
    if (interval.utilization >= options.idleUtilization) return;
    if (heapBytesBefore - baselineBytes < options.growthBytesMin) return;
    if (heap.used_heap_size > options.usedBytesMax) return;
    const started = performance.now();
    // V8 11's gc() takes no flavor, and with an options object it ran no full GC (measured: 0.6
    // ms, nothing freed), so there the call has no argument: a full, synchronous GC.
    if (lastResort) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    else gc();
    const pauseMs = performance.now() - started;
    // Lowered further by the checks that follow, as the sweeper releases pages.
    baselineBytes = getHeapStatistics().total_heap_size;
    reductions++;
    // The pause is this interval's own work, not load: the next interval starts after it.
    previous = performance.eventLoopUtilization();
    options.onReduced?.({ heapBytesBefore, pauseMs });
  }, options.checkIntervalMs);
  timer.unref();
  return {
    get reductions() {
      return reductions;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
