/**
 * The server process's V8 heap, sized for what keyraft keeps on it (issue 13, "History off the
 * heap"). After 500,000 puts of 256 B to one key the main thread's heap held about 19 MiB of live
 * objects (a heap snapshot) in 80 MiB committed: a 32 MiB young generation (V8 grows each of its
 * two semi-spaces to 16 MiB under a high allocation rate and keeps them) and 42 MiB of old space
 * (V8 lets the old generation grow to up to 4x its live size before the next full GC). That
 * slack, not data, put keyraft's RSS above etcd's (194 vs 156 MiB).
 *
 * Node takes V8's heap sizes only at launch (the command line or NODE_OPTIONS), and keyraft is
 * started as `node keyraft.js` by users, npm's bin shim, the tests and the benchmarks, so the
 * process sets what it can itself. v8.setFlagsFromString after start-up changes only flags V8
 * reads each time it uses them: --max-semi-space-size set that way does nothing (measured: the
 * new space still grew to 32 MiB), because the semi-spaces' maximum is fixed when the isolate is
 * made. Two heuristics V8 reads at every GC do work, and touching them cannot corrupt anything
 * (they only decide when V8 collects and how much it commits):
 *
 * - --heap-growing-percent: the next full GC is due when the old generation reaches its live
 *   size x (1 + p/100) (at least 8 MiB more), instead of V8's dynamic factor of up to 4x. 100
 *   is Go's default GOGC=100, etcd's own policy. Set once start-up is over, so the rebuild of a
 *   large store (hundreds of MiB of heap) keeps V8's fewer, larger full GCs.
 * - --semi-space-growth-factor: how much a scavenge grows the young generation when enough
 *   survived. The observer below sets it to 1 (no growth) while the semi-spaces are at the cap,
 *   and back to V8's 2 when V8 has shrunk them below it (at a GC while the allocation rate is
 *   low), so the young generation goes back up to the cap, never past it. V8 raises any factor
 *   below 2 back to 2 whenever it makes an isolate (Heap::ConfigureHeap: each new Worker; measured:
 *   the main thread's young generation then grew to 16 MiB semi-spaces under load), so the
 *   observer sets it again after every GC while at the cap (7 us a call; about 25 GCs a second
 *   under a put load, so well under 0.1% of a core). What can still pass the cap: a scavenge that grows it between a Worker's
 *   start and the next GC's observer callback (workers start with the member, before load).
 *
 * The growth factor is one flag for the whole process, so the workers' young generations stop
 * growing at the same moment as the main thread's (they allocate little). On a Node whose V8 ignores these flags, memory is as without this file:
 * test/platform/heap-tuning.test.ts fails then, so an upgrade that loses them is seen.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/** V8's default --semi-space-growth-factor. */
const V8_SEMI_SPACE_GROWTH_FACTOR = 2;

/** The young generation's capacity (one semi-space: what a scavenge may fill), in bytes. */
export function semiSpaceCapacityBytes(): number {
  for (const space of getHeapSpaceStatistics()) {
    // Capacity is used + available of the active semi-space, a little under its size (page
    // headers): 15.7 MiB for a 16 MiB semi-space.
    if (space.space_name === 'new_space') return space.space_used_size + space.space_available_size;
  }
  return 0;
}

export interface YoungGenerationCap {
  /** Stops the observer and gives V8 back its default growth. */
  stop(): void;
}

/**
 * Keeps each semi-space at most `semiSpaceMaxBytes` (a power of two, as V8's semi-spaces are:
 * they start at 1 MiB and double). Call early: a young generation already past the cap stays
 * there until V8 shrinks it.
 */
