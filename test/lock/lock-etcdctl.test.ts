/**
 * etcd's Lock service through etcdctl 3.4 and the JSON gateway, side by side with a real etcd 3.4:
 * the same steps run against both and the outputs must match once lease ids (each server's own),
 * member ids and ports are normalized. etcdctl 3.4's `lock` runs clientv3's Mutex on the client
 * (KV txn, range and watch), not the Lock service: its steps check that keyraft gives that recipe
 * what etcd gives it; the gateway steps call the Lock service itself.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChildProcess } from 'node:child_process';
import { needEtcd } from '../etcd-binaries.js';
import { firstLine } from './child-output.js';
import {
  b64, etcdctl, killAll, normalizeIds, postJson, spawnTracked, startEtcd, startKeyraft, type ServerProcess,
} from '../integration/harness.js';

const test = suite('lock-etcdctl');
let keyraft: ServerProcess;
let etcd: ServerProcess;
const needBoth = needEtcd('lock/lock-etcdctl', ['etcd', 'etcdctl']);

function stopByPid(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    process.kill(child.pid!, signal);
  });
}

/** One server's transcript of the lock steps, lease ids replaced by <lease>. */
async function run(server: ServerProcess): Promise<string[]> {
  const out: string[] = [];
  const port = server.clientPort;
  const norm = (text: string) => normalizeIds(text.replace(/\/[0-9a-f]{1,16}\b/g, '/<lease>'));
  // etcdctl lock NAME holds until interrupted, printing the key it holds.
  const holder = spawnTracked(needBoth.path('etcdctl'), [`--endpoints=127.0.0.1:${port}`, 'lock', 'shared'], { env: { ETCDCTL_API: '3' } });
  try {
    out.push(`holder printed: ${norm(await firstLine(holder))}`);
    const keys = await etcdctl(port, ['get', '--prefix', 'shared', '--keys-only']);
    out.push(`keys while held: ${norm(keys.stdout)}`);
    // The key's value is empty and it lives under the holder's lease.
    const json = await etcdctl(port, ['get', '--prefix', 'shared', '-w', 'json']);
    const kv = JSON.parse(json.stdout).kvs[0];
    out.push(`value empty: ${kv.value === undefined || kv.value === ''}, has lease: ${BigInt(kv.lease) !== 0n}`);
  } finally {
    await stopByPid(holder, 'SIGINT');
  }
  // With an exec command: runs it while held, prints its output.
  const exec = await etcdctl(port, ['lock', 'shared', 'echo', 'in section']);
  out.push(`exec: exit=${exec.code} ${norm(exec.stdout)} ${norm(exec.stderr)}`);
  const left = await etcdctl(port, ['get', '--prefix', 'shared', '--keys-only']);
  out.push(`keys after: ${JSON.stringify(left.stdout)}`);

  // The JSON gateway: lock under a granted lease, a second name, unlock, and an unknown lease.
  const grant = await postJson(port, '/v3/lease/grant', { TTL: 30 });
  const lease = grant.json.ID as string;
  const hex = BigInt(lease).toString(16);
  const gw = (raw: string) => normalizeIds(raw.replaceAll(b64(`gw/${hex}`), '<gw-key>')).replace(/"revision":"\d+"/, '"revision":<rev>');
  const lock = await postJson(port, '/v3/lock/lock', { name: b64('gw'), lease });
  out.push(`lock ${lock.status} ${gw(lock.raw)}`);
  const again = await postJson(port, '/v3/lock/lock', { name: b64('gw'), lease });
  out.push(`same lease again ${again.status} ${gw(again.raw)}`);
  const unlock = await postJson(port, '/v3/lock/unlock', { key: b64(`gw/${hex}`) });
  out.push(`unlock ${unlock.status} ${gw(unlock.raw)}`);
  const unlockAgain = await postJson(port, '/v3/lock/unlock', { key: b64(`gw/${hex}`) });
  out.push(`unlock again ${unlockAgain.status} ${gw(unlockAgain.raw)}`);
  const noLease = await postJson(port, '/v3/lock/lock', { name: b64('gw'), lease: '12345' });
  out.push(`unknown lease ${noLease.status} ${noLease.raw}`);
  const beta = await postJson(port, '/v3beta/lock/lock', { name: b64('gw'), lease });
  out.push(`v3beta ${beta.status} ${gw(beta.raw)}`);
  await postJson(port, '/v3/lease/revoke', { ID: lease });
  return out;
}

test.before(async () => {
  if (needBoth.found) [keyraft, etcd] = await Promise.all([startKeyraft(), startEtcd()]);
});

test.after(async () => {
  await killAll();
});

needBoth.test(test, 'etcdctl lock (held, exec) and the /v3/lock gateway: same output as etcd 3.4', async () => {
  const fromEtcd = await run(etcd);
  const fromKeyraft = await run(keyraft);
  for (let i = 0; i < fromEtcd.length; i++) assert.is(fromKeyraft[i], fromEtcd[i], `step ${i}`);
  assert.is(fromKeyraft.length, fromEtcd.length);
  assert.match(fromKeyraft[0]!, /^holder printed: shared\/<lease>$/);
});

test.run();
