/**
 * Watch through etcdctl 3.4 (and keyraftctl), side by side with a real etcd 3.4: the same writes
 * go to both (fresh stores, so revisions match), then the same watch commands read history from
 * a revision and must print the same (ids normalized): key, --prefix, a range, --prev-kv,
 * -w json, interactive mode with `progress`, `-- command`, and a watch from a compacted revision.
 * keyraftctl against keyraft must print what etcdctl prints against etcd.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import { etcdctl, keyraftctlBin, killAll, normalizeIds, startEtcd, startKeyraft, type ServerProcess } from './harness.js';
import { runUntil } from './watch-process.js';

const test = suite('watch-etcdctl');
const need = needEtcd('integration/watch-etcdctl', ['etcd', 'etcdctl']);
let keyraft: ServerProcess;
let etcd: ServerProcess;

const writes: Array<[string[], string?]> = [
  [['put', 'foo', 'bar']],
  [['put', 'foo', 'baz']],
  [['put', 'foo/a', '1']],
  [['del', 'foo']],
  [['txn'], '\nput foo/b 2\nput foo/c 3\ndel foo/a\n\n\n'],
  [['put', 'other', 'x']],
  [['del', 'foo/', '--prefix']],
  [['put', 'foo', 'end']],
  [['put', 'foo/zz', 'end']],
];

test.before(async () => {
  if (!need.found) return;
  [keyraft, etcd] = await Promise.all([startKeyraft(), startEtcd()]);
  for (const [args, input] of writes) {
    for (const server of [keyraft, etcd]) {
      const r = await etcdctl(server.clientPort, args, input);
      assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
  }
});

test.after(async () => {
  await killAll();
});

/** etcdctl (or keyraftctl with `tool`) watch on `server` until `until` holds in its output. */
function watch(server: ServerProcess, args: string[], until: (out: string) => boolean, options: { input?: string; tool?: 'keyraftctl'; script?: Array<{ when: (out: string) => boolean; send: string }> } = {}) {
  const command = options.tool === 'keyraftctl' ? process.execPath : need.path('etcdctl');
  const prefix = options.tool === 'keyraftctl' ? [keyraftctlBin] : [];
  return runUntil(command, [...prefix, `--endpoints=127.0.0.1:${server.clientPort}`, 'watch', ...args], { input: options.input, script: options.script, until: (out, err) => until(out + err) });
}

type Script = Array<{ when: (out: string) => boolean; send: string }>;
/**
 * The last event (put foo/zz=end) printed whole: its key and its value line. The key alone is not
 * enough: a watcher may write the value line separately, and stopping between the two made the
 * outputs differ by the last line (seen once under Node 22 on CI's machine).
 */
const lastEventPrinted = (o: string) => o.includes('foo/zz\nend\n');

const cases: Array<{ name: string; args: string[]; until: (out: string) => boolean; input?: string; script?: Script }> = [
  { name: 'a key from revision 2', args: ['foo', '--rev', '2'], until: (o) => o.includes('end') },
  { name: '--prefix with --prev-kv', args: ['foo', '--prefix', '--rev', '2', '--prev-kv'], until: lastEventPrinted },
  { name: 'a range [foo, foo/b)', args: ['foo', 'foo/b', '--rev', '2'], until: (o) => o.includes('end') },
  { name: '-w json', args: ['foo', '--prefix', '--rev', '2', '-w', 'json'], until: (o) => o.includes(Buffer.from('foo/zz').toString('base64')) },
  { name: 'from key "" with --prefix (every key)', args: ['', '--prefix', '--rev', '6'], until: lastEventPrinted },
  {
    name: 'interactive: watch, then progress',
    args: ['-i'],
    // progress only once history is printed: etcd 3.4.23 answers a progress request at once even
    // while a watcher catches up (its bug #15220), so asking earlier would compare timing.
    input: 'watch foo --prefix --rev 2\n',
    script: [{ when: (o) => o.includes('foo/zz'), send: 'progress\n' }],
    until: (o) => o.includes('progress notify'),
  },
  {
    name: '-- command runs per event with ETCD_WATCH_* set',
    args: ['foo', '--rev', '2', '--', 'sh', '-c', 'echo "cmd $ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"'],
    until: (o) => o.includes('"end"'),
  },
];

for (const c of cases) {
  need.test(test, `etcdctl watch ${c.name}: keyraft prints what etcd prints`, async () => {
    const [k, e] = await Promise.all([watch(keyraft, c.args, c.until, { input: c.input, script: c.script }), watch(etcd, c.args, c.until, { input: c.input, script: c.script })]);
    assert.ok(c.until(e.stdout + e.stderr), `etcd never got there: ${e.stdout}${e.stderr}`);
    assert.is(normalizeIds(k.stdout), normalizeIds(e.stdout));
    assert.is(k.stderr, e.stderr);
  });

  need.test(test, `keyraftctl watch ${c.name} on keyraft prints what etcdctl prints on etcd`, async () => {
    const [k, e] = await Promise.all([watch(keyraft, c.args, c.until, { input: c.input, script: c.script, tool: 'keyraftctl' }), watch(etcd, c.args, c.until, { input: c.input, script: c.script })]);
    assert.is(normalizeIds(k.stdout), normalizeIds(e.stdout));
    assert.is(k.stderr, e.stderr);
  });
}

need.test(test, 'a watch from a compacted revision is canceled as etcd: the message and exit code 5', async () => {
  for (const server of [keyraft, etcd]) {
    const r = await etcdctl(server.clientPort, ['compaction', '5']);
    assert.is(r.code, 0, r.stderr);
  }
  const [k, e] = await Promise.all([
    watch(keyraft, ['foo', '--rev', '2'], () => false),
    watch(etcd, ['foo', '--rev', '2'], () => false),
  ]);
  assert.ok(e.exited && k.exited, 'the watch did not end by itself');
  assert.is(e.code, 5);
  assert.is(k.code, e.code);
  assert.match(e.stderr, 'watch was canceled (etcdserver: mvcc: required revision has been compacted)');
  assert.is(k.stderr, e.stderr);
  assert.is(k.stdout, e.stdout);
  const kctl = await watch(keyraft, ['foo', '--rev', '2'], () => false, { tool: 'keyraftctl' });
  assert.is(kctl.code, 5);
  assert.is(kctl.stderr, e.stderr);
});

test.run();
