/**
 * etcdctl 3.4 against a real 3-member keyraft cluster: member list/add --learner/promote/update/
 * remove, endpoint status and health --cluster, move-leader, with etcd's output shapes, while a
 * writer keeps putting; the added member joins with --initial-cluster-state existing and serves
 * the data; the removed member stops itself.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import { etcdctl, killAll, postJson, runCommand } from '../integration/harness.js';
import { TestCluster } from './cluster-harness.js';
import { call, memberState } from './workload.js';

const need = needEtcd('cluster/membership', ['etcdctl']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex = (id: bigint) => id.toString(16);

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

test.after(async () => {
  await killAll();
});

need.test(test, 'etcdctl member add --learner, promote, update, remove, move-leader and endpoint --cluster on a 3-member cluster under load', async () => {
  const cluster = await TestCluster.start({ members: 3 });
  let writing = true;
  let written = 0;
  const writer = (async () => {
    while (writing) {
      const up = cluster.slots.map((_, i) => i).filter((i) => cluster.isUp(i));
      try {
        await call(cluster.kv(up[written % up.length]!), 'Put', { key: Buffer.from(`load/${written}`), value: Buffer.from('x') }, 3000);
        written++;
      } catch {
        await sleep(20);
      }
    }
  })();
  try {
    const port = cluster.slots[1]!.clientPort;
    const list = await etcdctl(port, ['member', 'list', '-w', 'table']);
    assert.is(list.code, 0, list.stderr);
    assert.match(list.stdout, /\| +ID +\| +STATUS +\| +NAME +\| +PEER ADDRS +\| +CLIENT ADDRS +\| +IS LEARNER +\|/);
    for (const s of cluster.slots) assert.match(list.stdout, new RegExp(`\\| +${hex(s.id)} +\\| +started +\\| +${s.name} +\\|`));

    // Add a learner through a follower (forwarded to the leader), start it, let it catch up.
    const added = await cluster.newSlot();
    const add = await etcdctl(port, ['member', 'add', 'm3', '--learner', `--peer-urls=${cluster.peerUrl(added)}`]);
    assert.is(add.code, 0, add.stderr);
    assert.match(add.stdout, new RegExp(`^Member +${hex(cluster.slots[added]!.id)} added to cluster +[0-9a-f]+\\n`));
    assert.match(add.stdout, 'ETCD_INITIAL_CLUSTER_STATE="existing"');
    cluster.spawnJoining(added);
    await until('the learner serves the data', async () => (await cluster.status(added))?.appliedIndex === (await cluster.status(0))?.appliedIndex);
    const learnerList = await etcdctl(port, ['member', 'list']);
    assert.match(learnerList.stdout, new RegExp(`${hex(cluster.slots[added]!.id)}, started, m3, ${cluster.peerUrl(added)}, http://127.0.0.1:${cluster.slots[added]!.clientPort}, true`));
    // A learner serves serializable reads only, as etcd 3.4's.
    const learnerPort = cluster.slots[added]!.clientPort;
    const refused = await etcdctl(learnerPort, ['put', 'on-learner', 'x']);
    assert.match(refused.stderr, 'etcdserver: rpc not supported for learner');
    assert.match((await etcdctl(learnerPort, ['get', 'load/0'])).stderr, 'etcdserver: rpc not supported for learner');
    assert.is((await etcdctl(learnerPort, ['get', 'load/0', '--consistency=s', '--print-value-only'])).stdout, 'x\n');
    const promote = await etcdctl(port, ['member', 'promote', hex(cluster.slots[added]!.id)]);
    assert.is(promote.code, 0, promote.stderr);
    assert.match(promote.stdout, new RegExp(`Member +${hex(cluster.slots[added]!.id)} promoted in cluster`));
    const again = await etcdctl(port, ['member', 'promote', hex(cluster.slots[added]!.id)]);
    assert.match(again.stderr, 'etcdserver: can only promote a learner member');

    // endpoint status and health over the whole cluster (etcdctl finds the members itself).
    const status = await etcdctl(port, ['endpoint', 'status', '--cluster', '-w', 'table']);
    assert.is(status.code, 0, status.stderr);
    assert.match(status.stdout, /\| +ENDPOINT +\| +ID +\| +VERSION +\| +DB SIZE +\| +IS LEADER +\| +IS LEARNER +\| +RAFT TERM +\| +RAFT INDEX +\| +RAFT APPLIED INDEX +\| +ERRORS +\|/);
    assert.is(status.stdout.split('\n').filter((l) => / true \| +false \|/.test(l)).length, 1, `one leader:\n${status.stdout}`);
    assert.is(status.stdout.split('\n').filter((l) => l.includes('3.4.23')).length, 4);
    const health = await etcdctl(port, ['endpoint', 'health', '--cluster']);
    assert.is(health.code, 0, health.stderr + health.stdout);
    const healthLines = (health.stdout + health.stderr).split("\n").filter((l) => / is healthy: successfully committed proposal: took = /.test(l));
    assert.is(healthLines.length, 4, health.stdout + health.stderr);

    // move-leader, asked of the leader, to the new member.
    const leader = await cluster.waitLeader();
    const move = await etcdctl(cluster.slots[leader]!.clientPort, ['move-leader', hex(cluster.slots[added]!.id)]);
    assert.is(move.code, 0, move.stderr);
    assert.match(move.stdout, new RegExp(`Leadership transferred from +${hex(cluster.slots[leader]!.id)} to +${hex(cluster.slots[added]!.id)}`));
    assert.is(await cluster.waitLeader(), added);

    // update the peer URLs of a member (same URL set reordered plus none: etcd accepts any valid set)
    const target = cluster.slots[2]!;
    const update = await etcdctl(port, ['member', 'update', hex(target.id), `--peer-urls=${cluster.peerUrl(2)}`]);
    assert.is(update.code, 0, update.stderr);
    // etcdctl prints ids with %16x: padded with spaces to 16 characters.
    assert.match(update.stdout, new RegExp(`Member +${hex(target.id)} updated in cluster`), update.stdout + update.stderr);

    // The same over the JSON gateway: update with etcd's path and field names, MoveLeader refused off the leader.
    const viaGateway = await postJson(port, '/v3/cluster/member/update', { ID: target.id.toString(), peerURLs: [cluster.peerUrl(2)] });
    assert.is(viaGateway.status, 200, viaGateway.raw);
    assert.is(viaGateway.json.members.length, 4);
    assert.ok(viaGateway.json.members.some((m: { ID: string; peerURLs: string[] }) => m.ID === target.id.toString() && m.peerURLs[0] === cluster.peerUrl(2)));
    const follower = [1, 2, added].find((i) => i !== added)!;
    const notLeader = await postJson(cluster.slots[follower]!.clientPort, '/v3/maintenance/transfer-leadership', { targetID: cluster.slots[1]!.id.toString() });
    // FAILED_PRECONDITION: etcd 3.4's grpc-gateway (v1.9) answers it with HTTP 412, as a live etcd 3.4.23 does.
    assert.is(notLeader.status, 412, notLeader.raw);
    assert.is(notLeader.json.error, 'etcdserver: not leader');

    // remove member 0: it stops itself; the rest keep serving.
    const remove = await etcdctl(port, ['member', 'remove', hex(cluster.slots[0]!.id)]);
    assert.is(remove.code, 0, remove.stderr);
    assert.match(remove.stdout, new RegExp(`Member +${hex(cluster.slots[0]!.id)} removed from cluster`));
    await until('the removed member exits', async () => cluster.slots[0]!.process!.child.exitCode !== null);
    assert.match(cluster.slots[0]!.process!.output(), 'permanently removed from the cluster');
    cluster.slots[0]!.process = null;
    const unknown = await etcdctl(port, ['member', 'remove', hex(cluster.slots[0]!.id)]);
    assert.match(unknown.stderr, 'etcdserver: member not found');

    writing = false;
    await writer;
    assert.ok(written > 20, `the writer made progress during the changes (${written} puts)`);
    await cluster.waitConverged();
    const states = await Promise.all([1, 2, added].map((i) => memberState(cluster, i)));
    for (const s of states) assert.is(s.hash, states[0]!.hash, 'the remaining members hold the same data');
    const finalList = await runCommand(need.path('etcdctl'), [`--endpoints=127.0.0.1:${port}`, 'member', 'list']);
    assert.is(finalList.stdout.trim().split('\n').length, 3);
  } finally {
    writing = false;
    await writer;
    await cluster.close();
  }
});

test.run();
