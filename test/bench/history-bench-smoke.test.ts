/** The history benchmark at smoke size, so it cannot rot: h2load loads one key, the run reads RSS and ranges it. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatHistoryResult, runHistoryBench } from '../../bench/kv/history-bench.js';

test('the history bench puts to one key through h2load, reads RSS and range throughput', async () => {
  const r = await runHistoryBench({ vsEtcd: false, puts: 2000, rangeSeconds: 1, rounds: 1, log: () => {} });
  // runHistoryBench checks that the key's version is the number of puts (every put landed).
  assert.ok(r.keyraft.rssBytes > 0);
  assert.ok(r.keyraft.putsPerSecond > 0);
  assert.ok(r.keyraft.rangesPerSecond > 0);
  assert.match(formatHistoryResult(r), 'RSS after the puts');
});

test.run();
