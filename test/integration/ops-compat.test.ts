/**
 * etcdctl 3.4's operations commands against keyraft and a real etcd 3.4 side by side:
 *   - the same writes (puts, deletes of one and of several keys, a txn writing keys in key order,
 *     a compaction) give the same HashKV VALUE on both, at the current revision and at older ones:
 *     same revisions, same KeyValue bytes, same CRC-32C (src/mvcc/hash.ts);
 *   - `endpoint hashkv` (simple, table, json), `alarm list`, `alarm disarm`, `defrag`,
 *     `move-leader` (to itself, to an unknown id, bad arguments): same output;
 *   - NOSPACE with a 4 MiB quota: fill until a put is refused, then the same outputs for the
 *     refused put, `alarm list`, `endpoint status`'s errors, reads, a delete, compaction, defrag,
 *     disarm and the put that works again. How many puts fit differs (bbolt and LevelDB grow
 *     differently), so the fill itself is not compared.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import { etcdctl, killAll, normalizeIds, startEtcd, startKeyraft, type CommandResult, type ServerProcess } from './harness.js';

const test = suite('ops-compat');
const needBoth = needEtcd('integration/ops-compat', ['etcd', 'etcdctl']);

test.after(async () => {
  await killAll();
});

function normalize(result: CommandResult, server: ServerProcess): string {
  const text = `exit=${result.code}\n--stdout--\n${result.stdout}\n--stderr--\n${result.stderr}`;
  return normalizeIds(text.replace(/endpoint:\/\/client-[0-9a-f-]+\//g, 'endpoint://client-<uuid>/'))
    .replaceAll(String(server.clientPort), '<client-port>')
    .replace(/memberID:\d+/g, 'memberID:<id>')
    .replace(/compacted revision \d+/g, 'compacted revision <rev>')
    .replace(/(\d+(\.\d+)?) (kB|MB|B)\b/g, '<size>')
    .replace(/(<size>, (true|false), (true|false), \d+), \d+, \d+/g, '$1, <index>, <index>')
    .replace(/^\{"level":"warn","ts":"[^"]+",/gm, '{"level":"warn",')
    .replace(/"caller":"[^"]+",?/g, '')
    .replace(/-{2,}/g, '--')
    .replace(/ {2,}/g, ' ');
}

async function both(servers: [ServerProcess, ServerProcess], args: string[], input?: string): Promise<[CommandResult, CommandResult]> {
  return [await etcdctl(servers[0].clientPort, args, input), await etcdctl(servers[1].clientPort, args, input)];
}

async function same(servers: [ServerProcess, ServerProcess], args: string[], input?: string): Promise<CommandResult> {
  const [fromEtcd, fromKeyraft] = await both(servers, args, input);
  assert.is(normalize(fromKeyraft, servers[1]), normalize(fromEtcd, servers[0]), `etcdctl ${args.join(' ')}`);
  return fromKeyraft;
}

needBoth.test(test, 'the same writes give the same HashKV value as etcd 3.4; hashkv, alarm, defrag outputs match', async () => {
  const servers: [ServerProcess, ServerProcess] = await Promise.all([startEtcd(), startKeyraft()]);
  const steps: Array<[string[], string?]> = [
    [['put', 'a', '1']], [['put', 'b', '2']], [['put', 'a', '3']], [['put', 'c', 'x'.repeat(300)]],
    [['put', 'd/1', 'one']], [['put', 'd/2', 'two']], [['put', 'd/3', 'three']],
    [['del', 'b']], [['del', 'd/', '--prefix']],
    [['txn'], '\nput e 5\nput f 6\n\n\n'],
    [['put', 'a', '4']], [['put', 'g', '']],
  ];
  for (const [args, input] of steps) await same(servers, args, input);
  const current = JSON.parse((await etcdctl(servers[0].clientPort, ['get', 'a', '-w', 'json'])).stdout).header.revision as number;
  for (const rev of [0, current - 1, 5, 2]) {
    const [fromEtcd, fromKeyraft] = await both(servers, ['endpoint', 'hashkv', '--rev', String(rev), '-w', 'json']);
    const etcdHash = JSON.parse(fromEtcd.stdout)[0].HashKV.hash;
    const keyraftHash = JSON.parse(fromKeyraft.stdout)[0].HashKV.hash;
    console.log(`    HashKV at revision ${rev || current}: etcd ${etcdHash}, keyraft ${keyraftHash}`);
    assert.is(keyraftHash, etcdHash, `HashKV at --rev ${rev}`);
  }
  await same(servers, ['compaction', '--physical', String(current - 3)]);
  for (const rev of [0, current - 2]) {
    const [fromEtcd, fromKeyraft] = await both(servers, ['endpoint', 'hashkv', '--rev', String(rev), '-w', 'json']);
    assert.is(JSON.parse(fromKeyraft.stdout)[0].HashKV.hash, JSON.parse(fromEtcd.stdout)[0].HashKV.hash, `after compaction, HashKV at --rev ${rev}`);
    assert.is(JSON.parse(fromKeyraft.stdout)[0].HashKV.compact_revision, current - 3);
  }
  await same(servers, ['endpoint', 'hashkv']);
  await same(servers, ['endpoint', 'hashkv', '-w', 'table']);
  await same(servers, ['endpoint', 'hashkv', '-w', 'json']);
  await same(servers, ['endpoint', 'hashkv', '--rev', String(current - 4)]);
  await same(servers, ['alarm', 'list']);
  await same(servers, ['alarm', 'list', '-w', 'json']);
  await same(servers, ['alarm', 'disarm']);
  await same(servers, ['defrag']);
  await same(servers, ['alarm', 'list', 'extra']);
  // move-leader on a lone member: to itself (etcd answers at once), to a stranger, bad arguments.
  // The hex id from `endpoint status` (JSON numbers would lose the low bits of a 64-bit id).
  const selfIds = await Promise.all(servers.map(async (s) => (await etcdctl(s.clientPort, ['endpoint', 'status'])).stdout.split(', ')[1]!));
  const [etcdSelf, keyraftSelf] = await Promise.all(servers.map((s, i) => etcdctl(s.clientPort, ['move-leader', selfIds[i]!])));
  assert.is(normalize(keyraftSelf!, servers[1]), normalize(etcdSelf!, servers[0]));
  assert.is(keyraftSelf!.stdout, `Leadership transferred from ${selfIds[1]} to ${selfIds[1]}\n`);
  await same(servers, ['move-leader', '1234abcd']);
  await same(servers, ['move-leader']);
  await same(servers, ['move-leader', 'xyz']);
});

needBoth.test(test, 'NOSPACE with a 4 MiB quota: refused put, alarm, reads, delete, compaction, defrag, disarm as etcd', async () => {
  const quota = ['--quota-backend-bytes', String(4 * 1024 * 1024)];
  const servers: [ServerProcess, ServerProcess] = await Promise.all([startEtcd({ args: quota }), startKeyraft({ args: quota })]);
  const value = 'v'.repeat(256 * 1024);
  for (const server of servers) {
    let refused = false;
    for (let i = 0; i < 200 && !refused; i++) {
      const put = await etcdctl(server.clientPort, ['put', `k${i % 4}`], value);
      if (put.code !== 0) {
        assert.match(put.stderr, 'etcdserver: mvcc: database space exceeded');
        refused = true;
      }
    }
    assert.ok(refused, 'a put was refused within 200 puts of 256 KiB');
    // The alarm is applied through the log: wait until it is listed (etcd lists it at once).
    for (let i = 0; i < 100 && (await etcdctl(server.clientPort, ['alarm', 'list'])).stdout === ''; i++) await new Promise((r) => setTimeout(r, 50));
  }
  await same(servers, ['put', 'x', 'y']);
  await same(servers, ['alarm', 'list']);
  await same(servers, ['endpoint', 'status']);
  await same(servers, ['get', 'k2', '--keys-only']);
  await same(servers, ['del', 'k1']);
  await same(servers, ['txn'], '\nput t 1\n\n\n');
  const revisions = await Promise.all(servers.map(async (s) => JSON.parse((await etcdctl(s.clientPort, ['get', 'k0', '-w', 'json'])).stdout).header.revision as number));
  const [etcdCompact, keyraftCompact] = await Promise.all(servers.map((s, i) => etcdctl(s.clientPort, ['compaction', '--physical', String(revisions[i])])));
  assert.is(normalize(keyraftCompact!, servers[1]), normalize(etcdCompact!, servers[0]));
  await same(servers, ['defrag']);
  await same(servers, ['alarm', 'disarm']);
  await same(servers, ['put', 'x', 'y']);
  await same(servers, ['alarm', 'list']);
  await same(servers, ['get', 'x', '--print-value-only']);
});

test.run();
