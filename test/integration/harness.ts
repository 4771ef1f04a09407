/**
 * Spawns real processes for integration tests: keyraft members (the built CLI) and, for
 * side-by-side checks, etcd 3.4 (found by ../etcd-binaries.ts, as etcdctl is). Every process is tracked and killed by PID; call
 * `killAll()` in an `after` hook. Ports: freePort().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binaryOrThrow } from '../etcd-binaries.js';
import { Etcd3 } from 'etcd3';

// The compiled tree this file runs from (dist/ normally; KEYRAFT_DIST in test/run.mjs may name another).
const distRoot = join(__dirname, '..', '..');
export const keyraftBin = join(distRoot, 'src', 'cli', 'keyraft.js');
export const keyraftctlBin = join(distRoot, 'src', 'cli', 'keyraftctl.js');

const started = new Set<ChildProcess>();
const tempDirs: string[] = [];

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `keyraft-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}

/**
 * A port free on 127.0.0.1 for a process about to be spawned. Not one the OS would hand out
 * (listen on 0): those come from the ephemeral range that outgoing connections take their source
 * ports from, so between this call and the child's listen a client socket of the test could take
 * it (seen: a member failing with EADDRINUSE after a test's 32 keep-alive clients). So a random
 * port below that range, checked free by listening on it, and never handed out twice by this process.
 */
export async function freePort(): Promise<number> {
  const [ephemeralLow] = ephemeralPortRange();
  const low = 10_000;
  const high = Math.max(low + 1000, ephemeralLow);
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port found in [${low}, ${high})`);
}

const handedOut = new Set<number>();

function ephemeralPortRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // not Linux: the IANA dynamic range
  }
  return [49152, 65535];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export interface ServerProcess {
  child: ChildProcess;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  /** stderr and stdout of the process so far, and a spawn error if there was one, for failure messages. */
  output(): string;
  /** The spawn failed (e.g. ENOENT): the process never ran. */
  spawnError(): Error | undefined;
  /** SIGKILL, then wait for the exit. */
  kill9(): Promise<void>;
  /** SIGTERM, then wait for the exit; returns the exit code. */
  stop(): Promise<number | null>;
}

export function track(child: ChildProcess, clientPort: number, peerPort: number, dataDir: string): ServerProcess {
  started.add(child);
  let output = '';
  let spawnError: Error | undefined;
  child.stdout?.on('data', (d) => { output += d; });
  child.stderr?.on('data', (d) => { output += d; });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => { started.delete(child); resolve(code); });
    // A failed spawn emits 'error' and no 'exit': record it rather than crash the suite.
    child.once('error', (err) => {
      spawnError = err;
      output += `spawn failed: ${err.message}\n`;
      started.delete(child);
      resolve(null);
    });
  });
  return {
    child, clientPort, peerPort, dataDir,
    output: () => output,
    spawnError: () => spawnError,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Spawns a long-running process that `killAll()` kills by PID (stdout and stderr piped). */
export function spawnTracked(command: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  started.add(child);
  child.once('exit', () => started.delete(child));
  return child;
}

export async function startKeyraft(options: { dataDir?: string; args?: string[]; env?: NodeJS.ProcessEnv; clientPort?: number } = {}): Promise<ServerProcess> {
  const dataDir = options.dataDir ?? join(tempDir('data'), 'member.keyraft');
  const clientPort = options.clientPort ?? await freePort();
  const peerPort = await freePort();
  const child = spawn(process.execPath, [
    keyraftBin,
    '--data-dir', dataDir,
    '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
    '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-cluster', `default=http://127.0.0.1:${peerPort}`,
    ...(options.args ?? []),
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KEYRAFT_LOG_LEVEL: 'warn', ...options.env } });
  const server = track(child, clientPort, peerPort, dataDir);
  await waitHealthy(server, 'keyraft');
  return server;
}

export async function startEtcd(options: { args?: string[] } = {}): Promise<ServerProcess> {
  const dataDir = join(tempDir('etcd'), 'default.etcd');
  const clientPort = await freePort();
  const peerPort = await freePort();
  const child = spawn(binaryOrThrow('etcd'), [
    '--data-dir', dataDir,
    '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
    '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-cluster', `default=http://127.0.0.1:${peerPort}`,
    '--log-level', 'error', '--logger', 'zap',
    ...(options.args ?? []),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = track(child, clientPort, peerPort, dataDir);
  await waitHealthy(server, 'etcd');
  return server;
}

export async function waitHealthy(server: ServerProcess, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (server.child.exitCode !== null || server.child.signalCode !== null || server.spawnError() !== undefined) {
      throw new Error(`${what} exited during start-up (code ${server.child.exitCode}):\n${server.output()}`);
    }
    try {
      const res = await httpRequest(server.clientPort, 'GET', '/health');
      if (res.status === 200 && res.body.includes('true')) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.kill9();
      throw new Error(`${what} did not become healthy within 20 s:\n${server.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function httpRequest(port: number, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data, headers: res.headers }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export async function postJson(port: number, path: string, body: unknown): Promise<{ status: number; json: any; raw: string }> {
  const res = await httpRequest(port, 'POST', path, JSON.stringify(body));
  let json: any;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, raw: res.body };
}

export function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

export interface CommandResult { code: number | null; stdout: string; stderr: string }

/** Runs a client command (etcdctl or keyraftctl) to completion with a timeout; never hangs the suite. */
export function runCommand(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ETCDCTL_API: '3', ...options.env } });
    started.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 15_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      started.delete(child);
      reject(err);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      started.delete(child);
      resolve({ code, stdout, stderr });
    });
    // EPIPE when the command exits (or never started) before reading its input: 'exit' or
    // 'error' above reports the outcome.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

export function etcdctl(port: number, args: string[], input?: string): Promise<CommandResult> {
  return runCommand(binaryOrThrow('etcdctl'), [`--endpoints=127.0.0.1:${port}`, ...args], { input });
}

/** Kills every process this harness started (by PID) and removes temp dirs. */
export async function killAll(): Promise<void> {
  for (const child of [...started]) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Replaces 16-hex-digit member ids and decimal cluster/member ids so outputs of two servers compare. */
export function normalizeIds(text: string): string {
  return text
    .replace(/\b[0-9a-f]{12,16}\b/g, '<id>')
    .replace(/"(cluster_id|member_id|ID|leader|memberID)":\s*"?\d+"?/g, '"$1":<id>');
}

/** A keyraft member and an `etcd3` npm client on it, for the suites that drive keyraft with that client. */
export async function startKeyraftWithEtcd3(): Promise<{ keyraft: ServerProcess; client: Etcd3 }> {
  const keyraft = await startKeyraft();
  return { keyraft, client: new Etcd3({ hosts: `127.0.0.1:${keyraft.clientPort}`, dialTimeout: 5000 }) };
}

