/**
 * One real etcd 3.4 (found by ../etcd-binaries.ts) for the keyraftctl suite, on OS-chosen free ports
 * with a temporary data dir, and helpers that run keyraftctl and the real etcdctl against it.
 * The process is killed by PID in `stop()`, which the suite calls in its `after` hook.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { EtcdClient } from '../../src/cli/ctl-client.js';
import { StdinReader } from '../../src/cli/ctl-stdin.js';
import { runKeyraftctl } from '../../src/cli/keyraftctl.js';

/** Where the fixture's binaries are (from needEtcd() in ../etcd-binaries.ts). */
export interface EtcdPaths {
  etcd: string;
  etcdctl: string;
}
export const KEYRAFTCTL_BIN = join(__dirname, '..', '..', 'src', 'cli', 'keyraftctl.js');

export { freePort } from '../integration/harness.js';
import { freePort } from '../integration/harness.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a program to completion, feeding `input` on stdin. */
export function runProgram(file: string, args: readonly string[], input: string | Buffer, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { ...process.env, ETCDCTL_API: '3', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.once('error', reject);
    child.once('close', (code) => resolve({ stdout, stderr, code: code ?? -1 }));
    // EPIPE when the program exits (or never started) before reading its input: 'close' or
    // 'error' above reports the outcome.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/** Runs keyraftctl in this process (same code path as the binary, minus node start-up). */
export async function runInProcess(args: readonly string[], input: string | Buffer, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const out = {
    stdout: (c: string | Buffer) => { stdout += c.toString(); },
    stderr: (c: string | Buffer) => { stderr += c.toString(); },
  };
  const code = await runKeyraftctl(args, out, new StdinReader(Readable.from([Buffer.from(input)])), env);
  return { stdout, stderr, code };
}

export class EtcdFixture {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dataDir: string,
    readonly endpoint: string,
    private readonly log: () => string,
    readonly paths: EtcdPaths,
  ) {}

  static async start(paths: EtcdPaths): Promise<EtcdFixture> {
    const dataDir = await mkdtemp(join(tmpdir(), 'keyraftctl-etcd-'));
    const clientPort = await freePort();
    const peerPort = await freePort();
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const child = spawn(paths.etcd, [
      '--name', 'ctltest', '--data-dir', dataDir,
      '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `ctltest=${peer}`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    // A failed spawn leaves no pid and emits 'error' (never 'exit'): waitReady reports it.
    child.once('error', (err) => { log += `spawn ${paths.etcd} failed: ${err.message}\n`; });
    child.stdout!.on('data', (d) => { log += d; });
    child.stderr!.on('data', (d) => { log += d; });
    // Safety net if the suite dies before its after hook: never leave etcd running.
    const killOnExit = () => { if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL'); };
    process.once('exit', killOnExit);
    child.once('exit', () => process.off('exit', killOnExit));
    const fixture = new EtcdFixture(child, dataDir, `127.0.0.1:${clientPort}`, () => log, paths);
    try {
      await fixture.waitReady();
    } catch (err) {
      await fixture.stop();
      throw err;
    }
    return fixture;
  }

  /** Until a linearizable read succeeds (the member has a leader and serves), bounded. */
  private async waitReady(): Promise<void> {
    for (let attempt = 0; attempt < 60; attempt++) {
      if (this.child.pid === undefined) throw new Error(`etcd (${this.paths.etcd}) did not start:\n${this.log()}`);
      if (this.child.exitCode !== null) throw new Error(`etcd exited early:\n${this.log()}`);
      // A fresh client per attempt: a refused connection puts a channel into reconnect backoff.
      const client = new EtcdClient([this.endpoint]);
      try {
        await client.call('KV', 'Range', { key: Buffer.from('ready') }, { deadlineMs: Date.now() + 500 });
        return;
      } catch {
        // not serving yet: try again
      } finally {
        client.close();
      }
    }
    throw new Error(`etcd did not become ready:\n${this.log()}`);
  }

  etcdctl(args: readonly string[], input: string | Buffer = ''): Promise<RunResult> {
    return runProgram(this.paths.etcdctl, [`--endpoints=${this.endpoint}`, ...args], input);
  }

  keyraftctl(args: readonly string[], input: string | Buffer = ''): Promise<RunResult> {
    return runInProcess([`--endpoints=${this.endpoint}`, ...args], input);
  }

  keyraftctlBinary(args: readonly string[], input = '', env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    return runProgram(process.execPath, [KEYRAFTCTL_BIN, ...args], input, env);
  }

  async stop(): Promise<void> {
    if (this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      process.kill(this.child.pid!, 'SIGKILL');
      await exited;
    }
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
