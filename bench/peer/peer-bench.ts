/**
 * Peer transport benchmark: a leader transport replicating Raft-shaped append messages (64
 * entries of 256 B each, ~17.4 KB) to 1 and to 4 follower transports over loopback; each
 * follower answers every append with a small response, as MsgAppResp does.
 *
 *   npm run bench:peer                       1 and 4 peers, 3 rounds of 3 s per mode, medians
 *   options: --peers 1,4 --duration S (3) --rounds R (3) --window N (256) --rate ENTRIES_PER_S (200000)
 *            --smoke (tiny sizes, for the test suite)
 *
 * Two modes per peer count:
 *   saturate  the leader keeps `window` appends in flight per follower (Raft's max-inflight-msgs
 *             flow control): the most the transport carries. Latency includes queueing.
 *   rate      the leader sends at the target rate (entries/s, to every follower): one-way p50/p99
 *             latency at the load the cluster must sustain.
 * The followers run in one child process (the leader in this one): the two processes share the
 * machine's 2 cores, as two members of a test cluster would. One-way latency compares the
 * sender's stamp (performance.timeOrigin + now(), i.e. the shared system clock) with the
 * receiver's clock on arrival.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { PeerTransport } from '../../src/peer/peer-transport.js';

const CLUSTER_ID = 0xbe7cn;
const LEADER_ID = 1n;
const ENTRIES_PER_APPEND = 64;
const ENTRY_DATA_BYTES = 256;
/** Per entry, what raftpb.Entry adds around its data (term, index, type, tags): ~14 B. */
const ENTRY_OVERHEAD_BYTES = 14;
const APPEND_HEADER_BYTES = 48;
const APPEND_BYTES = APPEND_HEADER_BYTES + ENTRIES_PER_APPEND * (ENTRY_DATA_BYTES + ENTRY_OVERHEAD_BYTES);
const RESPONSE_BYTES = 32;

const nowEpochMs = () => performance.timeOrigin + performance.now();

export interface BenchOptions {
  peerCounts: number[];
  durationSeconds: number;
  rounds: number;
  window: number;
  rateEntriesPerSecond: number;
  log: (line: string) => void;
}

export interface ModeResult {
  peers: number;
  mode: 'saturate' | 'rate';
  messagesPerSecond: number;
  entriesPerSecond: number;
  megabytesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  leaderCpuPercent: number;
  dropped: number;
}

// ---------------------------------------------------------------- follower process

interface FollowerStats { received: number; latenciesMs: number[] }

