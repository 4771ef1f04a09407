// The cluster simulator as part of npm test: a few hundred seeds must show no violation, a seed
// must replay exactly, and each injected bug must be caught within 1,000 seeds (a silent
// simulator cannot pass).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RaftBugs } from './mutant-raft.js';
import { runSeed } from './cluster-sim.js';

const seedsInTest = Number(process.env.KEYRAFT_SIM_SEEDS ?? 300);

test(`${seedsInTest} seeds with faults (3, 5 and 7 members): no violations`, () => {
  let committed = 0;
  let leaders = 0;
  let reads = 0;
  let snapshots = 0;
  let confChanges = 0;
  for (let seed = 1; seed <= seedsInTest; seed++) {
    const result = runSeed({ seed, members: [3, 5, 7][seed % 3]! });
    assert.is(result.violation, null, `seed ${seed}: ${result.violation} (replay: npm run sim -- --seeds 1 --start ${seed} --members ${[3, 5, 7][seed % 3]})`);
    committed += result.committed;
    leaders += result.stats.leadersElected;
    reads += result.stats.readsChecked;
    snapshots += result.stats.snapshotsInstalled;
    confChanges += result.stats.confChanges;
  }
  // The runs must actually exercise what the invariants guard.
  assert.ok(committed > seedsInTest * 10, `entries committed: ${committed}`);
  assert.ok(leaders > seedsInTest * 2, `leaders elected: ${leaders}`);
  assert.ok(reads > seedsInTest / 2, `reads checked: ${reads}`);
  assert.ok(snapshots > seedsInTest / 5, `snapshots installed: ${snapshots}`);
  assert.ok(confChanges > seedsInTest / 5, `membership changes: ${confChanges}`);
});

test('a seed replays exactly (same trace, same outcome)', () => {
  const a = runSeed({ seed: 4242, members: 5, traceLimit: 100_000 });
  const b = runSeed({ seed: 4242, members: 5, traceLimit: 100_000 });
  assert.ok(a.trace.length > 100);
  assert.equal(a.trace, b.trace);
  assert.is(a.committed, b.committed);
  const other = runSeed({ seed: 4243, members: 5, traceLimit: 100_000 });
  assert.not.equal(other.trace, a.trace);
});

function firstCaught(bugs: RaftBugs): { seed: number; violation: string } | null {
  for (let seed = 1; seed <= 1000; seed++) {
    const result = runSeed({ seed, members: [3, 5, 7][seed % 3]!, bugs });
    if (result.violation !== null) return { seed, violation: result.violation };
  }
  return null;
}

test('mutation: committing a previous-term entry by counting replicas is caught within 1,000 seeds', () => {
  const caught = firstCaught({ commitPreviousTermByCount: true });
  assert.ok(caught !== null, 'the simulator missed the Figure 8 bug');
  assert.match(caught.violation, /leader completeness|state machine safety|committed entry lost|linearizability/);
});

test('mutation: granting two votes in one term is caught within 1,000 seeds', () => {
  const caught = firstCaught({ grantTwoVotesPerTerm: true });
  assert.ok(caught !== null, 'the simulator missed the double-vote bug');
  assert.match(caught.violation, /election safety|leader completeness|state machine safety|committed entry lost|log matching/);
});

test('mutation: answering ReadIndex without a heartbeat round (a deposed leader\'s stale read) is caught within 1,000 seeds', () => {
  const caught = firstCaught({ readIndexWithoutQuorum: true });
  assert.ok(caught !== null, 'the simulator missed the stale-read bug');
  assert.match(caught.violation, /linearizability/);
});

test.run();
