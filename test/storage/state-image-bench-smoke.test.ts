import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

// Smoke size of bench/storage/state-image-bench.ts, so the benchmark cannot rot. Asserts that
// both variants write an image of the same size, never durations.
test('state image bench smoke: inline and worker variants both write the whole image', () => {
  const bench = join(__dirname, '..', '..', 'bench', 'storage', 'state-image-bench.js');
  const run = spawnSync(process.execPath, [bench, '--smoke', '--keys', '5000'], { encoding: 'utf8', timeout: 120_000 });
  assert.is(run.status, 0, run.stderr);
  const rows = run.stdout.split('\n').filter((l) => /^(inline|worker|install)\s/.test(l));
  assert.is(rows.length, 3, run.stdout);
  const mb = rows.map((r) => r.trim().split(/\s+/).at(-1));
  assert.is(mb[0], mb[1]);
  assert.is(mb[0], mb[2]);
});

test.run();
