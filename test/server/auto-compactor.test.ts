import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../src/platform/logger.js';
import { AutoCompactor, parseGoDuration, parseRetention } from '../../src/server/auto-compactor.js';
import { ConfigError, parseConfig } from '../../src/server/config.js';

function fake(mode: 'periodic' | 'revision', retention: number) {
  const state = { now: 0, revision: 1, leader: true, compacted: [] as number[] };
  const compactor = new AutoCompactor(mode, retention, {
    isLeader: () => state.leader,
    currentRevision: () => state.revision,
    compact: async (rev) => { state.compacted.push(rev); },
  }, silentLogger, () => state.now);
  return { state, compactor };
}

test('periodic, 1 h: samples every 6 min; the first compaction at 1 h at the revision of 1 h ago, then hourly', async () => {
  const { state, compactor } = fake('periodic', 3_600_000);
  assert.is(compactor.stepIntervalMs, 360_000);
  // 100 revisions per 6-minute step.
  for (let step = 1; step <= 25; step++) {
    state.now = step * 360_000;
    state.revision = 1 + step * 100;
    await compactor.step();
  }
  // Steps 1..25: the first compaction at step 10 (1 h) at the oldest sample (step 1's rev 101),
  // the next at step 20 at the revision sampled an hour before (step 10's).
  assert.equal(state.compacted, [101, 1001]);
});

test('periodic: a follower does not compact; revision mode: current - retention, once per value', async () => {
  const f = fake('periodic', 60_000);
  f.state.leader = false;
  for (let step = 1; step <= 30; step++) {
    f.state.now = step * 6_000;
    f.state.revision = step;
    await f.compactor.step();
  }
  assert.equal(f.state.compacted, []);
  const r = fake('revision', 1000);
  r.state.revision = 900;
  await r.compactor.step();
  r.state.revision = 5500;
  await r.compactor.step();
  await r.compactor.step();
  r.state.revision = 6000;
  await r.compactor.step();
  assert.equal(r.state.compacted, [4500, 5000]);
});

test('retention and duration parsing as etcd: a bare number is hours (periodic) or revisions; Go durations', () => {
  assert.is(parseRetention('periodic', '1'), 3_600_000);
  assert.is(parseRetention('periodic', '30m'), 1_800_000);
  assert.is(parseRetention('periodic', '1h30m'), 5_400_000);
  assert.is(parseRetention('revision', '1000'), 1000);
  assert.throws(() => parseRetention('revision', '1h'));
  assert.throws(() => parseRetention('periodic', '10x'));
  assert.is(parseGoDuration('1.5s', 'f'), 1500);
  assert.is(parseGoDuration('0', 'f'), 0);
  assert.throws(() => parseGoDuration('', 'f'));
  const parsed = parseConfig(['--auto-compaction-mode', 'revision', '--auto-compaction-retention', '500',
    '--experimental-initial-corrupt-check=false', '--experimental-corrupt-check-time', '30s']);
  assert.ok(parsed.kind === 'run');
  if (parsed.kind !== 'run') return;
  assert.is(parsed.config.autoCompactionMode, 'revision');
  assert.is(parsed.config.autoCompactionRetention, 500);
  assert.is(parsed.config.initialCorruptCheck, false);
  assert.is(parsed.config.corruptCheckTimeMs, 30_000);
  const defaults = parseConfig([]);
  assert.ok(defaults.kind === 'run' && defaults.config.initialCorruptCheck && defaults.config.corruptCheckTimeMs === 300_000 && defaults.config.autoCompactionRetention === 0);
  const bare = parseConfig(['--experimental-initial-corrupt-check']);
  assert.ok(bare.kind === 'run' && bare.config.initialCorruptCheck);
  assert.throws(() => parseConfig(['--auto-compaction-mode', 'hourly']), (e: Error) => e instanceof ConfigError && /unknown auto-compaction-mode/.test(e.message));
});

test.run();
