/**
 * CPU per put of one Member, in process, without the client port: Member.put() called directly
 * (no HTTP/2, no gRPC decode or reply), so what it measures is the write path below the API:
 * propose and its entry encoding, the Ready loop, the WAL hand-off (the WAL writer thread and its
 * fdatasync are real, on a temp dir), apply, the backend batch and the waiters.
 *
 * A run starts a member, warms it up (--warmup puts), then per round makes --puts puts of one key
 * with a --value-bytes value, --inflight at a time, and reports per put: the main thread's CPU
 * (utime + stime of /proc/thread-self/stat, 10 ms ticks: at ~6 µs a put, 100,000 puts are 60 ticks),
 * the whole process's (process.cpuUsage: the WAL writer and LevelDB's threads too) and puts/s.
 * Medians over the rounds.
 *
 * --vs WORKTREE: an A/B of two builds, each in its own child process, alternating (ours first in
 * odd rounds, theirs first in even ones); WORKTREE's dist/src is what its children load (this file
 * need not exist there). --tree WORKTREE: load the member from WORKTREE instead of this build.
 *
 *   node dist/bench/kv/member-put-cpu.js [--puts N (100000)] [--inflight M (100)] [--rounds R (5)]
 *     [--value-bytes B (256)] [--warmup W (5000)] [--vs WORKTREE] [--smoke]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

interface Options {
  puts: number;
  inflight: number;
  rounds: number;
  valueBytes: number;
  warmup: number;
  vs: string | undefined;
  tree: string | undefined;
  json: boolean;
}

export interface RoundResult {
  mainUsPerPut: number;
  processUsPerPut: number;
  putsPerSecond: number;
}

/** The root of this build (the directory holding dist/). */
const ownTree = resolve(__dirname, '..', '..', '..');

function parseOptions(argv: string[]): Options {
  const value = (name: string): string | undefined => {
    const at = argv.indexOf(name);
    return at === -1 ? undefined : argv[at + 1];
  };
  const num = (name: string, fallback: number): number => Number(value(name) ?? fallback);
  const smoke = argv.includes('--smoke');
  return {
    puts: num('--puts', smoke ? 500 : 100_000),
    inflight: num('--inflight', smoke ? 10 : 100),
    rounds: num('--rounds', smoke ? 1 : 5),
    valueBytes: num('--value-bytes', 256),
    warmup: num('--warmup', smoke ? 100 : 5000),
    vs: value('--vs'),
    tree: value('--tree'),
    json: argv.includes('--json'),
  };
}

