/**
 * etcdctl 3.4 against keyraft, side by side with a real etcd 3.4: the same command sequence runs
 * against both, and the outputs must match once ids, ports and sizes are normalized. Both stores
 * start at revision 1, so revisions in the outputs must match exactly. The comparison needs etcd
 * and etcdctl, the known-output test etcdctl only; each is skipped with its reason when its
 * tools are missing (../etcd-binaries.ts).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import {
  etcdctl, killAll, normalizeIds, startEtcd, startKeyraft, type CommandResult, type ServerProcess,
} from './harness.js';

const test = suite('etcdctl-compat');
let keyraft: ServerProcess;
let etcd: ServerProcess;
const needBoth = needEtcd('integration/etcdctl-compat', ['etcd', 'etcdctl']);
const needEtcdctl = needEtcd('integration/etcdctl-compat', ['etcdctl']);

// [args, stdin?]: each step runs on both servers in order.
const steps: Array<[string[], string?]> = [
  [['put', 'foo', 'bar']],
  [['put', 'foo1', 'bar1']],
  [['put', 'foo2', 'bar2']],
  [['put', 'zoo', 'zebra']],
  [['put', 'foo', 'baz', '--prev-kv']],
  [['get', 'foo']],
  [['get', 'nothere']],
  [['get', 'foo', '-w', 'json']],
  [['get', 'foo', '--prefix']],
  [['get', 'foo', '--prefix', '--limit', '2']],
  [['get', 'foo', '--prefix', '--limit', '2', '-w', 'json']],
  [['get', 'foo1', '--from-key']],
  [['get', 'foo', 'foo2']],
  [['get', 'foo', '--rev', '2']],
  [['get', 'foo', '--prefix', '--sort-by', 'MODIFY', '--order', 'DESCEND']],
  [['get', 'foo', '--prefix', '--sort-by', 'VALUE', '--order', 'ASCEND']],
  [['get', 'foo', '--prefix', '--sort-by', 'CREATE', '--order', 'DESCEND']],
  [['get', 'foo', '--prefix', '--sort-by', 'VERSION']],
  [['get', 'foo', '--prefix', '--keys-only']],
  [['get', 'foo', '--prefix', '--count-only', '-w', 'json']],
  [['get', 'foo', '--prefix', '--print-value-only']],
  [['get', 'foo', '--prefix', '-w', 'table']],
  [['get', 'foo', '--consistency', 's']],
  [['get', '', '--prefix', '--rev', '3']],
  [['del', 'foo2']],
  [['del', 'nothere']],
  [['del', 'foo', '--prefix', '--prev-kv']],
  [['put', 'k', 'v1']],
  [['txn'], 'value("k") = "v1"\n\nput k v2\nget k\n\nput k never\n\n'],
  [['txn'], 'version("k") > "5"\n\nput k never\n\nget k\ndel zoo\n\n'],
  [['txn', '-w', 'json'], 'mod("k") < "100"\ncreate("k") != "0"\n\nget k --prefix\n\n\n'],
  [['get', 'k', '-w', 'json']],
  [['compaction', '5']],
  [['get', 'foo', '--rev', '3']],
  [['get', 'k', '--rev', '5']],
  [['get', 'k', '--rev', '1000']],
  [['compaction', '3']],
  [['put', '', 'empty-key']],
  [['member', 'list']],
  [['member', 'list', '-w', 'json']],
  [['member', 'list', '-w', 'table']],
  [['endpoint', 'status']],
  [['endpoint', 'status', '-w', 'json']],
  [['endpoint', 'health']],
];

function normalize(result: CommandResult, server: ServerProcess): string {
  const text = `exit=${result.code}\n--stdout--\n${result.stdout}\n--stderr--\n${result.stderr}`;
  // Client ids first: normalizeIds would otherwise eat part of the uuid.
  return normalizeIds(text.replace(/endpoint:\/\/client-[0-9a-f-]+\//g, 'endpoint://client-<uuid>/'))
    .replaceAll(String(server.clientPort), '<client-port>')
    .replaceAll(String(server.peerPort), '<peer-port>')
    // endpoint status: db size and raft indexes differ by design (etcd logs membership entries).
    .replace(/(\d+(\.\d+)?) (kB|MB|B)\b/g, '<size>')
    .replace(/"(dbSize|dbSizeInUse|raftIndex|raftAppliedIndex)":\d+/g, '"$1":<n>')
    .replace(/(<size>, (true|false), (true|false), \d+), \d+, \d+/g, '$1, <index>, <index>')
    .replace(/\| +\d+ \| +\d+ \| +\|/g, '| <index> | <index> | |')
    .replace(/took = [0-9.]+(µs|ms|s)/g, 'took = <t>')
    // etcdctl logs a timestamped warning line for some errors; compare the message, not the time.
    .replace(/^\{"level":"warn","ts":"[^"]+",/gm, '{"level":"warn",')
    .replace(/"caller":"[^"]+",?/g, '')
    // Table columns are as wide as their widest cell, and ids print without leading zeros.
    .replace(/-{2,}/g, '--')
    .replace(/ {2,}/g, ' ');
}

test.before(async () => {
  if (!needEtcdctl.found) return;
  if (needBoth.found) [keyraft, etcd] = await Promise.all([startKeyraft(), startEtcd()]);
  else keyraft = await startKeyraft();
});

test.after(async () => {
  await killAll();
});

needBoth.test(test, 'etcdctl sees the same outputs from keyraft as from etcd 3.4', async () => {
  for (const [args, input] of steps) {
    const [fromEtcd, fromKeyraft] = [await etcdctl(etcd.clientPort, args, input), await etcdctl(keyraft.clientPort, args, input)];
    const expected = normalize(fromEtcd, etcd);
    const actual = normalize(fromKeyraft, keyraft);
    assert.is(actual, expected, `etcdctl ${args.join(' ')}${input ? ` <<< ${JSON.stringify(input)}` : ''}`);
  }
});

// Its own key, and revisions read back: runs the same after the comparison above or without it.
needEtcdctl.test(test, 'known outputs, independent of etcd', async () => {
  for (const value of ['v1', 'v2']) assert.is((await etcdctl(keyraft.clientPort, ['put', 'known', value])).stdout, 'OK\n');
  const get = await etcdctl(keyraft.clientPort, ['get', 'known', '--print-value-only']);
  assert.is(get.stdout, 'v2\n');
  const json = JSON.parse((await etcdctl(keyraft.clientPort, ['get', 'known', '-w', 'json'])).stdout) as { header: { revision: number }; kvs: { version: number }[] };
  assert.is(json.kvs[0]!.version, 2);
  const revision = json.header.revision;
  assert.is((await etcdctl(keyraft.clientPort, ['compaction', String(revision)])).stdout, `compacted revision ${revision}\n`);
  const bad = await etcdctl(keyraft.clientPort, ['get', 'known', '--rev', String(revision - 1)]);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, 'etcdserver: mvcc: required revision has been compacted');
  const health = await etcdctl(keyraft.clientPort, ['endpoint', 'health']);
  assert.is(health.code, 0);
  // etcdctl 3.4 prints the health line on stderr.
  assert.match(health.stderr, /is healthy: successfully committed proposal/);
});

test.run();
