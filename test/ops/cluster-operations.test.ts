/**
 * Operations on a real 3-member cluster, driven by etcdctl 3.4 and keyraftctl: HashKV equal on
 * every member at the same revision, before and after a compaction and across a restart;
 * move-leader; and the corrupt check: a member whose backend was altered while it was down finds
 * its HashKV differs from its peers' at start-up and raises CORRUPT, after which writes fail with
 * "etcdserver: corrupt cluster" while reads, /livez and alarm disarm work; a healthy member whose
 * initial check meets the altered one names that one, not itself.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ClassicLevel } from 'classic-level';
import { MaintenanceClient, unary } from '../api/grpc-clients.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import { httpRequest, keyraftctlBin, killAll, runCommand } from '../integration/harness.js';
import { TestCluster } from '../cluster/cluster-harness.js';
import { call } from '../cluster/workload.js';

const needEtcdctl = needEtcd('ops/cluster-operations', ['etcdctl']);

test.after(async () => {
  await killAll();
});

const endpointsOf = (cluster: TestCluster) => cluster.slots.map((s) => `127.0.0.1:${s.clientPort}`).join(',');

/** `endpoint hashkv` (simple output) of every member: endpoint -> hash. */
async function hashes(cluster: TestCluster, tool: 'etcdctl' | 'keyraftctl', rev?: number): Promise<string[]> {
  const args = [`--endpoints=${endpointsOf(cluster)}`, 'endpoint', 'hashkv', ...(rev === undefined ? [] : ['--rev', String(rev)])];
  const result = tool === 'etcdctl' ? await runEtcdctl(args) : await runCommand(process.execPath, [keyraftctlBin, ...args]);
  assert.is(result.code, 0, `${tool} endpoint hashkv: ${result.stderr}`);
  const lines = result.stdout.trim().split('\n');
  assert.is(lines.length, cluster.slots.length, result.stdout);
  return lines.map((line, i) => {
    const m = /^127\.0\.0\.1:(\d+), (\d+)$/.exec(line);
    assert.ok(m !== null && Number(m[1]) === cluster.slots[i]!.clientPort, `line ${JSON.stringify(line)}`);
    return m![2]!;
  });
}

function runEtcdctl(args: string[]) {
  return runCommand(needEtcdctl.path('etcdctl'), args);
}

