/**
 * keyraftctl's lease commands against etcdctl 3.4.23, both talking to the same real etcd 3.4.23:
 * stdout, the error lines and the exit code must match. Normalized: lease ids (each tool's grant
 * gets its own), revisions moved by the other tool's writes, and remaining TTLs (a second may
 * pass between the two runs).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import { EtcdFixture, type RunResult } from './etcd-fixture.js';

const test = suite('keyraftctl vs etcdctl: lease');
const need = needEtcd('cli/ctl-lease', ['etcd', 'etcdctl']);
let fx: EtcdFixture;
let kept = '';
let gone = '';

function normalize(text: string): string {
  return text
    .replace(/\b[0-9a-f]{16}\b/g, '<id>')
    .replace(/-?\b\d{15,20}\b/g, '<n>')
    .replace(/"?(revision|Revision)"?( : |:)\d+/g, '$1<rev>')
    .replace(/remaining\(\d+s\)/g, 'remaining(<t>)')
    .replace(/"ttl":\d+,"granted-ttl"/g, '"ttl":<t>,"granted-ttl"')
    .replace(/"TTL" : \d+\n"GrantedTTL"/g, '"TTL" : <t>\n"GrantedTTL"')
    // etcd lists a lease's keys in Go map order (random): compare them as a set.
    .replace(/attached keys\(\[([^\]]*)\]\)/g, (_, keys: string) => `attached keys([${keys.split(' ').sort().join(' ')}])`)
    .replace(/"keys":\[([^\]]*)\]/g, (_, keys: string) => `"keys":[${keys.split(',').sort().join(',')}]`)
    .replace(/("Key" : .*\n)+/g, (lines) => lines.split('\n').filter(Boolean).sort().map((l) => `${l}\n`).join(''));
}

const stderrLines = (s: string) => [...new Set(s.split('\n').filter((l) => l !== '' && !l.startsWith('{"level"')))].join('\n');

async function compare(args: string[] | ((tool: 'etcdctl' | 'keyraftctl') => Promise<string[]>)): Promise<void> {
  const runs: RunResult[] = [];
  let label = '';
  for (const tool of ['etcdctl', 'keyraftctl'] as const) {
    const a = typeof args === 'function' ? await args(tool) : args;
    label = a.join(' ');
    runs.push(tool === 'etcdctl' ? await fx.etcdctl(a) : await fx.keyraftctl(a));
  }
  const [theirs, ours] = runs as [RunResult, RunResult];
  assert.is(normalize(ours.stdout), normalize(theirs.stdout), `stdout of ${label}`);
  assert.is(normalize(stderrLines(ours.stderr)), normalize(stderrLines(theirs.stderr)), `stderr of ${label}`);
  assert.is(ours.code, theirs.code, `exit code of ${label}`);
}

async function grant(ttl: string): Promise<string> {
  const r = await fx.etcdctl(['lease', 'grant', ttl]);
  const id = /lease ([0-9a-f]+) granted/.exec(r.stdout)?.[1];
  assert.ok(id, r.stdout + r.stderr);
  return id!;
}

test.before(async () => {
  if (!need.found) return;
  fx = await EtcdFixture.start({ etcd: need.path('etcd'), etcdctl: need.path('etcdctl') });
  kept = await grant('600');
  for (const k of ['a', 'b<&>']) assert.is((await fx.etcdctl(['put', k, 'v', `--lease=${kept}`])).code, 0);
  gone = await grant('600');
  assert.is((await fx.etcdctl(['lease', 'revoke', gone])).code, 0);
});

test.after(async () => {
  await fx?.stop();
});

need.test(test, 'grant, timetolive, keep-alive --once, list in every output format', async () => {
  for (const w of ['simple', 'json', 'fields', 'table']) await compare(['lease', 'grant', '30', '-w', w]);
  await compare(['lease', 'grant', '0']);
  for (const w of ['simple', 'json', 'fields', 'protobuf']) {
    await compare(['lease', 'timetolive', kept, '-w', w]);
    await compare(['lease', 'timetolive', kept, '--keys', '-w', w]);
    await compare(['lease', 'keep-alive', '--once', kept, '-w', w]);
    await compare(['lease', 'list', '-w', w]);
  }
});

need.test(test, 'revoke, and a revoked lease: timetolive, keep-alive, revoke again', async () => {
  for (const w of ['simple', 'json', 'fields']) await compare(async () => ['lease', 'revoke', await grant('60'), '-w', w]);
  await compare(['lease', 'timetolive', gone]);
  await compare(['lease', 'timetolive', gone, '-w', 'json']);
  await compare(['lease', 'timetolive', gone, '-w', 'fields']);
  await compare(['lease', 'keep-alive', '--once', gone]);
  await compare(['lease', 'keep-alive', gone]);
  await compare(['lease', 'revoke', gone]);
});

need.test(test, 'bad arguments and bad TTLs', async () => {
  for (const args of [
    ['lease', 'grant'], ['lease', 'grant', 'x'], ['lease', 'grant', '5', '6'], ['lease', 'grant', '9000000001'],
    ['lease', 'revoke'], ['lease', 'revoke', 'zz'], ['lease', 'timetolive'], ['lease', 'timetolive', 'xyz'],
    ['lease', 'keep-alive'], ['lease', 'keep-alive', '--once', 'q'], ['put', 'k', 'v', '--lease=abc'],
  ]) await compare(args);
});

test.run();
