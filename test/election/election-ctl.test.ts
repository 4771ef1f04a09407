/**
 * `elect` and `lock` from the command line, three ways that must print the same: etcdctl 3.4
 * against etcd 3.4 (the reference), etcdctl 3.4 against keyraft (clientv3's client-side Election
 * and Mutex over keyraft's KV, watch and leases), and keyraftctl against keyraft (its elect and lock
 * use keyraft's Election and Lock services). Lease ids (each server's own) are normalized.
 *
 * The script: an observer (`elect -l`), a leader, a second campaigner waiting behind it, the
 * leader interrupted (it resigns, exit 0) so the second leads, the second interrupted, a waiting
 * campaigner interrupted ("context canceled", exit 1, its key gone); `lock NAME -- cmd` with
 * ETCD_LOCK_KEY, a failing command ("exit status 3"), a missing one; a held lock interrupted
 * (unlocked, exit 0); a held lock whose session lease is revoked ("session expired"); and the
 * argument errors.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import { b64, killAll, keyraftctlBin, postJson, runCommand, startEtcd, startKeyraft, type ServerProcess } from '../integration/harness.js';
import { CtlProcess } from './ctl-process.js';
import { eventually } from './eventually.js';

const test = suite('election-ctl');
let keyraft: ServerProcess;
let etcd: ServerProcess;
const needBoth = needEtcd('election/election-ctl', ['etcd', 'etcdctl']);

type Ctl = { command: string; prefixArgs: string[] };

async function keysUnder(port: number, prefix: string): Promise<Array<{ key: string; lease: string }>> {
  const end = Buffer.from(prefix);
  end[end.length - 1]!++;
  const r = await postJson(port, '/v3/kv/range', { key: b64(prefix), range_end: end.toString('base64') });
  return (r.json.kvs ?? []).map((kv: { key: string; lease: string }) => ({ key: Buffer.from(kv.key, 'base64').toString(), lease: kv.lease }));
}

async function run(port: number, ctl: Ctl): Promise<string[]> {
  const out: string[] = [];
  const args = (...rest: string[]) => [...ctl.prefixArgs, `--endpoints=127.0.0.1:${port}`, ...rest];
  const start = (...rest: string[]) => new CtlProcess(ctl.command, args(...rest));
  const once = async (...rest: string[]) => runCommand(ctl.command, args(...rest));
  const norm = (text: string) => text.replace(/\/[0-9a-f]{1,16}\b/g, '/<lease>');
  // clientv3 logs retries of cancelled calls as JSON lines on stderr, when the timing has it: not output.
  const errText = (text: string) => text.split('\n').filter((line) => !line.startsWith('{"level":')).join('\n');
  const ended = async (p: CtlProcess, code: Promise<number | null>) => `exit ${await code} ${JSON.stringify(norm(p.stdout))} ${JSON.stringify(errText(p.stderr))}`;

  // Elections.
  const observer = start('elect', '-l', 'race');
  const first = start('elect', 'race', 'one');
  out.push(`first leads: ${norm((await first.lines(2)).join('|'))}`);
  await observer.lines(2);
  const second = start('elect', 'race', 'two');
  await eventually('second waits', async () => (await keysUnder(port, 'race/')).length === 2);
  out.push(`first interrupted: ${await ended(first, first.interrupt())}`);
  out.push(`second leads: ${norm((await second.lines(2)).join('|'))}`);
  const third = start('elect', 'race', 'three');
  await eventually('third waits', async () => (await keysUnder(port, 'race/')).length === 2);
  out.push(`waiting third interrupted: ${await ended(third, third.interrupt())}`);
  out.push(`keys after: ${(await keysUnder(port, 'race/')).length}`);
  out.push(`second interrupted: ${await ended(second, second.interrupt('SIGTERM'))}`);
  await observer.lines(4);
  out.push(`observer interrupted: ${await ended(observer, observer.interrupt())}`);
  // Locks.
  const exec = await once('lock', 'door', '--', 'sh', '-c', 'echo "key=$ETCD_LOCK_KEY rev-set=${ETCD_LOCK_REV:+yes}"');
  out.push(`lock with a command: exit ${exec.code} ${JSON.stringify(norm(exec.stdout))} ${JSON.stringify(errText(exec.stderr))}`);
  const failing = await once('lock', 'door', '--', 'sh', '-c', 'exit 3');
  out.push(`failing command: exit ${failing.code} ${JSON.stringify(failing.stdout)} ${JSON.stringify(errText(failing.stderr))}`);
  const missing = await once('lock', 'door', 'no-such-command-here');
  out.push(`missing command: exit ${missing.code} ${JSON.stringify(errText(missing.stderr))}`);
  const holder = start('lock', 'door');
  out.push(`holder: ${norm((await holder.lines(2)).join('|'))}`);
  out.push(`holder interrupted: ${await ended(holder, holder.interrupt())}`);
  out.push(`door keys after: ${(await keysUnder(port, 'door/')).length}`);
  // A session whose lease is revoked under it: noticed at the next keep-alive (lock's TTL is 10 s,
  // so within 4 s; elect's 60 s session would take up to 20 s, so it is not scripted here).
  const locked = start('lock', 'gone');
  await locked.lines(2);
  const [kv] = await keysUnder(port, 'gone/');
  await postJson(port, '/v3/lease/revoke', { ID: kv!.lease });
  out.push(`lock session revoked: ${await ended(locked, locked.exit())}`);
  // Argument errors.
  for (const bad of [['lock'], ['elect'], ['elect', 'x'], ['elect', '-l', 'x', 'y'], ['elect', 'a', 'b', 'c']]) {
    const r = await once(...bad);
    out.push(`${bad.join(' ')}: exit ${r.code} ${JSON.stringify(errText(r.stderr))}`);
  }
  return out;
}

test.before(async () => {
  if (needBoth.found) [keyraft, etcd] = await Promise.all([startKeyraft(), startEtcd()]);
});

test.after(async () => {
  await killAll();
});

needBoth.test(test, 'etcdctl on etcd, etcdctl on keyraft and keyraftctl on keyraft print the same elect and lock transcript', async () => {
  const etcdctl: Ctl = { command: needBoth.path('etcdctl'), prefixArgs: [] };
  const reference = await run(etcd.clientPort, etcdctl);
  const viaEtcdctl = await run(keyraft.clientPort, etcdctl);
  const viaKeyraftctl = await run(keyraft.clientPort, { command: process.execPath, prefixArgs: [keyraftctlBin] });
  for (let i = 0; i < reference.length; i++) {
    assert.is(viaEtcdctl[i], reference[i], `etcdctl on keyraft, step ${i}`);
    assert.is(viaKeyraftctl[i], reference[i], `keyraftctl on keyraft, step ${i}`);
  }
  assert.is(viaEtcdctl.length, reference.length);
  assert.is(viaKeyraftctl.length, reference.length);
  assert.is(reference[0], 'first leads: race/<lease>|one');
});

test.run();
