/** The lease benchmark at smoke size, so it cannot rot: every scenario runs against keyraft and makes progress. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatLeaseTable, runLeaseBench } from '../../bench/lease/lease-bench.js';

test('keep-alive, grant-put-revoke (grpc-js and raw client, no call failing) and lock run against keyraft', async () => {
  const rows = await runLeaseBench({ vsEtcd: false, leases: 200, streams: 2, durationSeconds: 2, rounds: 1, concurrency: 4, contenders: 3, log: () => {} });
  assert.is(rows.length, 4);
  for (const r of rows) assert.ok(r.keyraft > 0, `${r.name}: no progress`);
  assert.ok(rows[0]!.keyraftCpuUs! > 0, 'server CPU measured');
  assert.ok(rows[2]!.keyraftCpuUs! > 0, 'server CPU per raw-client grant + put + revoke cycle measured');
  assert.ok(rows[3]!.keyraftCpuUs! > 0, 'server CPU per lock cycle measured');
  assert.match(formatLeaseTable(rows), 'grant + put + revoke (4 loops, grpc-js)');
  assert.match(formatLeaseTable(rows), 'grant + put + revoke (4 loops, raw HTTP/2 client)');
  assert.match(formatLeaseTable(rows), 'lock acquire/release (3 contenders)');
});

test.run();
