import { test } from 'uvu';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';

// Smoke size of bench/snapshot/snapshot-bench.ts, so the benchmark cannot rot. Asserts that every
// row is printed and both servers' files have a size, never durations.
const etcd = needEtcd('storage/snapshot-bench-smoke', ['etcd', 'etcdctl']);

etcd.test(test, 'snapshot bench smoke: saves from keyraft and etcd, restores by both tools', () => {
  const bench = join(__dirname, '..', '..', 'bench', 'snapshot', 'snapshot-bench.js');
  const run = spawnSync(process.execPath, [bench, '--smoke'], { encoding: 'utf8', timeout: 240_000 });
  assert.is(run.status, 0, run.stdout + run.stderr);
  const saves = run.stdout.split('\n').filter((l) => /^(keyraft|etcd)\s+\d/.test(l));
  assert.is(saves.length, 2, run.stdout);
  for (const row of saves) assert.ok(Number(row.trim().split(/\s+/)[2]) > 0, row);
  const restores = run.stdout.split('\n').filter((l) => /^(keyraftctl|etcdctl)\s+\d/.test(l));
  assert.is(restores.length, 2, run.stdout);
});

test.run();
