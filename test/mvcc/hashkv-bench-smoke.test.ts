/** The HashKV benchmark at smoke size, so it cannot rot: it hashes every record and reports numbers. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runHashKVBench } from '../../bench/mvcc/hashkv-bench.js';

test('hashkv bench runs and measures', async () => {
  const r = await runHashKVBench({ keys: 500, valueBytes: 64, versions: 2, runs: 1, log: () => {} });
  assert.is(r.records, 1000);
  assert.ok(r.msMedian > 0 && Number.isFinite(r.maxStallMsMedian));
  assert.ok(r.hash > 0 && r.crc32cMBps > 0 && r.zlibCrc32MBps > 0);
});

test.run();
