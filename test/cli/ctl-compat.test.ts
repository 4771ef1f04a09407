/**
 * keyraftctl against the real etcdctl 3.4.23, both talking to the same real etcd 3.4.23: for each
 * command and flag, stdout, the error lines on stderr and the exit code must match. Only what
 * legitimately differs is normalized: durations ("took"), and for commands that write, the
 * revision numbers the other tool's earlier write moved on. etcdctl's JSON warning logs on
 * stderr are dropped, as is the duplicate "Error:" line cobra prints for usage errors.
 *
 * Most keyraftctl runs go through runKeyraftctl in-process (the binary's own code path minus
 * node start-up, to keep the suite fast); the `binary` suite spawns dist/src/cli/keyraftctl.js.
 * Every test here needs both real tools: without them each is skipped with its reason
 * (../etcd-binaries.ts); keyraftctl against keyraft runs in integration/keyraftctl-on-keyraft.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import { EtcdFixture, freePort, runInProcess, runProgram, type RunResult } from './etcd-fixture.js';

interface Case {
  args: string[];
  input?: string | Buffer;
  /** etcdctl commands run before each tool's run, so both start from the same state. */
  setup?: string[][];
  /** The command writes: normalize revisions and versions that the other tool's run moved. */
  writes?: boolean;
  /** The output holds durations (endpoint health). */
  took?: boolean;
  /** Usage errors print each tool's own help text on stdout: compare only stderr and code. */
  skipStdout?: boolean;
  /**
   * The output holds etcd's db size in use, which moves on its own: etcd's backend commits its
   * write batch every 100 ms and bbolt's free pages change with it, so a status taken by one tool
   * can differ from the other's a moment later. Run the pair again until both agree (a few tries).
   */
  drifts?: boolean;
}

let fx: EtcdFixture;
const need = needEtcd('cli/ctl-compat', ['etcd', 'etcdctl']);

/** Durations differ from run to run; in a table they also change column widths and rules. */
function normalizeTook(text: string): string {
  return text
    .replace(/[0-9.]+(?:ns|µs|ms|s)\b/g, '<d>')
    .replace(/ +/g, ' ')
    .replace(/-+/g, '-');
}

function normalizeRevisions(text: string): string {
  return text
    .replace(/"(revision|create_revision|mod_revision|version|Revision|CreateRevision|ModRevision|Version|PrevCreateRevision|PrevModRevision|PrevVersion)"( : |:)\d+/g, '"$1"$2<n>');
}

/** stderr as a set of meaningful lines: no etcdctl JSON logs, no repeated lines. */
function normalizeStderr(text: string): string {
  const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('{"level"'));
  return [...new Set(lines)].join('\n');
}

async function runBoth(c: Case): Promise<[theirs: RunResult, ours: RunResult]> {
  const runs: RunResult[] = [];
  for (const tool of ['etcdctl', 'keyraftctl'] as const) {
    for (const s of c.setup ?? []) {
      const r = await fx.etcdctl(s);
      assert.is(r.code, 0, `setup ${s.join(' ')}: ${r.stderr}`);
    }
    runs.push(tool === 'etcdctl' ? await fx.etcdctl(c.args, c.input ?? '') : await fx.keyraftctl(c.args, c.input ?? ''));
  }
  return runs as [RunResult, RunResult];
}

async function compare(c: Case): Promise<void> {
  const took = (s: string) => (c.took ? normalizeTook(s) : s);
  const norm = (s: string) => (c.writes ? normalizeRevisions(took(s)) : took(s));
  let [theirs, ours] = await runBoth(c);
  for (let attempt = 1; c.drifts && attempt < 5 && norm(ours.stdout) !== norm(theirs.stdout); attempt++) {
    [theirs, ours] = await runBoth(c);
  }
  const label = `${c.args.join(' ')}${c.input !== undefined ? ` <<< ${JSON.stringify(c.input)}` : ''}`;
  if (!c.skipStdout) assert.is(norm(ours.stdout), norm(theirs.stdout), `stdout of ${label}`);
  assert.is(took(normalizeStderr(ours.stderr)), took(normalizeStderr(theirs.stderr)), `stderr of ${label}`);
  assert.is(ours.code, theirs.code, `exit code of ${label}`);
}

