/** The gRPC benchmark at smoke size, so it cannot rot: every scenario runs and gets OK answers. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatTable } from '../../bench/kv/side-by-side.js';
import { grpcScenarios, runGrpcBench } from '../../bench/kv/grpc-bench.js';

test('every gRPC scenario runs against keyraft and gets grpc-status 0', async () => {
  const results = await runGrpcBench({ vsEtcd: false, durationSeconds: 1, connections: 2, streamsPerConnection: 4, rounds: 1, log: () => {} });
  assert.is(results.length, grpcScenarios.length);
  for (const r of results) {
    assert.ok(r.keyraft.requestsPerSecond > 0, `${r.name}: no calls completed`);
    assert.is(r.keyraft.non2xx, 0, `${r.name}: calls answered with an error status`);
    assert.is(r.keyraft.errors, 0, `${r.name}: transport errors`);
  }
  assert.match(formatTable(results), 'txn-cas');
});

test.run();
