// The raft benchmark's smoke size, so it cannot rot: every member must apply every entry proposed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runRaftBench } from '../../bench/raft/raft-bench.js';

for (const batch of [1, 64, 1024]) {
  test(`raft bench smoke: batch ${batch} commits and applies every entry on all members`, () => {
    const r = runRaftBench(batch, batch === 1 ? 500 : 20_480);
    assert.ok(r.entries >= (batch === 1 ? 500 : 20_480));
    assert.ok(r.messages > 0);
    assert.ok(r.entriesPerSecond > 0);
  });
}

test.run();