async function followerMain(): Promise<void> {
  const transports = new Map<bigint, PeerTransport>();
  const stats: FollowerStats = { received: 0, latenciesMs: [] };
  const response = Buffer.alloc(RESPONSE_BYTES);
  process.on('message', async (msg: any) => {
    if (msg.type === 'start') {
      const ports: Record<string, number> = {};
      for (const idText of msg.ids as string[]) {
        const id = BigInt(idText);
        const t = new PeerTransport({
          clusterId: CLUSTER_ID, memberId: id,
          handler: {
            onMessages: (from, messages) => {
              const arrived = nowEpochMs();
              for (const m of messages) {
                const b = Buffer.from(m.buffer, m.byteOffset, m.byteLength);
                stats.latenciesMs.push(arrived - b.readDoubleLE(0));
                stats.received++;
                // Fresh buffer per response: send() owns it until the next turn.
                const r = Buffer.allocUnsafe(RESPONSE_BYTES);
                response.copy(r);
                b.copy(r, 0, 8, 16);
                t.send(from, r);
              }
            },
          },
        });
        const address = await t.start();
        t.addPeer(LEADER_ID, `127.0.0.1:${msg.leaderPort}`);
        transports.set(id, t);
        ports[idText] = address.port;
      }
      process.send!({ type: 'ready', ports });
    } else if (msg.type === 'reset') {
      stats.received = 0;
      stats.latenciesMs = [];
      process.send!({ type: 'reset-done' });
    } else if (msg.type === 'report') {
      const sorted = stats.latenciesMs.sort((a, b) => a - b);
      const pick = (q: number) => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
      process.send!({ type: 'report', received: stats.received, p50Ms: pick(0.5), p99Ms: pick(0.99) });
    } else if (msg.type === 'stop') {
      for (const t of transports.values()) await t.close();
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------- leader (this process)

class Follower {
  private waiters = new Map<string, { resolve: (msg: any) => void; reject: (err: Error) => void }>();
  constructor(readonly child: ChildProcess) {
    child.on('message', (msg: any) => {
      const w = this.waiters.get(msg.type);
      this.waiters.delete(msg.type);
      w?.resolve(msg);
    });
    child.on('exit', (code) => {
      for (const w of this.waiters.values()) w.reject(new Error(`follower process exited (${code})`));
      this.waiters.clear();
    });
  }
  request<T>(msg: object, replyType: string): Promise<T> {
    return new Promise((resolve, reject) => {
      this.waiters.set(replyType, { resolve, reject });
      this.child.send(msg);
    });
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
}

function makeAppend(seq: number, template: Buffer): Buffer {
  const b = Buffer.allocUnsafe(APPEND_BYTES);
  template.copy(b);
  b.writeDoubleLE(nowEpochMs(), 0);
  b.writeDoubleLE(seq, 8);
  return b;
}

async function runMode(
  leader: PeerTransport, follower: Follower, peerIds: bigint[], mode: 'saturate' | 'rate', opts: BenchOptions,
  inflight: Map<bigint, number>, acked: { count: number }, onAck: { fn: () => void },
): Promise<ModeResult> {
  const template = Buffer.alloc(APPEND_BYTES, 0x61);
  let seq = 0;
  let stopped = false;
  const droppedBefore = (await leader.registry.getSingleMetric('keyraft_peer_dropped_messages_total')!.get()).values.reduce((n, v) => n + v.value, 0);
  const sendTo = (id: bigint, count: number) => {
    for (let i = 0; i < count; i++) {
      leader.send(id, makeAppend(seq++, template));
      inflight.set(id, inflight.get(id)! + 1);
    }
  };
  let timer: NodeJS.Timeout | null = null;
  let startedAt = 0;
  let sentPerPeer = 0;
  if (mode === 'saturate') {
    let scheduled = false;
    const pump = () => {
      scheduled = false;
      if (stopped) return;
      for (const id of peerIds) sendTo(id, opts.window - inflight.get(id)!);
    };
    onAck.fn = () => { if (!scheduled) { scheduled = true; setImmediate(pump); } };
    pump();
  } else {
    const appendsPerSecond = opts.rateEntriesPerSecond / ENTRIES_PER_APPEND;
    onAck.fn = () => {};
    timer = setInterval(() => {
      const due = Math.floor(((performance.now() - startedAt) / 1000) * appendsPerSecond) - sentPerPeer;
      if (due <= 0) return;
      // Raft's flow control still applies: never more than `window` in flight.
      for (const id of peerIds) sendTo(id, Math.min(due, opts.window - inflight.get(id)!));
      sentPerPeer += due;
    }, 1);
  }
  startedAt = performance.now();
  // Warm-up: a quarter of the duration, not counted.
  await new Promise((r) => setTimeout(r, (opts.durationSeconds * 1000) / 4));
  await follower.request({ type: 'reset' }, 'reset-done');
  const ackedAtStart = acked.count;
  const cpuAtStart = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, opts.durationSeconds * 1000));
  const elapsedSeconds = (performance.now() - t0) / 1000;
  const ackedInWindow = acked.count - ackedAtStart;
  const cpu = process.cpuUsage(cpuAtStart);
  const report = await follower.request<{ received: number; p50Ms: number; p99Ms: number }>({ type: 'report' }, 'report');
  stopped = true;
  if (timer) clearInterval(timer);
  // Drain what is in flight before the next mode starts.
  const deadline = Date.now() + 10_000;
  while ([...inflight.values()].some((n) => n > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const droppedAfter = (await leader.registry.getSingleMetric('keyraft_peer_dropped_messages_total')!.get()).values.reduce((n, v) => n + v.value, 0);
  const messagesPerSecond = report.received / elapsedSeconds;
  return {
    peers: peerIds.length,
    mode,
    messagesPerSecond,
    entriesPerSecond: messagesPerSecond * ENTRIES_PER_APPEND,
    megabytesPerSecond: (messagesPerSecond * APPEND_BYTES + (ackedInWindow / elapsedSeconds) * RESPONSE_BYTES) / 1e6,
    p50Ms: report.p50Ms,
    p99Ms: report.p99Ms,
    leaderCpuPercent: ((cpu.user + cpu.system) / 1000 / (elapsedSeconds * 1000)) * 100,
    dropped: droppedAfter - droppedBefore,
  };
}

export async function runPeerBench(opts: BenchOptions): Promise<ModeResult[]> {
  const results: ModeResult[] = [];
  for (const peers of opts.peerCounts) {
    const peerIds = Array.from({ length: peers }, (_, i) => BigInt(i + 2));
    const inflight = new Map(peerIds.map((id) => [id, 0]));
    const acked = { count: 0 };
    const onAck = { fn: () => {} };
    const leader = new PeerTransport({
      clusterId: CLUSTER_ID, memberId: LEADER_ID,
      handler: {
        onMessages: (from, messages) => {
          inflight.set(from, inflight.get(from)! - messages.length);
          acked.count += messages.length;
          onAck.fn();
        },
      },
    });
    const child = fork(__filename, ['--follower'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    try {
      const { port: leaderPort } = await leader.start();
      const follower = new Follower(child);
      const ready = await follower.request<{ ports: Record<string, number> }>({ type: 'start', ids: peerIds.map(String), leaderPort }, 'ready');
      for (const id of peerIds) leader.addPeer(id, `127.0.0.1:${ready.ports[String(id)]}`);
      for (const mode of ['saturate', 'rate'] as const) {
        const rounds: ModeResult[] = [];
        for (let r = 0; r < opts.rounds; r++) rounds.push(await runMode(leader, follower, peerIds, mode, opts, inflight, acked, onAck));
        const m: ModeResult = {
          peers, mode,
          messagesPerSecond: median(rounds.map((x) => x.messagesPerSecond)),
          entriesPerSecond: median(rounds.map((x) => x.entriesPerSecond)),
          megabytesPerSecond: median(rounds.map((x) => x.megabytesPerSecond)),
          p50Ms: median(rounds.map((x) => x.p50Ms)),
          p99Ms: median(rounds.map((x) => x.p99Ms)),
          leaderCpuPercent: median(rounds.map((x) => x.leaderCpuPercent)),
          dropped: rounds.reduce((n, x) => n + x.dropped, 0),
        };
        results.push(m);
        opts.log(formatRow(m));
      }
      await follower.request({ type: 'stop' }, 'never').catch(() => {});
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await leader.close();
    }
  }
  return results;
}

export const tableHeader = 'peers  mode      appends/s  entries/s    MB/s   p50 ms   p99 ms  leader CPU  dropped';

export function formatRow(m: ModeResult): string {
  return `${String(m.peers).padStart(5)}  ${m.mode.padEnd(8)} ${m.messagesPerSecond.toFixed(0).padStart(10)} ${m.entriesPerSecond.toFixed(0).padStart(10)} ${m.megabytesPerSecond.toFixed(1).padStart(7)} ${m.p50Ms.toFixed(2).padStart(8)} ${m.p99Ms.toFixed(2).padStart(8)} ${m.leaderCpuPercent.toFixed(0).padStart(10)}% ${String(m.dropped).padStart(8)}`;
}

function parseArgs(argv: string[]): BenchOptions {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const smoke = argv.includes('--smoke');
  return {
    peerCounts: (get('peers') ?? '1,4').split(',').map(Number),
    durationSeconds: Number(get('duration') ?? (smoke ? 0.3 : 3)),
    rounds: Number(get('rounds') ?? (smoke ? 1 : 3)),
    window: Number(get('window') ?? 256),
    rateEntriesPerSecond: Number(get('rate') ?? 200_000),
    log: (line) => console.log(line),
  };
}

if (require.main === module) {
  if (process.argv.includes('--follower')) {
    void followerMain();
  } else {
    const opts = parseArgs(process.argv.slice(2));
    console.log(`peer transport: appends of ${ENTRIES_PER_APPEND} x ${ENTRY_DATA_BYTES} B entries (${APPEND_BYTES} B), window ${opts.window}, rate mode ${opts.rateEntriesPerSecond} entries/s per follower, ${opts.rounds} x ${opts.durationSeconds} s, medians`);
    console.log(tableHeader);
    runPeerBench(opts).then(() => process.exit(0), (err) => {
      console.error(err);
      process.exit(1);
    });
  }
}
