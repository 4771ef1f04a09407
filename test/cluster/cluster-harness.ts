/**
 * A real keyraft cluster for tests: N member processes (the built CLI) on free ports, each
 * advertising a peer URL that is the test's own front proxy (peer-links.ts), so the test can
 * partition members; kill -9, SIGSTOP/SIGCONT and restart by index; the leader as the members
 * report it. Every process is tracked by the integration harness and killed by PID in killAll().
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { computeMemberId } from '../../src/server/cluster-identity.js';
import { KvClient } from '../api/grpc-clients.js';
import { freePort, keyraftBin, postJson, tempDir, track, type ServerProcess } from '../integration/harness.js';
import { PeerFront, PeerLinks } from './peer-links.js';

export interface ClusterOptions {
  members: number;
  /** Fast timeouts keep fault runs short: 50 ms heartbeats, 500 ms elections by default. */
  heartbeatMs?: number;
  electionMs?: number;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /**
   * Members reach each other directly, without the test's proxies (no partitions then): for
   * peer TLS, which the handshake-reading front cannot see into. `https` with it.
   */
  direct?: { scheme: 'http' | 'https' };
  /** Flags for one member only (after `args`). */
  memberArgs?: (i: number) => string[];
  /** Members expected to agree on a leader before start() returns (default: all). */
  quorumOf?: number[];
}

export interface MemberSlot {
  name: string;
  id: bigint;
  clientPort: number;
  peerPort: number;
  /** The peer URL every member knows this one by (a front proxy's, or the real port when direct). */
  peerUrl: string;
  dataDir: string;
  process: ServerProcess | null;
  paused: boolean;
}

export interface MemberStatus {
  memberId: bigint;
  leader: bigint;
  raftTerm: number;
  raftIndex: number;
  appliedIndex: number;
  revision: number;
}

export class TestCluster {
  private clients = new Map<number, grpc.Client>();

  private constructor(
    readonly slots: MemberSlot[],
    readonly links: PeerLinks,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
    private initialCluster: string,
    private readonly token: string,
    private readonly memberArgs: (i: number) => string[] = () => [],
  ) {}

  static async start(options: ClusterOptions): Promise<TestCluster> {
    const token = `test-${process.pid}-${Date.now()}`;
    const dir = tempDir('cluster');
    const slots: MemberSlot[] = [];
    const fronts: PeerFront[] = [];
    for (let i = 0; i < options.members; i++) {
      const peerPort = await freePort();
      let url: string;
      if (options.direct) {
        url = `${options.direct.scheme}://127.0.0.1:${peerPort}`;
      } else {
        const front = await PeerFront.start(peerPort);
        fronts.push(front);
        url = `http://127.0.0.1:${front.port}`;
      }
      slots.push({
        name: `m${i}`, id: computeMemberId([url], token), clientPort: await freePort(), peerPort, peerUrl: url,
        dataDir: join(dir, `m${i}`), process: null, paused: false,
      });
    }
    const initialCluster = slots.map((s) => `${s.name}=${s.peerUrl}`).join(',');
    const args = [
      '--initial-cluster-token', token,
      '--heartbeat-interval', String(options.heartbeatMs ?? 50),
      '--election-timeout', String(options.electionMs ?? 500),
      ...(options.args ?? []),
    ];
    const cluster = new TestCluster(slots, new PeerLinks(fronts, slots.map((s) => s.id)), args, options.env ?? {}, initialCluster, token, options.memberArgs);
    for (let i = 0; i < slots.length; i++) cluster.spawn(i);
    await cluster.waitLeader(20_000, options.quorumOf);
    return cluster;
  }

  /**
   * Prepares a slot for a member to add (etcdctl member add, then spawnJoining): its ports, its
   * front proxy and the peer URL to add. Returns its index.
   */
  async newSlot(): Promise<number> {
    const i = this.slots.length;
    const peerPort = await freePort();
    const front = await PeerFront.start(peerPort);
    const url = `http://127.0.0.1:${front.port}`;
    this.links.fronts.push(front);
    this.slots.push({
      name: `m${i}`, id: computeMemberId([url], this.token), clientPort: await freePort(), peerPort, peerUrl: url,
      dataDir: join(dirname(this.slots[0]!.dataDir), `m${i}`), process: null, paused: false,
    });
    this.links.ids.push(this.slots[i]!.id);
    return i;
  }

  peerUrl(i: number): string {
    return this.slots[i]!.peerUrl;
  }

  /** Starts an added member with --initial-cluster-state existing and every current member listed. */
  spawnJoining(i: number): void {
    this.initialCluster = this.slots.map((s, k) => `${s.name}=${this.peerUrl(k)}`).join(',');
    this.spawn(i, ['--initial-cluster-state', 'existing']);
  }

