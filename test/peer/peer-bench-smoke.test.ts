/** The peer benchmark at smoke size, so it cannot rot: both modes run for 1 and 4 peers and carry data. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatRow, runPeerBench } from '../../bench/peer/peer-bench.js';

test('peer bench runs every mode for 1 and 4 peers, delivers appends, drops none', async () => {
  const results = await runPeerBench({ peerCounts: [1, 4], durationSeconds: 0.3, rounds: 1, window: 64, rateEntriesPerSecond: 64_000, log: () => {} });
  assert.equal(results.map((r) => `${r.peers}/${r.mode}`), ['1/saturate', '1/rate', '4/saturate', '4/rate']);
  for (const r of results) {
    assert.ok(r.messagesPerSecond > 0, `${r.peers}/${r.mode}: no appends delivered`);
    assert.ok(Number.isFinite(r.p99Ms) && r.p99Ms >= r.p50Ms, `${r.peers}/${r.mode}: latency ${r.p50Ms} / ${r.p99Ms}`);
    assert.is(r.dropped, 0, `${r.peers}/${r.mode}: dropped messages`);
    assert.match(formatRow(r), r.mode);
  }
});

test.run();
