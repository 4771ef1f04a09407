/** The gateway benchmark at smoke size, so it cannot rot: every scenario runs and gets answers. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runGatewayBench, formatTable } from '../../bench/kv/gateway-bench.js';

test('every gateway scenario runs against keyraft and gets 2xx answers', async () => {
  const { results } = await runGatewayBench({ vsEtcd: false, durationSeconds: 1, connections: 8, rounds: 1, rssKeys: 0, history: 0, log: () => {} });
  assert.is(results.length, 5);
  for (const r of results) {
    assert.ok(r.keyraft.requestsPerSecond > 0, `${r.name}: no requests completed`);
    assert.is(r.keyraft.non2xx, 0, `${r.name}: non-2xx answers`);
    assert.is(r.keyraft.errors, 0, `${r.name}: errors`);
  }
  assert.match(formatTable(results), 'put-unique-256B');
});

test.run();
