/**
 * platform/idle-heap-reducer.ts: once the event loop has been idle for a whole interval and the
 * heap has grown, one memory-reducing GC gives the slack back; never while the loop is busy, and
 * not again without new growth. Each case runs in a fresh process (gc and flags are process-wide).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const reducerModule = join(__dirname, '..', '..', 'src', 'platform', 'idle-heap-reducer.js');

/** Runs `body` with `start` (startIdleHeapReducer) in scope; its stdout, parsed as JSON. */
function inFreshProcess(body: string): Record<string, number | boolean> {
  const script = `const { startIdleHeapReducer: start } = require(${JSON.stringify(reducerModule)});
const v8 = require('node:v8');
const heap = () => v8.getHeapStatistics().total_heap_size;
const MiB = 1024 * 1024;
/** Grows the old generation with objects that then die: ~100 MiB allocated, ~40 MiB held at once. */
function burst() { let hold = []; for (let i = 0; i < 1_200_000; i++) { hold.push({ i, s: 'v' + i }); if (hold.length > 400_000) hold = []; } return hold.length; }
${body}`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, `child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as Record<string, number | boolean>;
}

test('after a burst, an idle process gives the heap back once', () => {
  const r = inFreshProcess(`
const reducer = start({ checkIntervalMs: 100, idleUtilization: 0.05, growthBytesMin: 8 * MiB, usedBytesMax: 512 * MiB });
burst();
const grown = heap();
setTimeout(() => {
  const first = reducer.reductions;
  // Idle for 10 more intervals with no new growth: no second reduction.
  setTimeout(() => {
    process.stdout.write(JSON.stringify({ grown, after: heap(), first, total: reducer.reductions }));
    reducer.stop();
  }, 1000);
}, 600);`);
  assert.is(r.first, 1, 'one reduction within the idle intervals after the burst');
  assert.is(r.total, 1, 'no second reduction without new growth');
  const MiB = 1024 * 1024;
  assert.ok((r.after as number) < (r.grown as number) - 16 * MiB, `heap ${((r.grown as number) / MiB).toFixed(1)} MiB after the burst, ${((r.after as number) / MiB).toFixed(1)} MiB once idle`);
});

test('no reduction while the event loop is busy, nor above the heap-in-use bound', () => {
  const r = inFreshProcess(`
const busy = start({ checkIntervalMs: 100, idleUtilization: 0.05, growthBytesMin: 8 * MiB, usedBytesMax: 512 * MiB });
const tooBig = start({ checkIntervalMs: 100, idleUtilization: 0.05, growthBytesMin: 8 * MiB, usedBytesMax: 1 });
// 1.5 s of a busy loop: bursts in turns of the event loop, each keeping the loop over 5% busy.
const until = Date.now() + 1500;
let keep = [];
(function turn() {
  keep.push(burst() ? new Array(1000).fill(0) : null);
  if (Date.now() < until) setImmediate(turn);
  else {
    const duringLoad = busy.reductions;
    busy.stop();
    setTimeout(() => { process.stdout.write(JSON.stringify({ duringLoad, tooBig: tooBig.reductions })); tooBig.stop(); }, 600);
  }
})();`);
  assert.is(r.duringLoad, 0, 'a reduction ran while the loop was busy');
  assert.is(r.tooBig, 0, 'a reduction ran above usedBytesMax');
});

test.run();
