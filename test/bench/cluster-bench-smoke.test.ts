/** The cluster benchmark at smoke size, so it cannot rot: every scenario runs against a keyraft cluster and gives numbers. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatClusterTable, runClusterBench, SMOKE_SIZE } from '../../bench/cluster/cluster-bench.js';

test('every cluster scenario runs against a 3-member keyraft cluster and measures something', async () => {
  const results = await runClusterBench({ vsEtcd: false, members: 3, ...SMOKE_SIZE, log: () => {} });
  assert.is(results.length, SMOKE_SIZE.inflight.length + 2);
  for (const r of results) {
    const s = r.keyraft;
    if (s.kind === 'failover') {
      assert.ok(s.ms > 0, `${r.name}: no failover time`);
    } else {
      assert.ok(s.load.requestsPerSecond > 0, `${r.name}: no calls completed`);
      assert.is(s.load.non2xx, 0, `${r.name}: calls answered with an error status`);
      assert.is(s.load.errors, 0, `${r.name}: transport errors`);
    }
  }
  assert.match(formatClusterTable(results), 'failover-ms');
});

test.run();