/** This thread's CPU time in µs, from /proc (Node 20 has no per-thread cpuUsage). */
function threadCpuUs(): number {
  const stat = readFileSync('/proc/thread-self/stat', 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of proc(5) (utime, stime) are 11 and 12 counted from field 3 (state).
  return (Number(fields[11]) + Number(fields[12])) * (1e6 / clockTicksPerSecond);
}

const clockTicksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

interface PutMember {
  put(request: { key: Buffer; value: Buffer }): Promise<unknown>;
  hasLeader(): boolean;
  close(): Promise<void>;
}

/** `count` puts, `inflight` at a time (each loop starts its next put when its last one is answered). */
async function putMany(member: PutMember, count: number, inflight: number, key: Buffer, value: Buffer): Promise<void> {
  let started = 0;
  const loop = async (): Promise<void> => {
    while (started < count) {
      started++;
      await member.put({ key, value });
    }
  };
  const loops: Promise<void>[] = [];
  for (let i = 0; i < Math.min(inflight, count); i++) loops.push(loop());
  await Promise.all(loops);
}

/** Starts a member from `tree`'s build, warms it up, measures `rounds` rounds, closes it. */
export async function runMemberPutCpu(options: Pick<Options, 'puts' | 'inflight' | 'rounds' | 'valueBytes' | 'warmup'> & { tree?: string }): Promise<RoundResult[]> {
  const tree = options.tree ?? ownTree;
  const load = (path: string): any => require(join(tree, 'dist/src', path));
  const { parseConfig } = load('server/config.js');
  const { Member } = load('server/member.js');
  const { silentLogger } = load('platform/logger.js');
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-member-put-cpu-'));
  const parsed = parseConfig(['--data-dir', dir]);
  if (parsed.kind !== 'run') throw new Error('member-put-cpu: config did not parse');
  const member = (await Member.start(parsed.config, { logger: silentLogger })) as PutMember;
  try {
    for (let i = 0; i < 2000 && !member.hasLeader(); i++) await new Promise((r) => setTimeout(r, 5));
    const key = Buffer.from('bench/one');
    const value = Buffer.alloc(options.valueBytes, 'v');
    await putMany(member, options.warmup, options.inflight, key, value);
    const results: RoundResult[] = [];
    for (let r = 0; r < options.rounds; r++) {
      const main0 = threadCpuUs();
      const process0 = process.cpuUsage();
      const wall0 = performance.now();
      await putMany(member, options.puts, options.inflight, key, value);
      const wallMs = performance.now() - wall0;
      const used = process.cpuUsage(process0);
      results.push({
        mainUsPerPut: (threadCpuUs() - main0) / options.puts,
        processUsPerPut: (used.user + used.system) / options.puts,
        putsPerSecond: options.puts / (wallMs / 1000),
      });
    }
    return results;
  } finally {
    await member.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function summary(name: string, results: RoundResult[]): string {
  const list = (f: (r: RoundResult) => number, digits: number) => results.map((r) => f(r).toFixed(digits)).join(' ');
  return `${name}: main ${median(results.map((r) => r.mainUsPerPut)).toFixed(1)} µs/put (${list((r) => r.mainUsPerPut, 1)}), `
    + `process ${median(results.map((r) => r.processUsPerPut)).toFixed(1)} µs/put (${list((r) => r.processUsPerPut, 1)}), `
    + `${Math.round(median(results.map((r) => r.putsPerSecond)))} puts/s (${list((r) => r.putsPerSecond, 0)})`;
}

/** One round in a child process loading `tree`'s build. */
function childRound(tree: string, options: Options): RoundResult {
  const args = [__filename, '--tree', tree, '--rounds', '1', '--json',
    '--puts', String(options.puts), '--inflight', String(options.inflight), '--value-bytes', String(options.valueBytes), '--warmup', String(options.warmup)];
  const out = execFileSync(process.execPath, args, { encoding: 'utf8' });
  return (JSON.parse(out) as RoundResult[])[0]!;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv);
  if (options.vs === undefined) {
    const results = await runMemberPutCpu(options);
    if (options.json) process.stdout.write(JSON.stringify(results));
    else console.log(summary(`${options.tree ?? ownTree} (${options.puts} puts, ${options.inflight} in flight, ${options.valueBytes} B values)`, results));
    return;
  }
  const theirs = resolve(options.vs);
  const ours: RoundResult[] = [];
  const base: RoundResult[] = [];
  for (let r = 0; r < options.rounds; r++) {
    const order = r % 2 === 0 ? [ownTree, theirs] : [theirs, ownTree];
    for (const tree of order) {
      const result = childRound(tree, options);
      (tree === ownTree ? ours : base).push(result);
      console.log(`round ${r + 1} ${tree}: main ${result.mainUsPerPut.toFixed(1)} µs/put, process ${result.processUsPerPut.toFixed(1)} µs/put, ${Math.round(result.putsPerSecond)} puts/s`);
    }
  }
  console.log(summary(`this build (${ownTree})`, ours));
  console.log(summary(`vs (${theirs})`, base));
  console.log(`main-thread CPU per put, this / vs: ${(median(ours.map((r) => r.mainUsPerPut)) / median(base.map((r) => r.mainUsPerPut))).toFixed(3)}`);
}

if (require.main === module) void main();
