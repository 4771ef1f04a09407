/**
 * The restart benchmark at smoke size, so it cannot rot: loads keys, restarts keyraft gracefully
 * and after kill -9 (an acknowledged put just before the kill must survive), times each restart
 * to the first answered Range, and reads the start-up phases from keyraft's log.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatRestartResult, runRestartBench } from '../../bench/kv/restart-bench.js';

test('the restart bench loads keys, restarts keyraft gracefully and after kill -9, and times the first answered range', async () => {
  const options = { keys: 1000, rounds: 1, vsEtcd: false, log: () => {} };
  // runRestartBench checks the key count after each restart and the put acknowledged before kill -9.
  const r = await runRestartBench(options);
  for (const mode of ['graceful', 'kill -9'] as const) {
    const [sample] = r.keyraft[mode];
    assert.ok(sample !== undefined && sample.firstRangeMs > 0, mode);
    assert.ok(sample!.phases !== undefined && 'storeRebuildMs' in sample!.phases && 'walReadMs' in sample!.phases, `${mode}: start-up phases logged`);
  }
  assert.match(formatRestartResult(r, options), 'kill -9 ms');
});

test.run();
