/**
 * The space quota and the NOSPACE alarm on a real member (WAL, LevelDB backend, the log): fill a
 * small quota, see writes refused with etcd's error while reads, deletes and compaction work,
 * the alarm survive a restart, and recover by compaction + defrag + disarm with no acknowledged
 * write lost.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/platform/logger.js';
import { AlarmAction, AlarmType } from '../../src/proto/etcd-types.js';
import { parseConfig } from '../../src/server/config.js';
import { Member } from '../../src/server/member.js';

const QUOTA_BYTES = 2 * 1024 * 1024;

async function started(dir: string): Promise<Member> {
  const parsed = parseConfig(['--data-dir', dir, '--quota-backend-bytes', String(QUOTA_BYTES)]);
  if (parsed.kind !== 'run') throw new Error('config');
  const member = await Member.start(parsed.config, { logger: silentLogger });
  for (let i = 0; i < 2000 && !member.hasLeader(); i++) await new Promise((r) => setTimeout(r, 5));
  return member;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

const key = (i: number) => Buffer.from(`k${i % 4}`);

test('NOSPACE: writes refused past the quota, reads/deletes/compaction work, recovery by compaction + defrag + disarm', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-quota-'));
  let member: Member | undefined;
  try {
    member = await started(dir);
    const acknowledged = new Map<string, string>();
    // Values that do not compress (random hex), like real data: LevelDB may flush its log into a
    // Snappy-compressed table at any time, and a run of 'x' would then shrink the backend to a
    // fraction of its size (db_size fell back under the quota in about one run of five).
    const values = new Map<number, string>();
    const value = (i: number) => {
      let v = values.get(i);
      if (v === undefined) values.set(i, (v = `${i}:${randomBytes(32 * 1024).toString('hex')}`));
      return v;
    };
    let refusedAt = -1;
    // The size is measured twice a second: writes go on until the member notices (bounded).
    for (let i = 0; i < 5000; i++) {
      try {
        await member.put({ key: key(i), value: Buffer.from(value(i)) });
        acknowledged.set(key(i).toString(), value(i));
      } catch (err) {
        assert.is((err as { code?: string }).code, 'NoSpace');
        assert.is((err as Error).message, 'etcdserver: mvcc: database space exceeded');
        refusedAt = i;
        break;
      }
    }
    assert.ok(refusedAt > 0, 'a write was refused before 5000 puts of 64 KiB under a 2 MiB quota');
    // The alarm goes through the log; wait for it to be applied.
    for (let i = 0; i < 400 && (await member.alarm({ action: AlarmAction.GET })).alarms.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const alarms = await member.alarm({ action: AlarmAction.GET });
    assert.equal(alarms.alarms, [{ memberID: member.memberId, alarm: AlarmType.NOSPACE }]);
    const status = await member.status();
    assert.ok(status.dbSize >= QUOTA_BYTES, `db_size ${status.dbSize} past the quota`);
    assert.equal(status.errors, [`memberID:${member.memberId} alarm:NOSPACE `]);

    // Refused: a put, a txn with a put. Served: reads, a delete, a txn of deletes, compaction.
    assert.is(await codeOf(member.put({ key: Buffer.from('new'), value: Buffer.from('x') })), 'NoSpace');
    assert.is(await codeOf(member.txn({ compare: [], success: [{ request_put: { key: Buffer.from('t'), value: Buffer.from('v') } }], failure: [] })), 'NoSpace');
    assert.is(await codeOf(member.leaseGrant({ TTL: 60 })), 'NoSpace');
    const read = await member.range({ key: Buffer.from('k'), range_end: Buffer.from('l') });
    assert.is(read.count, 4);
    for (const kv of read.kvs) assert.is(kv.value.toString(), acknowledged.get(kv.key.toString()));
    const del = await member.deleteRange({ key: key(3) });
    assert.is(del.deleted, 1);
    acknowledged.delete(key(3).toString());
    const txnDelete = await member.txn({ compare: [], success: [{ request_delete_range: { key: key(2) } }], failure: [] });
    assert.ok(txnDelete.succeeded);
    acknowledged.delete(key(2).toString());

    // The alarm is state: it survives a restart.
    await member.close();
    member = await started(dir);
    assert.equal((await member.alarm({ action: AlarmAction.GET })).alarms.map((a) => a.alarm), [AlarmType.NOSPACE]);
    assert.is(await codeOf(member.put({ key: Buffer.from('new'), value: Buffer.from('x') })), 'NoSpace');

    // Recovery: compact everything older than now, defrag, disarm.
    const revision = (await member.range({ key: Buffer.from('k0') })).header!.revision;
    await member.compact({ revision, physical: true });
    const before = (await member.status()).dbSize;
    await member.defragment();
    const after = await member.status();
    console.log(`    db_size before defrag ${before} B, after ${after.dbSize} B (in use ${after.dbSizeInUse} B), quota ${QUOTA_BYTES} B`);
    assert.ok(after.dbSize < QUOTA_BYTES, `db_size ${after.dbSize} back under the quota after compaction + defrag`);
    assert.ok(after.dbSizeInUse <= after.dbSize);
    const disarmed = await member.alarm({ action: AlarmAction.DEACTIVATE, memberID: member.memberId, alarm: AlarmType.NOSPACE });
    assert.equal(disarmed.alarms, [{ memberID: member.memberId, alarm: AlarmType.NOSPACE }]);
    assert.equal((await member.alarm({ action: AlarmAction.GET })).alarms, []);
    await member.put({ key: Buffer.from('after'), value: Buffer.from('recovered') });
    acknowledged.set('after', 'recovered');
    assert.ok(((await member.leaseGrant({ TTL: 60 })).ID ?? 0n) > 0n, 'a lease is granted again once disarmed');

    // No acknowledged write lost.
    const all = await member.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
    assert.equal(new Map(all.kvs.map((kv) => [kv.key.toString(), kv.value.toString()])), acknowledged);
  } finally {
    await member?.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('HashKV and Hash of a member: unchanged by a restart, changed by a put', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-hash-'));
  let member: Member | undefined;
  try {
    member = await started(dir);
    for (let i = 0; i < 300; i++) await member.put({ key: Buffer.from(`h${i % 37}`), value: Buffer.from(`v${i}`) });
    await member.deleteRange({ key: Buffer.from('h1'), range_end: Buffer.from('h2') });
    const kv = await member.hashKV({ revision: 0 });
    const whole = await member.hash();
    assert.is(kv.compact_revision, -1);
    await member.close();
    member = await started(dir);
    assert.equal(await member.hashKV({ revision: 0 }), { ...kv, header: { ...kv.header!, raft_term: (await member.status()).raftTerm } });
    assert.is((await member.hash()).hash, whole.hash);
    await member.put({ key: Buffer.from('h5'), value: Buffer.from('changed') });
    assert.is.not((await member.hashKV({ revision: 0 })).hash, kv.hash);
    assert.is((await member.hashKV({ revision: kv.header!.revision })).hash, kv.hash);
    assert.is.not((await member.hash()).hash, whole.hash);
  } finally {
    await member?.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
