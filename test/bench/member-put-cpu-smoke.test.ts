/** The in-process member put benchmark at smoke size, so it cannot rot: every round makes its puts and measures them. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runMemberPutCpu } from '../../bench/kv/member-put-cpu.js';

test('member-put-cpu runs its rounds against a real member', async () => {
  const results = await runMemberPutCpu({ puts: 300, inflight: 10, rounds: 2, valueBytes: 64, warmup: 50 });
  assert.is(results.length, 2);
  for (const r of results) {
    assert.ok(r.putsPerSecond > 0, 'no puts completed');
    assert.ok(r.processUsPerPut > 0, 'no CPU measured');
    assert.ok(r.mainUsPerPut >= 0);
  }
});

test.run();
