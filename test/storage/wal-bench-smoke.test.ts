import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runWalBench } from '../../bench/storage/wal-bench.js';

// Smoke size of bench/storage/wal-bench.ts, so the benchmark cannot rot. Asserts behaviour
// (grouping), never durations.
test('wal bench smoke: every variant appends; group commit syncs less than once per append', async () => {
  const results = await runWalBench({ seconds: 0.3, appenders: 20, entryBytes: 100 });
  assert.equal(results.map((r) => r.variant), ['worker', 'main-group', 'per-append']);
  for (const r of results) assert.ok(r.appends > 0 && r.syncs > 0, `${r.variant}: ${r.appends} appends, ${r.syncs} syncs`);
  const [worker, , single] = results;
  assert.ok(worker!.syncs < worker!.appends, `worker: ${worker!.syncs} syncs for ${worker!.appends} appends`);
  assert.is(single!.syncs, single!.appends);
});

test.run();
