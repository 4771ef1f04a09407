/**
 * The skip path of ../etcd-binaries.ts, proven on this machine whatever is installed: the lookup
 * with an empty PATH, and test/run.mjs over a one-file tree that needs etcd, run with an empty
 * PATH (skipped loudly, exit 0) and with a missing ETCD_BIN under KEYRAFT_REQUIRE_ETCD=1 (fails).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { etcdInstallHint, findBinary, needEtcd } from '../etcd-binaries.js';
import { killAll, runCommand, tempDir } from './harness.js';

const test = suite('skip-without-etcd');
const root = join(__dirname, '..', '..', '..');
const runMjs = join(root, 'test', 'run.mjs');

test.after(async () => {
  await killAll();
});

test('with an empty PATH the lookup finds nothing and the test is skipped with the install hint', () => {
  const env = { PATH: '' };
  assert.is(findBinary('etcd', env), undefined);
  assert.is(findBinary('etcdctl', env), undefined);
  const printed: string[] = [];
  const registered: string[] = [];
  const fake = Object.assign((name: string) => { registered.push(`run ${name}`); }, { skip: (name?: string) => { registered.push(`skip ${name}`); } });
  const need = needEtcd('demo/file', ['etcd', 'etcdctl'], env, (line) => printed.push(line));
  assert.is(need.found, false);
  assert.equal(need.missing, ['etcd', 'etcdctl']);
  need.test(fake as never, 'compares with etcd', () => {});
  assert.equal(registered, ['skip compares with etcd']);
  assert.equal(printed, [`[skip] demo/file > compares with etcd: needs etcd and etcdctl: etcd and etcdctl not found (ETCD_BIN or PATH; ETCDCTL_BIN or PATH); on Debian/Ubuntu: ${etcdInstallHint}`]);
});

test('an ETCD_BIN naming a missing file is missing (no fall-back to PATH); a bare name is looked up on PATH', () => {
  const dir = tempDir('bins');
  const fakeEtcd = join(dir, 'my-etcd');
  writeFileSync(fakeEtcd, '#!/bin/sh\n', { mode: 0o755 });
  assert.is(findBinary('etcd', { ETCD_BIN: '/nonexistent', PATH: dir }), undefined);
  assert.is(findBinary('etcd', { ETCD_BIN: fakeEtcd, PATH: '' }), fakeEtcd);
  assert.is(findBinary('etcd', { ETCD_BIN: 'my-etcd', PATH: `/nonexistent:${dir}` }), fakeEtcd);
  assert.is(findBinary('etcd', { PATH: dir }), undefined);
});

/** A dist-like tree with one suite: a test that runs anywhere and one that needs etcd and etcdctl. */
function demoTree(): string {
  const dist = tempDir('demo-dist');
  mkdirSync(join(dist, 'test', 'demo'), { recursive: true });
  writeFileSync(join(dist, 'test', 'demo', 'demo.test.js'), `
const { test } = require(${JSON.stringify(require.resolve('uvu'))});
const { needEtcd } = require(${JSON.stringify(require.resolve('../etcd-binaries.js'))});
const need = needEtcd('demo/demo', ['etcd', 'etcdctl']);
test('runs anywhere', () => {});
need.test(test, 'compares with etcd', () => {});
test.run();
`);
  return dist;
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').at(-1) ?? '';
}

test('run.mjs with an empty PATH: the etcd test is skipped and listed with the install hint, exit 0', async () => {
  const dist = demoTree();
  const r = await runCommand(process.execPath, [runMjs], { env: { PATH: '', ETCD_BIN: '', ETCDCTL_BIN: '', KEYRAFT_REQUIRE_ETCD: '', KEYRAFT_DIST: dist }, timeoutMs: 60_000 });
  assert.is(lastLine(r.stdout), '1 passed, 0 failed, 1 skipped', r.stdout + r.stderr);
  assert.is(r.code, 0);
  assert.match(r.stdout, '[skip] demo/demo > compares with etcd: needs etcd and etcdctl: etcd and etcdctl not found (ETCD_BIN or PATH; ETCDCTL_BIN or PATH)');
  assert.match(r.stdout, `skipped 1:\n  needs etcd and etcdctl: etcd and etcdctl not found (ETCD_BIN or PATH; ETCDCTL_BIN or PATH); on Debian/Ubuntu: ${etcdInstallHint}:\n    demo/demo > compares with etcd\n`);
});

test('run.mjs under KEYRAFT_REQUIRE_ETCD=1 with a missing ETCD_BIN fails, saying why', async () => {
  const dist = demoTree();
  // Any executable stands in for etcdctl, so that only etcd is missing, installed or not.
  const env = { ETCD_BIN: '/nonexistent', ETCDCTL_BIN: process.execPath, KEYRAFT_REQUIRE_ETCD: '1', KEYRAFT_DIST: dist };
  const r = await runCommand(process.execPath, [runMjs], { env, timeoutMs: 60_000 });
  assert.is(lastLine(r.stdout), '1 passed, 1 failed, 0 skipped', r.stdout + r.stderr);
  assert.is(r.code, 1);
  assert.not.match(r.stdout, '[skip]');
  assert.match(r.stdout, `failed because etcd or etcdctl is required here (KEYRAFT_REQUIRE_ETCD=1) but missing:\n  KEYRAFT_REQUIRE_ETCD=1 and etcd not found (ETCD_BIN=/nonexistent); on Debian/Ubuntu: ${etcdInstallHint}\n`);
});

test.run();
