/** The lease benchmark at smoke size, so it cannot rot: both scenarios run against keyraft and make progress. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatLeaseTable, runLeaseBench } from '../../bench/lease/lease-bench.js';

test('keep-alive and grant-put-revoke run against keyraft', async () => {
  const rows = await runLeaseBench({ vsEtcd: false, leases: 200, streams: 2, durationSeconds: 2, rounds: 1, concurrency: 4, log: () => {} });
  assert.is(rows.length, 2);
  for (const r of rows) assert.ok(r.keyraft > 0, `${r.name}: no progress`);
  assert.ok(rows[0]!.keyraftCpuUs! > 0, 'server CPU measured');
  assert.match(formatLeaseTable(rows), 'grant + put + revoke');
});

test.run();