export function capYoungGeneration(semiSpaceMaxBytes: number): YoungGenerationCap {
  let factor = V8_SEMI_SPACE_GROWTH_FACTOR;
  const setFactor = (next: number) => {
    factor = next;
    setFlagsFromString(`--semi-space-growth-factor=${next}`);
  };
  const check = () => {
    // A semi-space at the cap measures 98% of it, the size below the cap half of it.
    if (semiSpaceCapacityBytes() > semiSpaceMaxBytes * 0.75) setFactor(1); // again: see the header
    else if (factor !== V8_SEMI_SPACE_GROWTH_FACTOR) setFactor(V8_SEMI_SPACE_GROWTH_FACTOR);
  };
  check();
  // One callback per batch of GC entries (at most one per turn of the event loop), not per GC.
  const observer = new PerformanceObserver(check);
  observer.observe({ entryTypes: ['gc'] });
  return {
    stop() {
      observer.disconnect();
      if (factor !== V8_SEMI_SPACE_GROWTH_FACTOR) setFactor(V8_SEMI_SPACE_GROWTH_FACTOR);
    },
  };
}

/** The old generation's next full GC at its live size x (1 + percent/100) (see the header). */
export function limitOldGenerationGrowth(percent: number): void {
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/**
 * The young-generation cap as a V8 command-line flag (--max-semi-space-size, MiB), which Node
 * honours when it starts a process: the run-time setter above works on Node 20 and 22, not on
 * Node 24, whose V8 ignores the growth factor once the isolate exists (and there lets the new
 * space pass the flag by a few pages; test/platform/heap-tuning.test.ts). The old generation's
 * growth stays a run-time setting, after start-up: Node 24 ignores it either way.
 */
export function serverHeapFlags(semiSpaceMaxBytes: number): string[] {
  return [`--max-semi-space-size=${Math.max(1, Math.round(semiSpaceMaxBytes / (1024 * 1024)))}`];
}

/** Set in the environment of a relaunched process, so it never relaunches again. */
const RELAUNCHED_ENV = 'KEYRAFT_HEAP_FLAGS_RELAUNCHED';

/**
 * glibc's malloc arenas for the relaunched process, unless the user set MALLOC_ARENA_MAX (or
 * glibc.malloc.arena_max in GLIBC_TUNABLES) themselves. glibc gives threads up to 8 per core of
 * their own, and memory freed in one (LevelDB's memtables and reads, the WAL and the history
 * image's buffers, all allocated from libuv's and the workers' threads) stays with it. Measured
 * after 500,000 puts to one key (scratch script, 2-3 runs alternating, RSS 4 s after the load):
 * Node 22 184-191 -> 166-167 MiB, Node 24 195-198 -> 168-176 MiB, server CPU per put within
 * the runs' noise (Node 24 29.5-30.4 vs 29.8-31.6 us). Read by glibc when the process starts, so
 * only a relaunched process gets it: on Node 20 (no process.execve) the variable must come from
 * the environment that starts keyraft.
 */
export const MALLOC_ARENA_MAX = '2';

/**
 * Replaces this process with the same Node, script and arguments plus `flags` (process.execve:
 * the pid, open descriptors and environment stay, so supervisors and tests that track the pid see
 * one process), and MALLOC_ARENA_MAX (above) in its environment, unless the process already runs
 * with them, was relaunched once, or the user chose a young-generation size of their own (on the
 * command line or in NODE_OPTIONS). Returns false without relaunching where Node has no
 * process.execve (before 22.15 / 23.11): the caller then applies the run-time setters above. Call
 * before any worker thread starts.
 */
export function relaunchWithHeapFlags(flags: string[]): boolean {
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  if (typeof execve !== 'function') return false;
  const own = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  if (process.env[RELAUNCHED_ENV] === '1' || own.includes('--max-semi-space-size')) return true;
  const arenasChosen = process.env.MALLOC_ARENA_MAX !== undefined || (process.env.GLIBC_TUNABLES ?? '').includes('glibc.malloc.arena_max');
  execve.call(process, process.execPath, [process.execPath, ...flags, ...process.execArgv, ...process.argv.slice(1)], {
    ...process.env,
    ...(arenasChosen ? {} : { MALLOC_ARENA_MAX }),
    [RELAUNCHED_ENV]: '1',
  });
  return true; // not reached: execve replaces the process or throws
}