needEtcdctl.test(test, 'HashKV agrees on every member, after a compaction and across a restart; move-leader', async () => {
  const cluster = await TestCluster.start({ members: 3 });
  try {
    const leader = await cluster.waitLeader();
    const kv = cluster.kv(leader);
    for (let i = 0; i < 200; i++) await call(kv, 'Put', { key: Buffer.from(`k${i % 23}`), value: Buffer.from(`v${i}`) });
    await call(kv, 'DeleteRange', { key: Buffer.from('k1'), range_end: Buffer.from('k2') });
    await call(kv, 'Txn', { success: [{ request_put: { key: Buffer.from('t1'), value: Buffer.from('a') } }, { request_put: { key: Buffer.from('t2'), value: Buffer.from('b') } }] });
    const converged = await cluster.waitConverged();
    const revision = converged[0]!.revision;
    const first = await hashes(cluster, 'etcdctl');
    assert.ok(first.every((h) => h === first[0]), `hashes ${first.join(' ')}`);
    assert.equal(await hashes(cluster, 'keyraftctl'), first, 'keyraftctl prints the same');
    // Maintenance.Hash (the whole backend, applied index left out) agrees too once all applied the same.
    const whole = await Promise.all(cluster.slots.map(async (slot) => {
      const client = new MaintenanceClient(`127.0.0.1:${slot.clientPort}`, grpc.credentials.createInsecure());
      try {
        return (await unary<{ hash: number }>(client, 'Hash', {})).hash;
      } finally {
        client.close();
      }
    }));
    assert.ok(whole.every((h) => h === whole[0]), `Hash ${whole.join(' ')}`);
    const older = await hashes(cluster, 'etcdctl', revision - 10);
    assert.ok(older.every((h) => h === older[0]) && older[0] !== first[0]);

    await call(kv, 'Compact', { revision: revision - 50, physical: true });
    await cluster.waitConverged();
    const compacted = await hashes(cluster, 'etcdctl');
    assert.ok(compacted.every((h) => h === compacted[0]), `after compaction: ${compacted.join(' ')}`);

    // A follower restarts: same value, and its initial corrupt check passed against both peers.
    const follower = (leader + 1) % 3;
    await cluster.kill9(follower);
    cluster.spawn(follower);
    await cluster.waitLeader();
    await cluster.waitConverged();
    assert.equal(await hashes(cluster, 'etcdctl'), compacted);
    let metrics = '';
    for (let i = 0; i < 100 && !/keyraft_server_corrupt_checks_total\{result="ok"\} 1/.test(metrics); i++) {
      metrics = (await httpRequest(cluster.slots[follower]!.clientPort, 'GET', '/metrics')).body;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(metrics, /keyraft_server_corrupt_checks_total\{result="ok"\} 1/);

    // move-leader with etcdctl's output, to the member that just restarted.
    const target = cluster.slots[follower]!;
    const moved = await runEtcdctl([`--endpoints=${endpointsOf(cluster)}`, 'move-leader', target.id.toString(16)]);
    assert.is(moved.code, 0, moved.stderr);
    assert.is(moved.stdout, `Leadership transferred from ${cluster.slots[leader]!.id.toString(16)} to ${target.id.toString(16)}\n`);
    assert.is(await cluster.waitLeader(), follower);
    const back = await runCommand(process.execPath, [keyraftctlBin, `--endpoints=${endpointsOf(cluster)}`, 'move-leader', cluster.slots[leader]!.id.toString(16)]);
    assert.is(back.stdout, `Leadership transferred from ${target.id.toString(16)} to ${cluster.slots[leader]!.id.toString(16)}\n`);
    assert.is(await cluster.waitLeader(), leader);
  } finally {
    await cluster.close();
  }
});

needEtcdctl.test(test, 'corrupt check: a member with altered data raises CORRUPT at start-up; writes refused, reads work', async () => {
  const cluster = await TestCluster.start({ members: 3 });
  try {
    const leader = await cluster.waitLeader();
    for (let i = 0; i < 50; i++) await call(cluster.kv(leader), 'Put', { key: Buffer.from(`c${i}`), value: Buffer.from(`value-${i}`) });
    await cluster.waitConverged();
    const victim = (leader + 2) % 3;
    await cluster.kill9(victim);
    // Flip one byte of one value in the victim's backend (key bucket 0x01, value after the 24-byte header).
    const db = new ClassicLevel<Buffer, Buffer>(join(cluster.slots[victim]!.dataDir, 'member', 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    let altered = false;
    for await (const [key, value] of db.iterator({ gte: Buffer.from([0x01]), lt: Buffer.from([0x02]) })) {
      if (key.subarray(9).toString() === 'c7' && value.length > 24) {
        value[value.length - 1] = value[value.length - 1]! ^ 0x01;
        await db.put(key, value);
        altered = true;
        break;
      }
    }
    await db.close();
    assert.ok(altered, 'found the record of c7 to alter');
    cluster.spawn(victim);
    await cluster.waitLeader();

    const endpoints = `--endpoints=${endpointsOf(cluster)}`;
    let alarms = '';
    for (let i = 0; i < 200 && !alarms.includes('CORRUPT'); i++) {
      alarms = (await runEtcdctl([endpoints, 'alarm', 'list'])).stdout;
      await new Promise((r) => setTimeout(r, 100));
    }
    // Which member raised what, from the members' own logs, should the alarm name another one.
    const corruptLogs = () => cluster.slots.map((s, i) => `member ${i} (${s.id}${i === victim ? ', the victim' : ''}):\n`
      + (s.process?.output() ?? '').split('\n').filter((line) => /corrupt/i.test(line)).join('\n')).join('\n');
    assert.is(alarms, `memberID:${cluster.slots[victim]!.id} alarm:CORRUPT \n`, corruptLogs());
    const put = await runEtcdctl([endpoints, 'put', 'after', 'x']);
    assert.is(put.code, 1);
    assert.match(put.stderr, 'etcdserver: corrupt cluster');
    const get = await runEtcdctl([endpoints, 'get', 'c8', '--print-value-only']);
    assert.is(get.stdout, 'value-8\n');
    const ready = await httpRequest(cluster.slots[leader]!.clientPort, 'GET', '/readyz');
    assert.is(ready.status, 503);
    assert.match(ready.body, '[-]data_corruption failed: alarm activated: CORRUPT');
    assert.is((await httpRequest(cluster.slots[leader]!.clientPort, 'GET', '/livez')).status, 200);

    // A healthy member whose initial check runs while the altered one is up (CI saw one run that
    // late, seconds into the cluster's life): its hash is the majority's, so it names the victim
    // (already named: nothing new), never itself.
    const healthy = (leader + 1) % 3;
    await cluster.kill9(healthy);
    cluster.spawn(healthy);
    await cluster.waitLeader();
    const mismatchCounted = /keyraft_server_corrupt_checks_total\{result="mismatch"\} 1/;
    let metrics = '';
    for (let i = 0; i < 200 && !mismatchCounted.test(metrics); i++) {
      metrics = await httpRequest(cluster.slots[healthy]!.clientPort, 'GET', '/metrics').then((r) => r.body, () => '');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(metrics, mismatchCounted, corruptLogs());
    // Asked of that member, so through the log after the alarm its check proposed, if any.
    const afterCheck = await runEtcdctl([`--endpoints=127.0.0.1:${cluster.slots[healthy]!.clientPort}`, 'alarm', 'list']);
    assert.is(afterCheck.stdout, `memberID:${cluster.slots[victim]!.id} alarm:CORRUPT \n`, corruptLogs());

    const disarm = await runEtcdctl([endpoints, 'alarm', 'disarm']);
    assert.is(disarm.stdout, `memberID:${cluster.slots[victim]!.id} alarm:CORRUPT \n`);
    assert.is((await runEtcdctl([endpoints, 'put', 'after', 'x'])).code, 0);
  } finally {
    await cluster.close();
  }
});

test.run();