async function etcdctlOk(args: string[]): Promise<string> {
  const r = await fx.etcdctl(args);
  assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function currentRevision(): Promise<number> {
  const json = JSON.parse(await etcdctlOk(['get', 'foo', '-w', 'json'])) as { header: { revision: number } };
  return json.header.revision;
}

const kv = suite('keyraftctl vs etcdctl: get, put, del');

kv.before(async () => {
  if (!need.found) return;
  fx = await EtcdFixture.start({ etcd: need.path('etcd'), etcdctl: need.path('etcdctl') });
  for (const [k, v] of [['foo', 'bar'], ['a', '1'], ['b', '22'], ['c', '3'], ['k1', 'v1'], ['k2', 'v2'], ['k3', 'v3'], ['foo', 'bar2'], ['foo', 'bar'], ['q<&>', 'x\ty']]) {
    await etcdctlOk(['put', k!, v!]);
  }
});

const readCases: Case[] = [
  { args: ['get', 'foo'] },
  { args: ['get', 'foo', '-w', 'json'] },
  { args: ['get', 'foo', '-w', 'fields'] },
  { args: ['get', 'foo', '-w', 'protobuf'] },
  { args: ['get', 'foo', '--hex'] },
  { args: ['get', 'foo', '--print-value-only'] },
  { args: ['get', 'a', 'c'] },
  { args: ['get', 'a', 'c', '-w', 'json'] },
  { args: ['get', 'k', '--prefix'] },
  { args: ['get', '--prefix', 'k', '-w', 'json'] },
  { args: ['get', '', '--prefix', '--keys-only'] },
  { args: ['get', '', '--from-key', '--limit', '2'] },
  { args: ['get', 'k', '--prefix', '--limit=1', '-w', 'json'] },
  { args: ['get', 'a', '--from-key', '--sort-by=VALUE', '--order=DESCEND'] },
  { args: ['get', 'a', '--from-key', '--sort-by=modify', '-w', 'json'] },
  { args: ['get', 'a', '--from-key', '--sort-by', 'create', '--order', 'ascend'] },
  { args: ['get', 'a', '--from-key', '--sort-by=version', '--order=DESCEND', '--keys-only'] },
  { args: ['get', 'k', '--prefix', '--order=DESCEND'] },
  { args: ['get', 'foo', '--consistency=s', '-w', 'json'] },
  { args: ['get', 'foo', '--rev', '2'] },
  { args: ['get', 'q<&>', '-w', 'json'] },
  { args: ['get', 'q<&>', '-w', 'fields'] },
  { args: ['get', 'nokey'] },
  { args: ['get', 'nokey', '-w', 'json'] },
  { args: ['-w', 'json', '--hex', 'get', 'b'] },
  { args: ['get', 'k1', '-wjson'] },
  { args: ['get', 'k1', '-w=fields'] },
];

need.test(kv, 'reads match etcdctl byte for byte', async () => {
  for (const c of readCases) await compare(c);
});

const badReadCases: Case[] = [
  { args: ['get'] },
  { args: ['get', 'foo', '--prefix', '--from-key'] },
  { args: ['get', 'foo', 'z', '--prefix'] },
  { args: ['get', 'foo', '--sort-by=FOO'] },
  { args: ['get', 'foo', '--order=x'] },
  { args: ['get', 'foo', '--consistency=x'] },
  { args: ['-w', 'xml', 'get', 'foo'] },
  { args: ['get', 'foo', '-w', 'table'] },
  { args: ['get', 'foo', '-w', 'json', '--print-value-only'] },
  { args: ['get', 'foo', '--rev', '100000'] },
  { args: ['get', 'foo', '--rev', 'abc'], skipStdout: true },
  { args: ['get', 'foo', '--limit'], skipStdout: true },
  { args: ['get', 'foo', '--bogus'], skipStdout: true },
  { args: ['get', 'foo', '-x'], skipStdout: true },
  { args: ['get', 'foo', '--prefix=maybe'], skipStdout: true },
];

need.test(kv, 'bad get command lines fail with etcdctl\'s message and exit code', async () => {
  for (const c of badReadCases) await compare(c);
});

const writeCases: Case[] = [
  { args: ['put', 'p1', 'v1'], writes: true },
  { args: ['put', 'p1', 'v1', '--prev-kv'], writes: true },
  { args: ['put', '--prev-kv', 'p1', 'v1', '-w', 'json'], writes: true },
  { args: ['put', 'p1', 'v1', '--prev-kv', '-w', 'fields'], writes: true },
  { args: ['put', 'p1', 'v1', '-w', 'protobuf'], writes: true, skipStdout: true },
  { args: ['put', 'p2', '--ignore-value', '--prev-kv'], setup: [['put', 'p2', 'keep']], writes: true },
  { args: ['put', 'p3'], input: 'from stdin\nsecond line\n', writes: true },
  { args: ['get', 'p3', '-w', 'json'], writes: true },
  { args: ['put', 'p1', 'x', '--hex', '--prev-kv'], setup: [['put', 'p1', 'v1']], writes: true },
  { args: ['put', 'p1', 'v', '-w', 'table'], writes: true },
  { args: ['put'] },
  { args: ['put', 'p4'] },
  { args: ['put', 'p1', 'v', '--ignore-value'] },
  { args: ['put', 'p1', 'v', '--lease=zz'] },
  { args: ['put', 'p1', 'v', '--lease=1234'] },
  { args: ['del', 'd1', '--prev-kv'], setup: [['put', 'd1', 'x']], writes: true },
  { args: ['del', 'd', '--prefix', '-w', 'json'], setup: [['put', 'd1', 'x'], ['put', 'd2', 'y']], writes: true },
  { args: ['del', 'd', '--prefix', '--prev-kv', '-w', 'fields'], setup: [['put', 'd1', 'x'], ['put', 'd2', 'y']], writes: true },
  { args: ['del', 'd1', 'd3'], setup: [['put', 'd1', 'x'], ['put', 'd2', 'y']], writes: true },
  { args: ['del', 'zz', '--from-key', '--prev-kv'], setup: [['put', 'zz1', 'x'], ['put', 'zzz', 'y']], writes: true },
  { args: ['del', 'nokey'], writes: true },
  { args: ['del'] },
  { args: ['del', 'a', 'b', 'c'] },
  { args: ['del', 'a', '--prefix', '--from-key'] },
  { args: ['del', 'a', 'b', '--prefix'] },
];

need.test(kv, 'writes and their errors match etcdctl', async () => {
  for (const c of writeCases) await compare(c);
});

need.test(kv, 'binary values: stdin bytes stored as is, printed as etcdctl does', async () => {
  const bytes = Buffer.from([0x66, 0xff, 0x00, 0xc3, 0xa9, 0x0a]);
  await compare({ args: ['put', 'binv', '--prev-kv', '-w', 'json'], input: bytes, setup: [['put', 'binv', 'x']], writes: true });
  // The bytes keyraftctl stored, read back by etcdctl.
  const stored = JSON.parse((await fx.etcdctl(['get', 'binv', '-w', 'json'])).stdout) as { kvs: { value: string }[] };
  assert.is(stored.kvs[0]!.value, bytes.toString('base64'));
  await compare({ args: ['get', 'binv', '-w', 'fields'] });
  await compare({ args: ['get', 'binv', '--hex'] });
  await compare({ args: ['get', 'binv', '-w', 'json'] });
});

need.test(kv, 'put with a lease attaches it', async () => {
  const grant = await etcdctlOk(['lease', 'grant', '600']);
  const id = /lease ([0-9a-f]+) granted/.exec(grant)?.[1];
  assert.ok(id, grant);
  await compare({ args: ['put', 'leased', 'v', `--lease=${id}`], writes: true });
  await compare({ args: ['get', 'leased', '-w', 'json'] });
  await compare({ args: ['put', 'leased', 'v2', '--ignore-lease', '--prev-kv', '-w', 'json'], setup: [['put', 'leased', 'v', `--lease=${id}`]], writes: true });
  // Read the id from the raw JSON: JSON.parse would round a 64-bit id to a double.
  const raw = (await fx.keyraftctl(['get', 'leased', '-w', 'json'])).stdout;
  assert.is(BigInt(/"lease":(\d+)/.exec(raw)![1]!).toString(16).padStart(16, '0'), id);
});

kv.run();

const txn = suite('keyraftctl vs etcdctl: txn');

const txnCases: Case[] = [
  { args: ['txn'], input: 'value("foo") = "bar"\nversion("foo") > "1"\n\nget foo\nget k --prefix --keys-only\ndel nokey\n\nget k1\n\n' },
  { args: ['txn', '-w', 'json'], input: 'value("foo") = "bar"\n\nget foo\ndel nokey\n\nget k1\n\n' },
  { args: ['txn', '-w', 'json'], input: 'value("foo") = "zz"\n\nget foo\n\nget foo --prefix\nget a --from-key --limit=1\n\n' },
  { args: ['txn', '-w', 'fields'], input: 'value("foo") = "zz"\n\nget foo\n\nget foo --prefix\n\n' },
  { args: ['txn', '-i'], input: 'value("foo") = "zz"\n\nget foo\n\nget foo --prefix\n\n' },
  { args: ['txn', '--interactive'], input: '\n\n\n' },
  { args: ['txn'], input: 'mod("foo") > "1"\nc("foo") < "100000"\nver("foo") != "0"\ncreate("foo") = "-1"\n\n\n\n' },
  { args: ['txn'], input: 'm("foo") > "1"\ncreate("foo") > "1"\n\n\n\n' },
  { args: ['txn'], input: 'value("f\\x6fo") = "b\\x61r"\nvalue(`foo`) = `bar`\n\n\n\n' },
  { args: ['txn'], input: 'value("foo") = "bar" trailing words\n\n\n\n' },
  { args: ['txn'], input: 'version("foo") = "+3"\n\n\n\n' },
  { args: ['txn'], input: 'value("t1") = ""\n\nput t1 one --prev-kv\nput "t 2" "two \\"quoted\\""\nget "t 2"\ndel t1 --prev-kv\n\n\n', setup: [['del', 't', '--prefix']], writes: true },
  { args: ['txn', '-w', 'json'], input: 'version("t1") = "0"\n\nput t1 one\nput t2 two --prev-kv\ndel t --prefix --prev-kv\n\n\n', setup: [['del', 't', '--prefix']], writes: true },
  { args: ['txn', '-w', 'protobuf'], input: '\n\nget foo\n\n', skipStdout: true },
  { args: ['txn', '-w', 'table'], input: '\n\nget foo\n\n' },
  { args: ['txn', 'x'], input: '\n\n\n' },
];

const badTxnCases: Case[] = [
  { args: ['txn'], input: 'bad compare\n\n\n\n' },
  { args: ['txn'], input: 'value("foo" = "bar"\n\n\n\n' },
  { args: ['txn'], input: 'foo("foo") = "bar"\n\n\n\n' },
  { args: ['txn'], input: 'version("foo") = "abc"\n\n\n\n' },
  { args: ['txn'], input: 'version("foo") = " 5"\n\n\n\n' },
  { args: ['txn'], input: 'mod("foo") > "99999999999999999999"\n\n\n\n' },
  { args: ['txn'], input: 'value(foo) = "bar"\n\n\n\n' },
  { args: ['txn'], input: 'value("foo")="bar"\n\n\n\n' },
  { args: ['txn'], input: 'value("foo") ="bar"\n\n\n\n' },
  { args: ['txn'], input: 'value("foo")= "bar"\n\n\n\n' },
  { args: ['txn'], input: 'value( "foo" ) = "bar"\n\n\n\n' },
  { args: ['txn'], input: 'value("foo") = "bar"\n\nput k v\n\n' },
  { args: ['txn'], input: 'value("foo") = "bar"' },
  { args: ['txn'], input: '' },
  { args: ['txn'], input: '\n\nput k\n\n\n' },
  { args: ['txn'], input: '\n\nfoo k\n\n\n' },
  { args: ['txn'], input: '\n\nget\n\n\n' },
  { args: ['txn'], input: '\n\nput k v --lease=zz\n\n\n' },
  { args: ['txn'], input: '\n\nget a --sort-by=x\n\n\n' },
  { args: ['txn'], input: '\n\nput a 1\nput a 2\n\n\n' },
];

need.test(txn, 'txn output matches etcdctl', async () => {
  for (const c of txnCases) await compare(c);
});

need.test(txn, 'bad txn input fails with etcdctl\'s message and exit code', async () => {
  for (const c of badTxnCases) await compare(c);
  // A bad flag on a request line: etcdctl also prints the op's usage to stderr, we print only the error.
  const r = await fx.keyraftctl(['txn'], '\n\nget k --bogus\n\n\n');
  assert.is(r.stderr, 'Error: invalid txn request: get k --bogus\n');
  assert.is(r.code, 3);
});

need.test(txn, 'lease compares take a hex lease id (etcdctl 3.4 panics on them)', async () => {
  const grant = await etcdctlOk(['lease', 'grant', '600']);
  const id = /lease ([0-9a-f]+) granted/.exec(grant)![1]!;
  await etcdctlOk(['put', 'lk', 'v', `--lease=${id}`]);
  const ok = await fx.keyraftctl(['txn'], `lease("lk") = "${id}"\n\nget lk\n\n\n`);
  assert.is(ok.stdout, 'SUCCESS\n\nlk\nv\n');
  assert.is(ok.code, 0);
  // --print-value-only does not apply inside a txn (etcdctl's txn printer ignores it).
  const other = await fx.keyraftctl(['txn'], `lease("lk") = "1"\n\n\nget lk --print-value-only\n\n`);
  assert.is(other.stdout, 'FAILURE\n\nlk\nv\n');
  const bad = await fx.keyraftctl(['txn'], 'lease("lk") = "xyz"\n\n\n\n');
  assert.is(bad.stderr, 'Error: invalid txn compare request: lease("lk") = "xyz"\n');
  assert.is(bad.code, 3);
  const op = await fx.keyraftctl(['txn'], 'value("lk") == "v"\n\n\n\n');
  assert.match(op.stderr, /^Error: invalid txn compare request: value\("lk"\) == "v" \(unknown operator ==\)\n$/);
  assert.is(op.code, 3);
});

txn.run();

const cluster = suite('keyraftctl vs etcdctl: compaction, member, endpoint, version');

need.test(cluster, 'member list and endpoint status in every format', async () => {
  for (const w of ['simple', 'json', 'table', 'fields']) {
    await compare({ args: ['member', 'list', '-w', w] });
    await compare({ args: ['endpoint', 'status', '-w', w], drifts: true });
    await compare({ args: ['endpoint', 'health', '-w', w], took: true });
  }
  await compare({ args: ['endpoint', 'status', '--cluster'], drifts: true });
  await compare({ args: ['endpoint', 'health', '--cluster', '-w', 'json'], took: true });
  await compare({ args: ['endpoint', 'status', '-w', 'protobuf'], drifts: true });
});

need.test(cluster, 'endpoint hashkv, alarm list|disarm, defrag, move-leader in every format', async () => {
  for (const w of ['simple', 'json', 'table', 'fields', 'protobuf']) {
    await compare({ args: ['endpoint', 'hashkv', '-w', w] });
    // etcdctl 3.4 dereferences the absent header of an Alarm answer under -w fields and panics.
    if (w !== 'fields') await compare({ args: ['alarm', 'list', '-w', w] });
  }
  const fields = await fx.keyraftctl(['alarm', 'list', '-w', 'fields'], '');
  assert.equal([fields.code, fields.stdout], [0, ''], 'keyraftctl prints the (no) alarms without a header instead');
  await compare({ args: ['endpoint', 'hashkv', '--rev', '2'] });
  await compare({ args: ['endpoint', 'hashkv', '--rev', '100000'] });
  await compare({ args: ['endpoint', 'hashkv', '--cluster'] });
  await compare({ args: ['alarm', 'disarm'] });
  await compare({ args: ['alarm', 'disarm', '-w', 'json'] });
  await compare({ args: ['alarm', 'list', 'extra'] });
  await compare({ args: ['alarm', 'disarm', 'extra'] });
  await compare({ args: ['defrag'] });
  await compare({ args: ['defrag', '--cluster'] });
  // The hex id from `endpoint status` (a JSON number would lose the low bits of a 64-bit id).
  const self = (await fx.etcdctl(['endpoint', 'status'])).stdout.split(', ')[1]!;
  assert.match((await fx.keyraftctl(['move-leader', self], '')).stdout, `Leadership transferred from ${self} to ${self}\n`);
  for (const w of ['simple', 'json', 'fields', 'table', 'protobuf']) await compare({ args: ['move-leader', self, '-w', w] });
  await compare({ args: ['move-leader', '1234abcd'] });
  await compare({ args: ['move-leader'] });
  await compare({ args: ['move-leader', 'zz'] });
  await compare({ args: ['move-leader', 'abc'] });
});

need.test(cluster, 'compaction', async () => {
  await etcdctlOk(['put', 'cmp', '1']);
  const rev = await currentRevision();
  const ours = await fx.keyraftctl(['compaction', String(rev - 1)]);
  assert.is(ours.stdout, `compacted revision ${rev - 1}\n`);
  assert.is(ours.code, 0);
  await compare({ args: ['compaction', String(rev - 1)] });
  await compare({ args: ['compaction', String(rev + 1000)] });
  await compare({ args: ['get', 'foo', '--rev', '1'] });
  await etcdctlOk(['put', 'cmp', '2']);
  const physical = await fx.keyraftctl(['compaction', '--physical', String(rev), '-w', 'json']);
  assert.is(physical.stdout, `compacted revision ${rev}\n`);
  await compare({ args: ['compaction'] });
  await compare({ args: ['compaction', 'abc'] });
  await compare({ args: ['compaction', '1', '2'] });
});

need.test(cluster, 'get --count-only (etcdctl 3.5; 3.4 lacks it) prints the count with -w fields only', async () => {
  const r = await fx.keyraftctl(['get', 'k', '--prefix', '--count-only', '-w', 'fields']);
  assert.match(r.stdout, /^"ClusterID" : \d+\n"MemberID" : \d+\n"Revision" : \d+\n"RaftTerm" : \d+\n"More" : false\n"Count" : 3\n$/);
  const simple = await fx.keyraftctl(['get', 'k', '--prefix', '--count-only']);
  assert.is(simple.stderr, 'Error: --count-only is only for `--write-out=fields`\n');
  assert.is(simple.code, 128);
});

// keyraftctl alone: runs without etcd.
cluster('version', async () => {
  const r = await runInProcess(['version'], '');
  assert.match(r.stdout, /^keyraftctl version: \d+\.\d+\.\d+\nAPI version: 3\.4\n$/);
  assert.is(r.code, 0);
});

cluster.run();

const binary = suite('keyraftctl binary: entry point, env, connection errors');

need.test(binary, 'runs as a program: output, exit codes, ETCDCTL_ENDPOINTS with http://', async () => {
  const viaEnv = await fx.keyraftctlBinary(['get', 'foo', '-w', 'json'], '', { ETCDCTL_ENDPOINTS: `http://${fx.endpoint}` });
  const theirs = await fx.etcdctl(['get', 'foo', '-w', 'json']);
  assert.is(viaEnv.stdout, theirs.stdout);
  assert.is(viaEnv.code, 0);

  const put = await fx.keyraftctlBinary([`--endpoints=${fx.endpoint}`, 'put', 'bin', '--prev-kv'], 'piped value');
  assert.is(put.stdout, 'OK\n');
  assert.is((await fx.etcdctl(['get', 'bin', '--print-value-only'])).stdout, 'piped value\n');

  const txnRun = await fx.keyraftctlBinary([`--endpoints=${fx.endpoint}`, 'txn', '-i'], 'value("bin") = "piped value"\n\nget bin\n\n\n');
  assert.is(txnRun.stdout, 'compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nbin\npiped value\n');

  const future = await fx.keyraftctlBinary([`--endpoints=${fx.endpoint}`, 'get', 'foo', '--rev', '1000000']);
  assert.is(future.stderr, 'Error: etcdserver: mvcc: required revision is a future revision\n');
  assert.is(future.code, 1);

  const unknown = await fx.keyraftctlBinary(['bogus']);
  assert.is(unknown.stderr, 'Error: unknown command "bogus" for "keyraftctl"\nRun \'keyraftctl --help\' for usage.\n');
  assert.is(unknown.code, 1);

  const badFlag = await fx.keyraftctlBinary(['get', 'foo', '--bogus']);
  assert.is(badFlag.stderr, 'Error: unknown flag: --bogus\n');
  assert.match(badFlag.stdout, /keyraftctl get \[options\] <key> \[range_end\]/);
  assert.is(badFlag.code, 1);

  const version = await fx.keyraftctlBinary(['version']);
  assert.match(version.stdout, /^keyraftctl version: \d+\.\d+\.\d+\nAPI version: 3\.4\n$/);
});

need.test(binary, 'an unreachable endpoint fails like etcdctl after --command-timeout', async () => {
  const dead = `127.0.0.1:${await freePort()}`;
  const args = [`--endpoints=${dead}`, '--command-timeout=300ms'];
  const ours = await fx.keyraftctlBinary([...args, 'get', 'foo']);
  const theirs = await runProgram(fx.paths.etcdctl, [...args, 'get', 'foo'], '');
  assert.is(normalizeStderr(ours.stderr), 'Error: context deadline exceeded');
  assert.is(normalizeStderr(theirs.stderr), 'Error: context deadline exceeded');
  assert.is(ours.code, theirs.code);

  const health = await runInProcess([`--endpoints=${fx.endpoint},${dead}`, '--command-timeout=300ms', 'endpoint', 'health', '-w', 'json'], '');
  const parsed = JSON.parse(health.stdout) as { endpoint: string; health: boolean; error?: string }[];
  assert.equal(parsed.map((h) => [h.endpoint, h.health, h.error]).sort(), [[fx.endpoint, true, undefined], [dead, false, 'context deadline exceeded']].sort());
  assert.is(health.stderr, 'Error: unhealthy cluster\n');
  assert.is(health.code, 1);

  const status = await runInProcess([`--endpoints=${dead}`, '--command-timeout=300ms', 'endpoint', 'status'], '');
  assert.is(status.stderr, `Failed to get the status of endpoint ${dead} (context deadline exceeded)\n`);
  assert.is(status.code, 1);
});

// The one etcd serves every suite of this file; the last suite stops it.
binary.after(async () => {
  await fx?.stop();
});

binary.run();
