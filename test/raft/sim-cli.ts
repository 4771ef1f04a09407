/**
 * npm run sim -- --seeds N [--start S] [--members M] [--steps K] [--bug commit-previous-term|double-vote|stale-read] [--trace L]
 *
 * Runs seeds S..S+N-1 (M founding voters; default: 3, 5 and 7 in turn) and ends with
 *   "N seeds, V violations, X entries committed".
 * A violation prints its seed, the message and, replaying the seed with tracing on, its last events.
 */
import { runSeed } from './cluster-sim.js';
import type { RaftBugs } from './mutant-raft.js';

function parseArgs(argv: string[]): Map<string, string> {
  const args = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    args.set(a.slice(2), argv[i + 1] ?? '');
    i++;
  }
  return args;
}

export function bugsFor(name: string | undefined): RaftBugs | undefined {
  if (name === undefined || name === '') return undefined;
  if (name === 'commit-previous-term') return { commitPreviousTermByCount: true };
  if (name === 'double-vote') return { grantTwoVotesPerTerm: true };
  if (name === 'stale-read') return { readIndexWithoutQuorum: true };
  throw new Error(`unknown --bug ${name} (commit-previous-term, double-vote, stale-read)`);
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const seeds = Number(args.get('seeds') ?? 100);
  const start = Number(args.get('start') ?? 1);
  const membersArg = args.get('members');
  const steps = args.has('steps') ? Number(args.get('steps')) : undefined;
  const traceLimit = Number(args.get('trace') ?? 40);
  const bugs = bugsFor(args.get('bug'));
  const startedMs = performance.now();
  let violations = 0;
  let committed = 0;
  for (let seed = start; seed < start + seeds; seed++) {
    const members = membersArg !== undefined ? Number(membersArg) : [3, 5, 7][seed % 3]!;
    const result = runSeed({ seed, members, steps, bugs });
    committed += result.committed;
    if (result.violation !== null) {
      violations++;
      console.log(`seed ${seed} (members ${members}): VIOLATION ${result.violation}`);
      if (violations <= 3) {
        const replay = runSeed({ seed, members, steps, bugs, traceLimit });
        console.log(`  replay of seed ${seed}: ${replay.violation ?? 'no violation (replay diverged: a determinism bug)'}`);
        for (const line of replay.trace) console.log(`    ${line}`);
      }
    }
  }
  const seconds = (performance.now() - startedMs) / 1000;
  console.error(`(${seconds.toFixed(1)} s, ${Math.round(seeds / seconds * 60)} seeds/minute)`);
  console.log(`${seeds} seeds, ${violations} violations, ${committed} entries committed`);
  process.exitCode = violations === 0 ? 0 : 1;
}

main();
