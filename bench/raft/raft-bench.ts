/**
 * The Raft core's own throughput: a 3-member cluster in one process, an instant network (messages
 * handed straight to step()) and no storage (a save that keeps nothing and returns at once), so
 * what is measured is the core and its Ready loop (src/server/raft-node.ts, the server's own):
 * proposing, building Readies, appending, acknowledging, committing and handing out committed
 * entries on every member.
 *
 *   npm run bench:raft                     batches of 1, 64 and 1024 entries, 5 runs each, medians
 *   npm run bench:raft -- --entries N      entries per run (default 1,000,000; batch 1: a tenth)
 *   npm run bench:raft -- --smoke          a small run (what npm test does)
 *
 * Entries/s counts entries applied on all three members; a batch is one proposeBatch() call, and
 * the loop keeps up to `pipeline` batches in flight so the leader's pipelining is exercised.
 * The target (issue 3) is >= 1M entries/s with batching, so the core never bounds the server.
 */
import { Raft } from '../../src/raft/raft.js';
import { Role, type Message } from '../../src/raft/raft-types.js';
import { SeededRandom } from '../../src/raft/seeded-random.js';
import { RaftNode, type RaftStorage } from '../../src/server/raft-node.js';

export interface BenchResult {
  readonly batch: number;
  readonly entries: number;
  readonly seconds: number;
  readonly entriesPerSecond: number;
  readonly messages: number;
}

const payload = new Uint8Array(100).fill(7);

/** No storage: nothing is kept, the save completes synchronously. */
const noStorage: RaftStorage = { save: () => null };

export function runRaftBench(batch: number, entries: number, pipeline = 4): BenchResult {
  const ids = [1n, 2n, 3n];
  const nodes = ids.map((id) => Raft.bootstrap({ id, electionTicks: 10, heartbeatTicks: 1, random: new SeededRandom(Number(id)) }, ids));
  const byId = new Map(ids.map((id, i) => [id, nodes[i]!]));
  const applied = new Map(ids.map((id) => [id, 0]));
  let messages = 0;
  const inbox: Message[] = [];
  const transport = { send: (out: readonly Message[]): void => { for (const m of out) inbox.push(m); } };
  const drivers = nodes.map((raft) => new RaftNode(raft, noStorage, transport, {
    onSoftState: () => {},
    installSnapshot: () => null,
    applyEntries: (entries) => { applied.set(raft.id, applied.get(raft.id)! + entries.length); },
    onReadStates: () => {},
  }, (err) => { throw err; }));

  const pump = (): void => {
    for (;;) {
      let progressed = false;
      for (const driver of drivers) {
        if (!driver.raft.hasReady()) continue;
        progressed = true;
        driver.process();
      }
      if (inbox.length > 0) {
        progressed = true;
        messages += inbox.length;
        const batchOfMessages = inbox.splice(0);
        for (const m of batchOfMessages) byId.get(m.to)!.step(m);
      }
      if (!progressed) return;
    }
  };

  pump();
  nodes[0]!.campaign();
  pump();
  const leader = nodes[0]!;
  if (leader.role !== Role.Leader) throw new Error('bench: member 1 did not become leader');
  const data: Uint8Array[] = new Array<Uint8Array>(batch).fill(payload);
  for (const id of ids) applied.set(id, 0);
  const baseline = leader.log.committed;

  const started = process.hrtime.bigint();
  let proposed = 0;
  let lastCompact = baseline;
  while (proposed < entries) {
    for (let p = 0; p < pipeline && proposed < entries; p++) {
      if (batch === 1) leader.propose(payload);
      else leader.proposeBatch(data);
      proposed += batch;
    }
    pump();
    // Keep memory flat: compact every member's log behind what it applied (no snapshot data).
    if (leader.log.committed - lastCompact > 200_000) {
      for (const raft of nodes) raft.compact(raft.status().applied, payload);
      lastCompact = leader.log.committed;
    }
  }
  pump();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  for (const id of ids) {
    if (applied.get(id)! < proposed) throw new Error(`bench: member ${id} applied ${applied.get(id)} of ${proposed}`);
  }
  return { batch, entries: proposed, seconds, entriesPerSecond: proposed / seconds, messages };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

function main(): void {
  const argv = process.argv.slice(2);
  const smoke = argv.includes('--smoke');
  const entriesArg = argv.indexOf('--entries');
  const entries = entriesArg >= 0 ? Number(argv[entriesArg + 1]) : smoke ? 20_000 : 1_000_000;
  const runs = smoke ? 1 : 5;
  const rows: { batch: number; median: number; runs: number[]; messagesPerEntry: number }[] = [];
  for (const batch of [1, 64, 1024]) {
    const n = batch === 1 ? Math.max(1000, Math.floor(entries / 10)) : entries;
    runRaftBench(batch, Math.min(n, 50_000)); // warm-up
    const results: BenchResult[] = [];
    for (let r = 0; r < runs; r++) results.push(runRaftBench(batch, n));
    rows.push({
      batch,
      median: median(results.map((x) => x.entriesPerSecond)),
      runs: results.map((x) => Math.round(x.entriesPerSecond)),
      messagesPerEntry: results[0]!.messages / results[0]!.entries,
    });
  }
  const base = rows[0]!.median;
  console.log('raft core, 3 members, instant network, no storage, 100-byte entries');
  console.log('batch   entries/s (median)   vs batch 1   messages/entry   runs');
  for (const row of rows) {
    console.log(`${String(row.batch).padStart(5)}   ${Math.round(row.median).toLocaleString('en-US').padStart(18)}   ${(row.median / base).toFixed(1).padStart(9)}x   ${row.messagesPerEntry.toFixed(3).padStart(14)}   ${row.runs.join(' ')}`);
  }
}

if (require.main === module) main();
