/**
 * Leases on a real single member, in process: the Lease calls through the log, expiry decided by
 * the leader's clock and applied through the log, persistence across a restart.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/platform/logger.js';
import { parseConfig } from '../../src/server/config.js';
import { Member } from '../../src/server/member.js';
import { KeyraftError } from '../../src/platform/errors.js';

/** The KeyraftError code a call rejects with, or 'ok'. */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    assert.instance(err, KeyraftError);
    return (err as KeyraftError).code;
  }
}

const b = (s: string) => Buffer.from(s);

async function startMember(dir: string, flags: string[] = [], metrics?: Registry): Promise<Member> {
  const parsed = parseConfig(['--data-dir', dir, ...flags]);
  if (parsed.kind !== 'run') throw new Error('config');
  const member = await Member.start(parsed.config, { logger: silentLogger, metrics });
  for (let i = 0; i < 2000 && !member.hasLeader(); i++) await new Promise((r) => setTimeout(r, 5));
  return member;
}

async function withMember(fn: (m: Member, dir: string) => Promise<void>, flags: string[] = []): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-lease-'));
  const member = await startMember(dir, flags);
  try {
    await fn(member, dir);
  } finally {
    await member.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const exists = async (m: Member, key: string) => (await m.range({ key: b(key) })).count === 1;

test('grant, attach, time-to-live, keep-alive, list, revoke; bad input as etcd', () => withMember(async (m) => {
  const g = await m.leaseGrant({ TTL: 60 });
  assert.ok(g.ID! > 0n, 'server-picked id is positive');
  assert.is(g.TTL, 60);
  assert.ok(g.header!.member_id === m.memberId);
  // TTL below the minimum (ceil(1.5 x 1 s) = 2 s) is raised, as etcd; 0 and negative too.
  assert.is((await m.leaseGrant({ TTL: 1 })).TTL, 2);
  assert.is((await m.leaseGrant({ TTL: 0 })).TTL, 2);
  assert.is((await m.leaseGrant({ TTL: -3 })).TTL, 2);
  assert.is(await codeOf(m.leaseGrant({ TTL: 9_000_000_001 })), 'LeaseTTLTooLarge');
  assert.is((await m.leaseGrant({ ID: 42n, TTL: 30 })).ID, 42n);
  assert.is(await codeOf(m.leaseGrant({ ID: 42n, TTL: 30 })), 'LeaseExist');

  await m.put({ key: b('svc/a'), value: b('1'), lease: g.ID });
  await m.put({ key: b('svc/b'), value: b('2'), lease: g.ID });
  await m.put({ key: b('other'), value: b('3'), lease: 42n });
  assert.is(await codeOf(m.put({ key: b('x'), value: b('1'), lease: 7n })), 'LeaseNotFound');
  const ttl = await m.leaseTimeToLive({ ID: g.ID, keys: true });
  assert.is(ttl.grantedTTL, 60);
  assert.ok(ttl.TTL! >= 58 && ttl.TTL! <= 60, `remaining ${ttl.TTL}`);
  assert.equal(ttl.keys!.map(String), ['svc/a', 'svc/b']);
  assert.equal((await m.leaseTimeToLive({ ID: g.ID })).keys, []);
  const kept = await m.leaseKeepAlive({ ID: g.ID });
  assert.is(kept.ID, g.ID);
  assert.is(kept.TTL, 60);
  assert.ok(kept.header!.revision > 1);
  assert.is((await m.leaseLeases()).leases.length, 5);

  // A put moving a key to another lease detaches it from the first.
  await m.put({ key: b('svc/b'), value: b('2'), lease: 42n });
  assert.equal((await m.leaseTimeToLive({ ID: g.ID, keys: true })).keys!.map(String), ['svc/a']);

  const before = (await m.range({ key: b('other') })).header!.revision;
  await m.leaseRevoke({ ID: 42n });
  const after = await m.range({ key: b('\0'), range_end: b('\0') });
  assert.equal(after.kvs.map((kv) => String(kv.key)), ['svc/a']);
  assert.is(after.header!.revision, before + 1, 'both keys deleted in one revision');

  // Unknown leases: revoke is refused, keep-alive answers TTL 0, time-to-live TTL -1.
  assert.is(await codeOf(m.leaseRevoke({ ID: 42n })), 'LeaseNotFound');
  assert.is((await m.leaseKeepAlive({ ID: 42n })).TTL, 0);
  assert.is((await m.leaseTimeToLive({ ID: 42n })).TTL, -1);
}));

test('expiry: never before TTL after the last keep-alive, revoked within TTL + 1 s on an idle member', () => withMember(async (m) => {
  const { ID } = await m.leaseGrant({ TTL: 2 });
  await m.put({ key: b('k'), value: b('v'), lease: ID });
  let lastKeepAlive = 0;
  for (let i = 0; i < 4; i++) {
    await sleep(700);
    const r = await m.leaseKeepAlive({ ID });
    lastKeepAlive = performance.now();
    assert.is(r.TTL, 2, 'kept alive');
  }
  while (await exists(m, 'k')) await sleep(20);
  const gone = performance.now() - lastKeepAlive;
  assert.ok(gone >= 2000, `key deleted ${gone.toFixed(0)} ms after the last keep-alive, before the 2 s TTL`);
  assert.ok(gone <= 3000, `key deleted ${gone.toFixed(0)} ms after the last keep-alive, later than TTL + 1 s`);
  assert.is((await m.leaseKeepAlive({ ID })).TTL, 0, 'expired: keep-alive answers TTL 0');
  assert.is((await m.leaseTimeToLive({ ID })).TTL, -1);
}));

test('1,000 leases of 2 s: all revoked with their keys within TTL + the rate limit\'s time (--lease-revoke-rate 500)', () => withMember(async (m) => {
  const ids: bigint[] = [];
  await Promise.all(Array.from({ length: 1000 }, async (_, i) => {
    const { ID } = await m.leaseGrant({ TTL: 2 });
    ids.push(ID!);
    await m.put({ key: b(`mass/${String(i).padStart(4, '0')}`), value: b('v'), lease: ID });
  }));
  const granted = performance.now();
  const count = async () => (await m.range({ key: b('mass/'), range_end: b('mass0'), count_only: true })).count;
  assert.is(await count(), 1000);
  while ((await m.leaseLeases()).leases.length > 0) await sleep(50);
  const took = performance.now() - granted;
  assert.is(await count(), 0, 'every attached key is gone');
  // 2 s TTL + 1,000 / 500 per second + 1 s of slack for a shared machine.
  assert.ok(took <= 5000, `all 1,000 revoked ${took.toFixed(0)} ms after the grants`);
}, ['--lease-revoke-rate', '500']));

test('--lease-revoke-rate 100: 300 leases expiring together are revoked over about 3 s, not at once', () => withMember(async (m) => {
  await Promise.all(Array.from({ length: 300 }, () => m.leaseGrant({ TTL: 2 })));
  let first = 0;
  for (;;) {
    const left = (await m.leaseLeases()).leases.length;
    if (left < 300 && first === 0) first = performance.now();
    if (left === 0) break;
    await sleep(20);
  }
  const span = performance.now() - first;
  // 10 per 100 ms tick: the last goes at least 2.9 s after the first.
  assert.ok(span >= 2000, `300 revocations spread over ${span.toFixed(0)} ms`);
}, ['--lease-revoke-rate', '100']));

test('restart: leases and keys persist; the restarted member gives them a fresh TTL instead of expiring them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-lease-'));
  try {
    let m = await startMember(dir);
    const { ID } = await m.leaseGrant({ TTL: 3 });
    await m.put({ key: b('k'), value: b('v'), lease: ID });
    await m.close();
    // Down for longer than the TTL.
    await sleep(3500);
    m = await startMember(dir);
    try {
      assert.ok(await exists(m, 'k'), 'key kept across the restart');
      const ttl = await m.leaseTimeToLive({ ID, keys: true });
      assert.is(ttl.grantedTTL, 3);
      assert.ok(ttl.TTL! >= 2, `fresh TTL after restart, got ${ttl.TTL}`);
      assert.equal(ttl.keys!.map(String), ['k']);
      // And it still expires when left alone.
      while (await exists(m, 'k')) await sleep(50);
      assert.is((await m.leaseTimeToLive({ ID })).TTL, -1);
    } finally {
      await m.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('metrics: etcd\'s lease metric names count grants, renewals and revocations', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-lease-'));
  const registry = new Registry();
  const m = await startMember(dir, [], registry);
  try {
    const a = await m.leaseGrant({ TTL: 5 });
    await m.leaseGrant({ TTL: 100 });
    await m.leaseKeepAlive({ ID: a.ID });
    await m.leaseRevoke({ ID: a.ID });
    const text = await registry.metrics();
    assert.match(text, /etcd_debugging_lease_granted_total 2/);
    assert.match(text, /etcd_debugging_lease_renewed_total 1/);
    assert.match(text, /etcd_debugging_lease_revoked_total 1/);
    assert.match(text, /etcd_debugging_lease_ttl_total_bucket\{le="8"\} 1/);
    assert.match(text, /etcd_debugging_lease_ttl_total_count 2/);
  } finally {
    await m.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
