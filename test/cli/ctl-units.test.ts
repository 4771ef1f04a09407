/**
 * keyraftctl's pure pieces, without a server: Go text conventions, the command-line parser, the
 * txn grammar, request building, Go-style JSON and the table layout. Expected values are what
 * Go / etcdctl 3.4.23 produce for the same input (checked by hand against the real tools).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCommandLine, type CommandSpec, type FlagSpec } from '../../src/cli/ctl-args.js';
import { CtlError, UsageError } from '../../src/cli/ctl-exit.js';
import { goDuration, goParseDurationMs, goParseInt, goQuote, humanizeBytes, scanGoQuoted } from '../../src/cli/ctl-go-text.js';
import { goJsonString, marshalGoJson } from '../../src/cli/ctl-json.js';
import { buildDeleteRequest, buildPutRequest, buildRangeRequest, DEL_FLAGS, GET_FLAGS, PUT_FLAGS } from '../../src/cli/ctl-kv-ops.js';
import { prefixEnd as prefixRangeEnd } from '../../src/proto/key-range.js';
import { renderTable } from '../../src/cli/ctl-table.js';
import { parseCompare, parseRequestLine, readTxnRequest, splitRequestWords, type LineSource } from '../../src/cli/ctl-txn.js';
import { messageType } from '../../src/proto/codec.js';

function throwsCtl(fn: () => unknown, message: string, exitCode: number): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, CtlError);
    assert.is((err as CtlError).message, message);
    assert.is((err as CtlError).exitCode, exitCode);
    return;
  }
  assert.unreachable(`expected CtlError "${message}"`);
}

async function rejectsCtl(fn: () => Promise<unknown>, message: string, exitCode: number): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.instance(err, CtlError);
    assert.is((err as CtlError).message, message);
    assert.is((err as CtlError).exitCode, exitCode);
    return;
  }
  assert.unreachable(`expected CtlError "${message}"`);
}

const go = suite('Go text conventions');

go('goQuote escapes as strconv.Quote', () => {
  assert.is(goQuote('foo'), '"foo"');
  assert.is(goQuote('a"b\\c\n\t\x01\x7f'), '"a\\"b\\\\c\\n\\t\\x01\\x7f"');
  assert.is(goQuote('héllo'), '"héllo"');
  assert.is(goQuote(Buffer.from([0x66, 0xff, 0x00, 0xc3, 0xa9, 0xe2, 0x82])), '"f\\xff\\x00é\\xe2\\x82"');
});

go('scanGoQuoted reads double-quoted, raw and escaped strings', () => {
  assert.equal(scanGoQuoted('"foo") rest', 0), { value: Buffer.from('foo'), end: 5 });
  assert.equal(scanGoQuoted('`a\\nb`', 0)?.value, Buffer.from('a\\nb'));
  assert.equal(scanGoQuoted('"\\x66\\157\\u00e9\\"x"', 0)?.value, Buffer.from([0x66, 0o157, 0xc3, 0xa9, 0x22, 0x78]));
  assert.is(scanGoQuoted('"unterminated', 0), undefined);
  assert.is(scanGoQuoted('"bad \\q escape"', 0), undefined);
  assert.is(scanGoQuoted('foo', 0), undefined);
});

go('goParseInt accepts and rejects what strconv.ParseInt does', () => {
  assert.is(goParseInt('42', 10), 42n);
  assert.is(goParseInt('+5', 10), 5n);
  assert.is(goParseInt('-9223372036854775808', 10), -9223372036854775808n);
  assert.is(goParseInt('694d7d7c6b2e1a04', 16), 0x694d7d7c6b2e1a04n);
  assert.throws(() => goParseInt('abc', 10), /^strconv\.ParseInt: parsing "abc": invalid syntax$/);
  assert.throws(() => goParseInt(' 5', 10), /invalid syntax/);
  assert.throws(() => goParseInt('0x10', 10), /invalid syntax/);
  assert.throws(() => goParseInt('9223372036854775808', 10), /^strconv\.ParseInt: parsing "9223372036854775808": value out of range$/);
});

go('goDuration prints as time.Duration.String()', () => {
  assert.is(goDuration(0n), '0s');
  assert.is(goDuration(850n), '850ns');
  assert.is(goDuration(1_500n), '1.5µs');
  assert.is(goDuration(1_392_672n), '1.392672ms');
  assert.is(goDuration(5_000_289_982n), '5.000289982s');
  assert.is(goDuration(2_000_000_000n), '2s');
  assert.is(goDuration(65_500_000_000n), '1m5.5s');
  assert.is(goDuration(3_600_000_000_000n), '1h0m0s');
});

go('goParseDurationMs parses time.ParseDuration syntax', () => {
  assert.is(goParseDurationMs('5s'), 5000);
  assert.is(goParseDurationMs('300ms'), 300);
  assert.is(goParseDurationMs('1m30s'), 90_000);
  assert.is(goParseDurationMs('1.5s'), 1500);
  assert.is(goParseDurationMs('0'), 0);
  assert.throws(() => goParseDurationMs('x'), /^time: invalid duration "x"$/);
  assert.throws(() => goParseDurationMs('5'), /^time: missing unit in duration "5"$/);
  assert.throws(() => goParseDurationMs(''), /invalid duration/);
});

go('humanizeBytes matches go-humanize, round half to even', () => {
  assert.is(humanizeBytes(0), '0 B');
  assert.is(humanizeBytes(9), '9 B');
  assert.is(humanizeBytes(999), '999 B');
  assert.is(humanizeBytes(1000), '1.0 kB');
  assert.is(humanizeBytes(20480), '20 kB'); // 20.5 -> "20"
  assert.is(humanizeBytes(21400), '21 kB');
  assert.is(humanizeBytes(21480), '22 kB'); // 21.5 -> "22"
  assert.is(humanizeBytes(21500), '22 kB'); // 21.5 -> "22"
  assert.is(humanizeBytes(1_500_000), '1.5 MB');
  assert.is(humanizeBytes(2 * 1024 ** 3), '2.1 GB');
});

go.run();

const args = suite('command-line parsing (cobra/pflag rules)');

const GLOBAL: FlagSpec[] = [
  { name: 'endpoints', kind: 'stringSlice', defaultText: '127.0.0.1:2379', usage: '' },
  { name: 'write-out', short: 'w', kind: 'string', defaultText: 'simple', usage: '' },
  { name: 'command-timeout', kind: 'duration', defaultText: '5s', usage: '' },
  { name: 'hex', kind: 'bool', defaultText: 'false', usage: '' },
];
const COMMANDS: CommandSpec[] = [
  { path: ['get'], use: 'get', summary: '', flags: GET_FLAGS },
  { path: ['txn'], use: 'txn', summary: '', flags: [{ name: 'interactive', short: 'i', kind: 'bool', defaultText: 'false', usage: '' }] },
  { path: ['endpoint', 'status'], use: 'endpoint status', summary: '', flags: [] },
];
const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseCommandLine(argv, COMMANDS, GLOBAL, env, 'keyraftctl');

args('flags and positionals interleave; every value syntax works', () => {
  const p = parse(['-w', 'json', '--endpoints=a:1,b:2', 'get', 'k', '--rev', '5', 'end', '--prefix']);
  assert.equal(p.command?.path, ['get']);
  assert.equal(p.args, ['k', 'end']);
  assert.is(p.flags.string('write-out'), 'json');
  assert.equal(p.flags.stringSlice('endpoints'), ['a:1', 'b:2']);
  assert.is(p.flags.int('rev'), 5n);
  assert.is(p.flags.bool('prefix'), true);
  assert.is(p.flags.bool('keys-only'), false);
  assert.is(parse(['get', 'k', '-wjson']).flags.string('write-out'), 'json');
  assert.is(parse(['get', 'k', '-w=fields']).flags.string('write-out'), 'fields');
  assert.is(parse(['get', 'k', '--prefix=false']).flags.bool('prefix'), false);
  assert.equal(parse(['get', '--', '--not-a-flag']).args, ['--not-a-flag']);
  assert.equal(parse(['--endpoints=a', '--endpoints', 'b,c', 'get', 'k']).flags.stringSlice('endpoints'), ['a', 'b', 'c']);
  assert.is(parse(['txn', '-i']).flags.bool('interactive'), true);
  assert.equal(parse(['endpoint', 'status']).command?.path, ['endpoint', 'status']);
});

args('defaults, and ETCDCTL_* env for global flags not on the command line', () => {
  const p = parse(['get', 'k'], { ETCDCTL_ENDPOINTS: 'x:1,y:2', ETCDCTL_WRITE_OUT: 'json' });
  assert.equal(p.flags.stringSlice('endpoints'), ['x:1', 'y:2']);
  assert.is(p.flags.string('write-out'), 'json');
  assert.is(p.flags.durationMs('command-timeout'), 5000);
  assert.is(p.flags.isSet('endpoints'), true);
  assert.throws(() => parse(['get', 'k', '--endpoints=z:3'], { ETCDCTL_ENDPOINTS: 'x:1' }),
    (err: unknown) => err instanceof CtlError && err.exitCode === 1 &&
      err.message === 'conflicting environment variable "ETCDCTL_ENDPOINTS" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)');
  // Env vars apply to global flags only.
  assert.is(parse(['get', 'k'], { ETCDCTL_REV: '5' }).flags.int('rev'), 0n);
  assert.equal(parse(['get', 'k']).flags.stringSlice('endpoints'), ['127.0.0.1:2379']);
});

args('usage errors carry pflag/cobra texts', () => {
  const cases: [string[], string][] = [
    [['get', 'k', '--bogus'], 'unknown flag: --bogus'],
    [['get', 'k', '-x'], "unknown shorthand flag: 'x' in -x"],
    [['get', 'k', '--rev'], 'flag needs an argument: --rev'],
    [['get', 'k', '-w'], "flag needs an argument: 'w' in -w"],
    [['get', 'k', '--rev', 'abc'], 'invalid argument "abc" for "--rev" flag: strconv.ParseInt: parsing "abc": invalid syntax'],
    [['get', 'k', '--prefix=maybe'], 'invalid argument "maybe" for "--prefix" flag: strconv.ParseBool: parsing "maybe": invalid syntax'],
    [['--command-timeout=x', 'get'], 'invalid argument "x" for "--command-timeout" flag: time: invalid duration "x"'],
    [['bogus'], 'unknown command "bogus" for "keyraftctl"'],
    [['endpoint', 'bogus'], 'unknown command "bogus" for "keyraftctl endpoint"'],
    [['--interactive', 'txn'], 'unknown flag: --interactive'],
  ];
  for (const [argv, message] of cases) {
    try {
      parse(argv);
      assert.unreachable(argv.join(' '));
    } catch (err) {
      assert.instance(err, UsageError, argv.join(' '));
      assert.is((err as UsageError).message, message);
      assert.is((err as UsageError).exitCode, 1);
    }
  }
});

args.run();

const ops = suite('get/put/del requests as etcdctl builds them');

const flagsFor = (cmd: 'get' | 'put' | 'del', argv: string[]) => {
  const specs: CommandSpec[] = [
    { path: ['get'], use: '', summary: '', flags: GET_FLAGS },
    { path: ['put'], use: '', summary: '', flags: PUT_FLAGS },
    { path: ['del'], use: '', summary: '', flags: DEL_FLAGS },
  ];
  return parseCommandLine([cmd, ...argv], specs, [], {}, 'keyraftctl');
};

ops('prefix range ends', () => {
  assert.equal(prefixRangeEnd(Buffer.from('a')), Buffer.from('b'));
  assert.equal(prefixRangeEnd(Buffer.from([0x61, 0xff])), Buffer.from('b'));
  assert.equal(prefixRangeEnd(Buffer.from([0xff, 0xff])), Buffer.from([0]));
});

ops('get options map to RangeRequest fields', () => {
  const p = flagsFor('get', ['k', '--prefix', '--limit=3', '--rev=7', '--sort-by=modify', '--order=descend', '--keys-only', '--consistency=s']);
  assert.equal(buildRangeRequest(p.args, p.flags), {
    serializable: true, key: Buffer.from('k'), range_end: Buffer.from('l'), limit: 3, revision: 7, sort_order: 2, sort_target: 3, keys_only: true,
  });
  const all = flagsFor('get', ['', '--prefix']);
  assert.equal(buildRangeRequest(all.args, all.flags), { key: Buffer.from([0]), range_end: Buffer.from([0]) });
  // Key order ascending is the server's default: sent as no sort at all.
  const asc = flagsFor('get', ['a', 'z', '--order=ASCEND']);
  assert.equal(buildRangeRequest(asc.args, asc.flags), { key: Buffer.from('a'), range_end: Buffer.from('z') });
  const bad = flagsFor('get', ['a', '--sort-by=nope']);
  throwsCtl(() => buildRangeRequest(bad.args, bad.flags), 'bad sort target nope', 4);
});

ops('put reads its value from stdin when none is given; lease ids are hex', async () => {
  const p = flagsFor('put', ['k', '--lease=1f', '--prev-kv']);
  assert.equal(await buildPutRequest(p.args, p.flags, async () => Buffer.from('from stdin\n')), {
    key: Buffer.from('k'), value: Buffer.from('from stdin\n'), lease: 31n, prev_kv: true,
  });
  const empty = flagsFor('put', ['k']);
  await rejectsCtl(() => buildPutRequest(empty.args, empty.flags, async () => Buffer.alloc(0)), 'put command needs 1 argument and input from stdin or 2 arguments', 128);
  const badLease = flagsFor('put', ['k', 'v', '--lease=xyz']);
  await rejectsCtl(() => buildPutRequest(badLease.args, badLease.flags, async () => Buffer.alloc(0)),
    'bad lease ID (strconv.ParseInt: parsing "xyz": invalid syntax), expecting ID in Hex', 128);
});

ops('del with --from-key on an empty key deletes everything from "\\0"', () => {
  const p = flagsFor('del', ['', '--from-key', '--prev-kv']);
  assert.equal(buildDeleteRequest(p.args, p.flags), { key: Buffer.from([0]), range_end: Buffer.from([0]), prev_kv: true });
});

ops.run();

const txn = suite('txn grammar');

txn('compares of every target and operator', () => {
  assert.equal(parseCompare('value("k") = "v"'), { key: Buffer.from('k'), target: 3, value: Buffer.from('v'), result: 0 });
  assert.equal(parseCompare('version("k") > "3"'), { key: Buffer.from('k'), target: 0, version: 3, result: 1 });
  assert.equal(parseCompare('create("k") < "5"'), { key: Buffer.from('k'), target: 1, create_revision: 5, result: 2 });
  assert.equal(parseCompare('mod("k") != "2"'), { key: Buffer.from('k'), target: 2, mod_revision: 2, result: 3 });
  assert.equal(parseCompare('lease("k") = "694d7d7c6b2e1a04"'), { key: Buffer.from('k'), target: 4, lease: 0x694d7d7c6b2e1a04n, result: 0 });
  assert.equal(parseCompare('m("k") > "0"').target, 2);
  assert.equal(parseCompare('val(`k`) = "a b"').value, Buffer.from('a b'));
});

txn('malformed compares fail with etcdctl\'s texts (exit 3)', () => {
  throwsCtl(() => parseCompare('bad compare'), 'malformed comparison: bad compare', 3);
  throwsCtl(() => parseCompare('value("k" = "v"'), 'malformed comparison: value("k" = "v"; got value("k")  ""', 3);
  throwsCtl(() => parseCompare('value("k") ="v"'), 'malformed comparison: value("k") ="v"; got value("k") ="v" ""', 3);
  throwsCtl(() => parseCompare('foo("k") = "v"'), 'malformed comparison: foo("k") = "v" (unknown target foo)', 3);
  throwsCtl(() => parseCompare('version("k") = "x"'), 'invalid txn compare request: version("k") = "x"', 3);
});

txn('request lines split like etcdctl\'s argify', async () => {
  assert.equal(splitRequestWords('put "a b" \'c d\' --prev-kv'), ['put', 'a b', 'c d', '--prev-kv']);
  assert.equal(splitRequestWords('put k "esc\\"aped"'), ['put', 'k', 'esc"aped']);
  assert.equal(await parseRequestLine('del k --prefix'), { request_delete_range: { key: Buffer.from('k'), range_end: Buffer.from('l') } });
  await rejectsCtl(() => parseRequestLine('get'), 'invalid txn compare request: get', 3);
  await rejectsCtl(() => parseRequestLine('watch k'), 'invalid txn request: watch k', 3);
});

txn('blocks end at empty lines; input ending mid-block is EOF', async () => {
  const source = (text: string): LineSource => {
    const lines = text.split(/(?<=\n)/);
    return { readLine: async () => { const l = lines.shift(); return l?.endsWith('\n') ? l : undefined; } };
  };
  const prompts: string[] = [];
  const req = await readTxnRequest(source('mod("a") > "1"\n\nput a 1\nget a\n\ndel a\n\n'), (t) => prompts.push(t));
  assert.is(req.compare?.length, 1);
  assert.is(req.success?.length, 2);
  assert.is(req.failure?.length, 1);
  assert.equal(prompts, ['compares:', 'success requests (get, put, del):', 'failure requests (get, put, del):']);
  await rejectsCtl(() => readTxnRequest(source('mod("a") > "1"\n\nput a 1\n\n'), undefined), 'EOF', 3);
  await rejectsCtl(() => readTxnRequest(source('\n\nput a 1'), undefined), 'EOF', 3);
});

txn.run();

const out = suite('json and table output');

out('Go JSON: omitempty, exact 64-bit numbers, base64, oneof wrappers, HTML escapes', () => {
  const txnResponse = {
    header: { cluster_id: 13352078900870303093n, member_id: 1n, revision: 9, raft_term: 2 },
    succeeded: true,
    responses: [
      { response_put: { header: { revision: 9 } } },
      { response_range: { header: { revision: 9 }, kvs: [{ key: Buffer.from('k'), create_revision: 2, mod_revision: 9, version: 3, value: Buffer.from('v'), lease: 0n }], count: 1, more: false } },
    ],
  };
  assert.is(marshalGoJson(messageType('etcdserverpb.TxnResponse'), txnResponse),
    '{"header":{"cluster_id":13352078900870303093,"member_id":1,"revision":9,"raft_term":2},"succeeded":true,"responses":[' +
    '{"Response":{"ResponsePut":{"header":{"revision":9}}}},' +
    '{"Response":{"ResponseRange":{"header":{"revision":9},"kvs":[{"key":"aw==","create_revision":2,"mod_revision":9,"version":3,"value":"dg=="}],"count":1}}}]}');
  assert.is(goJsonString('a<b>&c\u2028'), '"a\\u003cb\\u003e\\u0026c\\u2028"');
});

out('tablewriter layout: centred upper-case headers, right-aligned cells', () => {
  assert.is(renderTable(['ID', 'is leader'], [['2e1259d415f2a040', 'true']]),
    '+------------------+-----------+\n' +
    '|        ID        | IS LEADER |\n' +
    '+------------------+-----------+\n' +
    '| 2e1259d415f2a040 |      true |\n' +
    '+------------------+-----------+\n');
  assert.is(renderTable(['status'], [['started']]).split('\n')[1], '| STATUS  |');
});

out.run();
