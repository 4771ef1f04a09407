/**
 * Preloaded into a keyraft member by `watch-bench --keyraft-trace DIR` (NODE_OPTIONS=--require
 * this file): records, with wall-clock times the bench's other processes share
 * (performance.timeOrigin + now), every main-thread stall (a 2 ms timer that fired more than
 * 10 ms late: the event loop was busy or the process waited for a core) and every garbage
 * collection (kind and pause), and writes them to DIR/keyraft-trace-PID.json at exit, so that a
 * late put can be matched to what the member was doing then.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const dir = process.env.KEYRAFT_TRACE_DIR;
if (dir !== undefined && dir !== '') {
  const wall = (): number => performance.timeOrigin + performance.now();
  const stalls: Array<[number, number]> = [];
  const gcs: Array<[number, number, number]> = [];
  const tickMs = 2;
  let expected = performance.now() + tickMs;
  const timer = setInterval(() => {
    const t = performance.now();
    const late = t - expected;
    if (late > 10) stalls.push([performance.timeOrigin + expected, late]);
    expected = t + tickMs;
  }, tickMs);
  timer.unref();
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
      gcs.push([performance.timeOrigin + e.startTime, e.duration, kind]);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  process.once('exit', () => {
    writeFileSync(join(dir, `keyraft-trace-${process.pid}.json`), JSON.stringify({ end: wall(), stalls, gcs }));
  });
}
