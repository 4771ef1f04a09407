/**
 * Refusals at the edges of a cluster: a data dir of an older format is refused at start-up by
 * name and left untouched; a member of another cluster (another token, so another cluster id)
 * dialing our members is refused at the handshake with a logged reason and changes nothing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, keyraftBin, killAll, runCommand, tempDir, track } from '../integration/harness.js';
import { TestCluster } from './cluster-harness.js';
import { call, memberState } from './workload.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.after(async () => {
  await killAll();
});

test('a data dir written by single-member keyraft 0.1 (format 0) is refused by name, not misread', async () => {
  const dataDir = join(tempDir('format0'), 'member.keyraft');
  mkdirSync(join(dataDir, 'member'), { recursive: true });
  const identity = JSON.stringify({ clusterId: '123', memberId: '456', name: 'default', peerUrls: ['http://127.0.0.1:2380'] });
  writeFileSync(join(dataDir, 'member', 'identity.json'), identity);
  const [client, peer] = [await freePort(), await freePort()];
  const res = await runCommand(process.execPath, [keyraftBin, '--data-dir', dataDir,
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--listen-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`, '--initial-cluster', `default=http://127.0.0.1:${peer}`]);
  assert.is(res.code, 1, res.stderr);
  assert.match(res.stderr, 'has format 0 (single-member keyraft 0.1); this keyraft reads format 1 only');
  assert.is(readFileSync(join(dataDir, 'member', 'identity.json'), 'utf8'), identity, 'the old identity is left as it was');
});

test('a member of another cluster is refused at the handshake; the cluster and its data are untouched', async () => {
  const cluster = await TestCluster.start({ members: 3 });
  try {
    const leader = await cluster.waitLeader();
    await call(cluster.kv(leader), 'Put', { key: Buffer.from('mine'), value: Buffer.from('1') });
    await cluster.waitConverged();
    const before = await memberState(cluster, 0);
    // It lists member 1 as a founding peer and dials it, but was bootstrapped with another token.
    const [client, peer] = [await freePort(), await freePort()];
    const foreignUrl = `http://127.0.0.1:${peer}`;
    const initialCluster = `${cluster.slots[1]!.name}=${cluster.peerUrl(1)},intruder=${foreignUrl}`;
    const child = spawn(process.execPath, [keyraftBin, '--name', 'intruder', '--data-dir', join(tempDir('intruder'), 'd'),
      '--listen-client-urls', `http://127.0.0.1:${client}`, '--listen-peer-urls', foreignUrl, '--initial-advertise-peer-urls', foreignUrl,
      '--initial-cluster', initialCluster, '--initial-cluster-token', 'another-cluster', '--election-timeout', '500', '--heartbeat-interval', '50'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KEYRAFT_LOG_LEVEL: 'warn' } });
    const intruder = track(child, client, peer, '');
    const deadline = Date.now() + 15_000;
    while (!cluster.slots[1]!.process!.output().includes('cluster id mismatch')) {
      if (Date.now() > deadline) throw new Error(`no refusal logged:\n${cluster.slots[1]!.process!.output().slice(-3000)}\n--- intruder\n${intruder.output().slice(-3000)}`);
      await sleep(100);
    }
    // The intruder logs the refusal it got (its reply may arrive after the member logged its side).
    while (!intruder.output().includes('peer refused our handshake')) {
      if (Date.now() > deadline) throw new Error(`the intruder never logged the refusal:\n${intruder.output().slice(-3000)}`);
      await sleep(100);
    }
    await intruder.kill9();
    const after = await memberState(cluster, 0);
    assert.is(after.hash, before.hash, 'nothing changed');
    await call(cluster.kv(1), 'Put', { key: Buffer.from('still'), value: Buffer.from('works') });
  } finally {
    await cluster.close();
  }
});

test.run();
