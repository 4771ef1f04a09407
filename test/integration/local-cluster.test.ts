/**
 * `keyraft cluster`: three members come up on the ports given, a write through one member is read
 * through another, SIGTERM stops every member (checked by PID), and a second run on the same data
 * dir resumes with the data.
 */
import type { ChildProcess } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { b64, etcdctl, freePort, keyraftBin, killAll, postJson, spawnTracked, tempDir } from './harness.js';
import { findBinary } from '../etcd-binaries.js';

const test = suite('local-cluster');
const memberPids = new Set<number>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test.after(async () => {
  // A failed test may leave members behind its cluster process: kill them by PID too.
  for (const pid of memberPids) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  await killAll();
});

interface Cluster { child: ChildProcess; clientPorts: number[]; pids: number[]; exited: Promise<number | null>; output: () => string }

async function startCluster(dataDir: string, clientPorts: number[], peerPorts: number[]): Promise<Cluster> {
  const child = spawnTracked(process.execPath, [
    keyraftBin, 'cluster', '--members', '3', '--data-dir', dataDir,
    '--client-ports', clientPorts.join(','), '--peer-ports', peerPorts.join(','), '--', '--log-level', 'warn',
  ]);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const output = () => `stdout:\n${stdout}\nstderr:\n${stderr}`;
  const deadline = Date.now() + 60_000;
  while (!/etcdctl --endpoints=\S+/.test(stdout)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`keyraft cluster exited early (${child.exitCode}):\n${output()}`);
    if (Date.now() > deadline) throw new Error(`keyraft cluster not ready within 60 s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const pids = [...stdout.matchAll(/ pid (\d+) /g)].map((m) => Number(m[1]));
  for (const pid of pids) memberPids.add(pid);
  return { child, clientPorts, pids, exited, output };
}

async function put(port: number, key: string, value: string): Promise<void> {
  if (findBinary('etcdctl') !== undefined) {
    const res = await etcdctl(port, ['put', key, value]);
    assert.is(res.code, 0, res.stderr);
    return;
  }
  const res = await postJson(port, '/v3/kv/put', { key: b64(key), value: b64(value) });
  assert.is(res.status, 200, res.raw);
}

async function get(port: number, key: string): Promise<string | undefined> {
  if (findBinary('etcdctl') !== undefined) {
    const res = await etcdctl(port, ['get', key, '--print-value-only']);
    assert.is(res.code, 0, res.stderr);
    return res.stdout.trim() || undefined;
  }
  const res = await postJson(port, '/v3/kv/range', { key: b64(key) });
  assert.is(res.status, 200, res.raw);
  const kv = res.json.kvs?.[0];
  return kv ? Buffer.from(kv.value, 'base64').toString() : undefined;
}

async function stopCluster(cluster: Cluster): Promise<void> {
  process.kill(cluster.child.pid!, 'SIGTERM');
  const code = await cluster.exited;
  assert.is(code, 0, cluster.output());
  for (const pid of cluster.pids) assert.not.ok(pidAlive(pid), `member pid ${pid} still running after the cluster exited`);
}

test('three members: write through one, read through another; SIGTERM stops all; a restart resumes', async () => {
  const dataDir = tempDir('cluster');
  const ports: number[] = [];
  while (ports.length < 6) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  const clientPorts = ports.slice(0, 3);
  const peerPorts = ports.slice(3);

  const first = await startCluster(dataDir, clientPorts, peerPorts);
  assert.is(first.pids.length, 3, first.output());
  assert.match(first.output(), clientPorts.map((p) => `http://127.0.0.1:${p}`).join(','));
  await put(clientPorts[0]!, 'cluster/k', 'v1');
  assert.is(await get(clientPorts[2]!, 'cluster/k'), 'v1');
  await stopCluster(first);

  const second = await startCluster(dataDir, clientPorts, peerPorts);
  assert.is(await get(clientPorts[1]!, 'cluster/k'), 'v1');
  await stopCluster(second);
});

test('bad flags exit 2 with the usage', async () => {
  const child = spawnTracked(process.execPath, [keyraftBin, 'cluster', '--members', 'lots']);
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.is(code, 2);
  assert.match(stderr, '--members: must be 1 to 9');
  assert.match(stderr, 'Usage: keyraft cluster');
});

test.run();