  /** Starts member i (again), with the same flags; its data dir is kept. */
  spawn(i: number, extraArgs: string[] = []): void {
    const s = this.slots[i]!;
    const scheme = s.peerUrl.startsWith('https:') ? 'https' : 'http';
    const child = spawn(process.execPath, [
      keyraftBin,
      '--name', s.name,
      '--data-dir', s.dataDir,
      '--listen-client-urls', `http://127.0.0.1:${s.clientPort}`,
      '--advertise-client-urls', `http://127.0.0.1:${s.clientPort}`,
      '--listen-peer-urls', `${scheme}://127.0.0.1:${s.peerPort}`,
      '--initial-advertise-peer-urls', s.peerUrl,
      '--initial-cluster', this.initialCluster,
      ...this.args,
      ...this.memberArgs(i),
      ...extraArgs,
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KEYRAFT_LOG_LEVEL: 'warn', ...this.env } });
    s.process = track(child, s.clientPort, s.peerPort, s.dataDir);
    s.paused = false;
  }

  async kill9(i: number): Promise<void> {
    const s = this.slots[i]!;
    this.dropClient(i);
    await s.process?.kill9();
    s.process = null;
  }

  pause(i: number): void {
    const s = this.slots[i]!;
    s.process!.child.kill('SIGSTOP');
    s.paused = true;
  }

  resume(i: number): void {
    const s = this.slots[i]!;
    s.process!.child.kill('SIGCONT');
    s.paused = false;
  }

  isUp(i: number): boolean {
    const s = this.slots[i]!;
    return s.process !== null && !s.paused;
  }

  /** Maintenance.Status of member i over the JSON gateway, or null when it does not answer. */
  async status(i: number): Promise<MemberStatus | null> {
    if (!this.isUp(i)) return null;
    try {
      const res = await postJson(this.slots[i]!.clientPort, '/v3/maintenance/status', {});
      if (res.status !== 200) return null;
      const j = res.json;
      return {
        memberId: BigInt(j.header.member_id), leader: BigInt(j.leader ?? 0), raftTerm: Number(j.raftTerm ?? 0),
        raftIndex: Number(j.raftIndex ?? 0), appliedIndex: Number(j.raftAppliedIndex ?? 0), revision: Number(j.header.revision ?? 0),
      };
    } catch {
      return null;
    }
  }

  /** Waits until the members that are up agree on one leader that is up; returns its index. */
  async waitLeader(timeoutMs = 20_000, among?: number[]): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const statuses = await Promise.all(this.slots.map((_, i) => (among === undefined || among.includes(i) ? this.status(i) : null)));
      const up = statuses.filter((s): s is MemberStatus => s !== null);
      const leader = up[0]?.leader ?? 0n;
      const index = this.slots.findIndex((s) => s.id === leader);
      const voters = this.slots.filter((s) => s.process !== null || s.paused).length;
      if (leader !== 0n && index >= 0 && this.isUp(index) && up.every((s) => s.leader === leader) && up.length > voters / 2) return index;
      if (Date.now() > deadline) {
        throw new Error(`no agreed leader within ${timeoutMs} ms: ${JSON.stringify(statuses, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v))}\n`
          + this.slots.map((s) => `--- ${s.name}\n${s.process?.output().slice(-2000) ?? '(down)'}`).join('\n'));
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits until every member that is up has applied the same index (after the load stopped). */
  async waitConverged(timeoutMs = 20_000): Promise<MemberStatus[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const statuses = await Promise.all(this.slots.map((_, i) => this.status(i)));
      const up = statuses.filter((s): s is MemberStatus => s !== null);
      if (up.length === this.slots.filter((_, i) => this.isUp(i)).length
        && up.every((s) => s.appliedIndex === up[0]!.appliedIndex && s.revision === up[0]!.revision)) return up;
      if (Date.now() > deadline) {
        throw new Error(`members did not converge: ${JSON.stringify(statuses, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`
          + this.slots.map((s, i) => (statuses[i] === null
            ? `(no status) ${this.describe(i)}`
            : '')).join('\n'));
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Member i for a failure message: name, exit code or signal, and the tail of its output. */
  describe(i: number): string {
    const s = this.slots[i]!;
    const child = s.process?.child;
    return `--- ${s.name} (exit ${child?.exitCode ?? 'n/a'} signal ${child?.signalCode ?? 'n/a'})\n${s.process?.output().slice(-4000) ?? '(down)'}`;
  }

  /** A gRPC KV client bound to member i (one connection, reused). */
  kv(i: number): grpc.Client {
    let c = this.clients.get(i);
    if (!c) {
      c = new KvClient(`127.0.0.1:${this.slots[i]!.clientPort}`, grpc.credentials.createInsecure(), {
        'grpc.initial_reconnect_backoff_ms': 50, 'grpc.max_reconnect_backoff_ms': 200,
      });
      this.clients.set(i, c);
    }
    return c;
  }

  private dropClient(i: number): void {
    this.clients.get(i)?.close();
    this.clients.delete(i);
  }

  async close(): Promise<void> {
    for (const i of [...this.clients.keys()]) this.dropClient(i);
    for (let i = 0; i < this.slots.length; i++) {
      if (this.slots[i]!.paused) this.resume(i);
      await this.kill9(i);
    }
    await this.links.close();
  }
}
