/**
 * The Lock service under contention on a real member, driven by real clients: in-process gRPC
 * callers (@grpc/grpc-js) of the Lock service and etcdctl 3.4's `lock NAME -- cmd` (clientv3's
 * Mutex, run on the client over KV and watch: the recipe the service runs on the server) contend
 * for one name and their critical sections (critical-section.ts) must never overlap; the etcd3 npm client's own lock
 * (a try-lock over KV txns) the same; a waiting Lock whose call is cancelled or passes its
 * deadline gives up its key; a holder killed with kill -9 frees the lock when its lease expires.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { Etcd3, EtcdLockFailedError } from 'etcd3';
import { needEtcd } from '../etcd-binaries.js';
import { etcdctl, killAll, spawnTracked, startKeyraft, type ServerProcess } from '../integration/harness.js';
import { checkSequence, criticalSection } from './critical-section.js';
import { LockClient } from './lock-client.js';
import { firstLine } from './child-output.js';

const test = suite('lock-contention');
let keyraft: ServerProcess;
let client: Etcd3;
let locks: LockClient;
const needCtl = needEtcd('lock/lock-contention', ['etcdctl']);
const sectionScript = join(__dirname, 'critical-section.js');

async function grant(ttlSeconds: number): Promise<string> {
  return client.lease(ttlSeconds, { autoKeepAlive: false }).grant();
}

/** Keys under a prefix, as strings. */
async function keysUnder(prefix: string): Promise<string[]> {
  return client.getAll().prefix(prefix).keys();
}

/** Polls until `check` holds (bounded by count, not by time: no timed assertion). */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never: ${what}`);
}

test.before(async () => {
  keyraft = await startKeyraft();
  client = new Etcd3({ hosts: `127.0.0.1:${keyraft.clientPort}` });
  locks = new LockClient(keyraft.clientPort);
});

test.after(async () => {
  locks?.close();
  client?.close();
  await killAll();
});

async function grpcContender(name: string, seqKey: string, id: string): Promise<void> {
  const lease = await grant(60);
  const { reply } = locks.lock(name, lease);
  const held = await reply;
  assert.is(held.key.toString(), `${name}/${BigInt(lease).toString(16)}`);
  await criticalSection(client, seqKey, id);
  await locks.unlock(held.key);
  await client.leaseClient.leaseRevoke({ ID: lease });
}

needCtl.test(test, 'gRPC Lock callers and etcdctl lock contend for one name: sections never overlap', async () => {
  const seqKey = 'seq-mixed';
  const ctl = [0, 1, 2].map((i) => etcdctl(keyraft.clientPort, ['lock', 'mixed', '--', process.execPath, sectionScript, String(keyraft.clientPort), seqKey, `ctl${i}`]));
  const grpcIds = ['g0', 'g1', 'g2', 'g3'];
  await Promise.all(grpcIds.map((id) => grpcContender('mixed', seqKey, id)));
  for (const result of await Promise.all(ctl)) assert.is(result.code, 0, `etcdctl lock: ${result.stdout} ${result.stderr}`);
  const order = checkSequence(await client.get(seqKey).string() ?? '');
  assert.equal([...order].sort(), ['ctl0', 'ctl1', 'ctl2', 'g0', 'g1', 'g2', 'g3']);
  assert.equal(await keysUnder('mixed/'), []);
});

test('the etcd3 npm client\'s lock(name).do(fn): contenders retrying never overlap', async () => {
  const seqKey = 'seq-etcd3';
  const contender = async (id: string) => {
    for (;;) {
      try {
        await client.lock('etcd3-lock').ttl(30).do(() => criticalSection(client, seqKey, id));
        return;
      } catch (err) {
        if (!(err instanceof EtcdLockFailedError)) throw err;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  await Promise.all(['a', 'b', 'c', 'd', 'e'].map(contender));
  const order = checkSequence(await client.get(seqKey).string() ?? '');
  assert.equal([...order].sort(), ['a', 'b', 'c', 'd', 'e']);
});

test('a waiting Lock whose deadline passes or whose call is cancelled deletes its key; the queue moves on', async () => {
  const holderLease = await grant(60);
  const held = await locks.lock('cx', holderLease).reply;
  // Deadline: the waiter's call ends with DEADLINE_EXCEEDED while the lock is held.
  const deadlineLease = await grant(60);
  const late = await locks.lock('cx', deadlineLease, { deadlineMs: 500 }).reply.then(() => 'held', (err) => err.code);
  assert.is(late, 4, 'DEADLINE_EXCEEDED');
  await eventually('the timed-out waiter\'s key is deleted', async () => (await keysUnder('cx/')).length === 1);
  // Cancel: the client cancels a waiting call once its key is in the queue.
  const cancelLease = await grant(60);
  const waiting = locks.lock('cx', cancelLease);
  const cancelledKey = `cx/${BigInt(cancelLease).toString(16)}`;
  await eventually('the waiter queued its key', async () => (await keysUnder('cx/')).includes(cancelledKey));
  waiting.cancel();
  assert.is(await waiting.reply.then(() => 'held', (err) => err.code), 1, 'CANCELLED');
  await eventually('the cancelled waiter\'s key is deleted', async () => !(await keysUnder('cx/')).includes(cancelledKey));
  assert.equal(await keysUnder('cx/'), [held.key.toString()]);
  // Both leases are still alive (only the keys went), and the next contender gets the lock on unlock.
  const nextLease = await grant(60);
  const next = locks.lock('cx', nextLease);
  await eventually('the next waiter queued', async () => (await keysUnder('cx/')).length === 2);
  await locks.unlock(held.key);
  const nextHeld = await next.reply;
  assert.is(nextHeld.key.toString(), `cx/${BigInt(nextLease).toString(16)}`);
  await locks.unlock(nextHeld.key);
});

needCtl.test(test, 'an etcdctl lock holder killed with kill -9 frees the lock (for a Lock service waiter) when its lease expires', async () => {
  const holder = spawnTracked(needCtl.path('etcdctl'), [`--endpoints=127.0.0.1:${keyraft.clientPort}`, 'lock', '--ttl=5', 'k9'], { env: { ETCDCTL_API: '3' } });
  const holderKey = await firstLine(holder);
  assert.match(holderKey, /^k9\/[0-9a-f]+$/);
  const exited = new Promise((r) => holder.once('exit', r));
  process.kill(holder.pid!, 'SIGKILL');
  await exited;
  // The killed holder's key stays until its lease expires (no one revoked it).
  assert.equal(await keysUnder('k9/'), [holderKey]);
  const lease = await grant(60);
  const held = await locks.lock('k9', lease).reply;
  assert.is(held.key.toString(), `k9/${BigInt(lease).toString(16)}`);
  assert.equal(await keysUnder('k9/'), [held.key.toString()]);
  await locks.unlock(held.key);
});

test.run();
