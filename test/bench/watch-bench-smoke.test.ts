/** The watch benchmark at smoke size, so it cannot rot: one point and the idle-watcher RSS against keyraft. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatWatchTable, runWatchBench, SMOKE, type WatchBenchOptions } from '../../bench/watch/watch-bench.js';

test('the watch benchmark delivers every event to every watcher and reports numbers', async () => {
  const options = { vsEtcd: false, ...SMOKE, log: () => {} } as WatchBenchOptions;
  const { results, rss } = await runWatchBench(options);
  assert.is(results.length, 1);
  const m = results[0]!.keyraft;
  assert.ok(m.deliveredPerSecond > 0, 'no events delivered');
  assert.is(m.missing, 0, 'events that never reached a watcher');
  assert.ok(rss.keyraft!.after > 0);
  assert.match(formatWatchTable(results, rss, options.idleWatchers), 'W=20 P=100');
});

test.run();
