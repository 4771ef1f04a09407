/** The lease benchmark at smoke size, so it cannot rot: every scenario runs against keyraft and makes progress. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatLeaseTable, runLeaseBench } from '../../bench/lease/lease-bench.js';

test('keep-alive, grant-put-revoke and lock run against keyraft', async () => {
  const rows = await runLeaseBench({ vsEtcd: false, leases: 200, streams: 2, durationSeconds: 2, rounds: 1, concurrency: 4, contenders: 3, log: () => {} });
  assert.is(rows.length, 3);
  for (const r of rows) assert.ok(r.keyraft > 0, `${r.name}: no progress`);
  assert.ok(rows[0]!.keyraftCpuUs! > 0, 'server CPU measured');
  assert.ok(rows[2]!.keyraftCpuUs! > 0, 'server CPU per lock cycle measured');
  assert.match(formatLeaseTable(rows), 'grant + put + revoke');
  assert.match(formatLeaseTable(rows), 'lock acquire/release (3 contenders)');
});

test.run();
