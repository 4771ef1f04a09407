import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { Lessor, MAX_LEASE_TTL_SECONDS } from '../../src/lease/lessor.js';
import { Applier } from '../../src/server/applier.js';
import { silentLogger } from '../../src/platform/logger.js';
import type { LeaseGrantResponse, LeaseTimeToLiveResponse, PutRequest, RangeResponse, TxnResponse } from '../../src/proto/etcd-types.js';
import { CompareResult, CompareTarget, type InternalRequest } from '../../src/proto/etcd-types.js';
import { decode, encode, messageType } from '../../src/proto/codec.js';
import { b, throwsCode, withTempDir } from '../mvcc/helpers.js';

/** A clock the test moves by hand. */
function manualClock(): { now: () => number; advance(ms: number): void } {
  let t = 1000;
  return { now: () => t, advance(ms) { t += ms; } };
}

const open = (dir: string, now: () => number) =>
  Applier.open(join(dir, 'db'), { logger: silentLogger, lessor: { minTtlSeconds: 2, now } });

const grant = (a: Applier, id: bigint, ttl: number) => a.apply({ id: 1, lease_grant: { ID: id, TTL: ttl } }) as LeaseGrantResponse;
const revoke = (a: Applier, id: bigint) => a.apply({ id: 1, lease_revoke: { ID: id } });
const put = (a: Applier, key: string, extra: Partial<PutRequest> = {}) => a.apply({ id: 1, put: { key: b(key), value: b('v'), ...extra } });
const leaseOf = (a: Applier, key: string) => (a.range({ key: b(key) }) as RangeResponse).kvs[0]?.lease;
void (undefined as unknown as LeaseTimeToLiveResponse);

test('grant: TTL raised to the minimum, too large refused, an existing id refused', () => {
  const lessor = new Lessor(null, { minTtlSeconds: 2, now: () => 0 });
  assert.is(lessor.grant(1n, 0).ttlSeconds, 2);
  assert.is(lessor.grant(2n, -5).ttlSeconds, 2);
  assert.is(lessor.grant(3n, 60).ttlSeconds, 60);
  assert.is(lessor.grant(4n, MAX_LEASE_TTL_SECONDS).ttlSeconds, MAX_LEASE_TTL_SECONDS);
  throwsCode(() => lessor.grant(5n, MAX_LEASE_TTL_SECONDS + 1), 'LeaseTTLTooLarge');
  throwsCode(() => lessor.grant(3n, 10), 'LeaseExist');
  assert.equal(lessor.list().sort(), [1n, 2n, 3n, 4n]);
  lessor.checkInvariants();
});

test('expiry on the primary: never before TTL after the last renewal, found once due, retried later', () => {
  const clock = manualClock();
  const lessor = new Lessor(null, { minTtlSeconds: 2, now: clock.now });
  lessor.promote(0);
  lessor.grant(1n, 5);
  lessor.grant(2n, 10);
  clock.advance(4999);
  assert.equal(lessor.findExpired(100), []);
  assert.is(lessor.renew(1n).ttlSeconds, 5);
  clock.advance(4999);
  assert.equal(lessor.findExpired(100), []);
  clock.advance(1);
  assert.equal(lessor.findExpired(100), [1n]);
  clock.advance(1);
  assert.equal(lessor.findExpired(100), [2n]);
  // Being revoked: not handed out again at once, but again after the retry interval.
  assert.equal(lessor.findExpired(100), []);
  throwsCode(() => lessor.renew(1n), 'LeaseNotFound');
  clock.advance(3000);
  assert.equal(lessor.findExpired(1), [1n]);
  assert.equal(lessor.findExpired(1), [2n]);
  lessor.checkInvariants();
});

test('follower: leases never expire there; promote gives extend + remaining (checkpointed or full) TTL', () => {
  const clock = manualClock();
  const lessor = new Lessor(null, { minTtlSeconds: 2, now: clock.now });
  lessor.grant(1n, 60);
  lessor.grant(2n, 600);
  lessor.checkpoint([{ ID: 2n, remaining_TTL: 30 }, { ID: 99n, remaining_TTL: 5 }]);
  clock.advance(10_000_000);
  assert.equal(lessor.findExpired(100), []);
  lessor.checkInvariants();
  lessor.promote(1000);
  lessor.checkInvariants();
  clock.advance(31_000 - 1);
  assert.equal(lessor.findExpired(100), []);
  clock.advance(1);
  assert.equal(lessor.findExpired(100), [2n]);
  lessor.removeLease(2n);
  clock.advance(61_000 - 31_000 - 1);
  assert.equal(lessor.findExpired(100), []);
  clock.advance(1);
  assert.equal(lessor.findExpired(100), [1n]);
  lessor.demote();
  lessor.checkInvariants();
});

test('renewing a checkpointed lease asks for its checkpoint to be cleared', () => {
  const clock = manualClock();
  const lessor = new Lessor(null, { minTtlSeconds: 2, now: clock.now });
  lessor.promote(0);
  lessor.grant(1n, 600);
  assert.equal(lessor.renew(1n), { ttlSeconds: 600, clearCheckpoint: false });
  clock.advance(100_000);
  const due = lessor.checkpointsDue(60_000, 1000);
  assert.equal(due, [[{ ID: 1n, remaining_TTL: 500 }]]);
  lessor.checkpoint(due[0]!);
  assert.equal(lessor.renew(1n), { ttlSeconds: 600, clearCheckpoint: true });
  lessor.checkpoint([{ ID: 1n, remaining_TTL: 0 }]);
  assert.equal(lessor.renew(1n), { ttlSeconds: 600, clearCheckpoint: false });
  // Leases no longer than the interval are not checkpointed.
  lessor.grant(2n, 30);
  assert.equal(lessor.checkpointsDue(60_000, 1000).flat().map((c) => c.ID), [1n]);
});

test('applier: put attaches, a put under another lease moves the key, ignore_lease keeps it, delete detaches', () => withTempDir(async (dir) => {
  const clock = manualClock();
  const a = await open(dir, clock.now);
  try {
    assert.equal(grant(a, 7n, 30), { ID: 7n, TTL: 30, error: '' });
    grant(a, 8n, 30);
    throwsCode(() => grant(a, 7n, 30), 'LeaseExist');
    throwsCode(() => put(a, 'k', { lease: 9n }), 'LeaseNotFound');
    put(a, 'k', { lease: 7n });
    put(a, 'j', { lease: 7n });
    assert.equal(a.lessor.keysOf(7n).map(String), ['j', 'k']);
    put(a, 'k', { lease: 8n });
    assert.equal(a.lessor.keysOf(7n).map(String), ['j']);
    assert.equal(a.lessor.keysOf(8n).map(String), ['k']);
    put(a, 'k', { ignore_lease: true });
    assert.is(leaseOf(a, 'k'), 8n);
    put(a, 'j');
    assert.equal(a.lessor.keysOf(7n), []);
    a.apply({ id: 1, delete_range: { key: b('k') } });
    assert.equal(a.lessor.keysOf(8n), []);
    // A txn compare on LEASE, and a txn put naming a lease.
    put(a, 'x', { lease: 7n });
    const t = a.apply({ id: 1, txn: {
      compare: [{ key: b('x'), target: CompareTarget.LEASE, result: CompareResult.EQUAL, lease: 7n }],
      success: [{ request_put: { key: b('y'), value: b('1'), lease: 8n } }],
    } }) as TxnResponse;
    assert.is(t.succeeded, true);
    assert.equal(a.lessor.keysOf(8n).map(String), ['y']);
    a.lessor.checkInvariants();
  } finally {
    await a.close();
  }
}));

test('applier: revoke deletes every attached key in one revision, then the lease; unknown lease refused', () => withTempDir(async (dir) => {
  const clock = manualClock();
  const a = await open(dir, clock.now);
  try {
    grant(a, 1n, 10);
    put(a, 'a', { lease: 1n });
    put(a, 'b', { lease: 1n });
    put(a, 'c');
    const before = a.currentRevision;
    revoke(a, 1n);
    assert.is(a.currentRevision, before + 1);
    assert.is((a.range({ key: b('a'), range_end: b('z') }) as RangeResponse).kvs.map((kv) => String(kv.key)).join(), 'c');
    assert.is(a.lessor.exists(1n), false);
    throwsCode(() => revoke(a, 1n), 'LeaseNotFound');
    // A lease without keys: revoked without a new revision, as etcd.
    grant(a, 2n, 10);
    const rev = a.currentRevision;
    revoke(a, 2n);
    assert.is(a.currentRevision, rev);
  } finally {
    await a.close();
  }
}));

test('restart: leases and their keys come back from the backend; checkpoints too; revoked ones do not', () => withTempDir(async (dir) => {
  const clock = manualClock();
  let a = await open(dir, clock.now);
  grant(a, 1n, 100);
  grant(a, 2n, 200);
  grant(a, 3n, 300);
  put(a, 'k1', { lease: 1n });
  put(a, 'k2', { lease: 2n });
  revoke(a, 3n);
  a.apply({ id: 1, lease_checkpoint: { checkpoints: [{ ID: 2n, remaining_TTL: 50 }] } });
  a.commit(10);
  await a.flush();
  await a.close();
  a = await open(dir, clock.now);
  try {
    assert.equal(a.lessor.list().sort(), [1n, 2n]);
    assert.equal(a.lessor.keysOf(1n).map(String), ['k1']);
    assert.equal(a.lessor.keysOf(2n).map(String), ['k2']);
    assert.is(a.lessor.get(2n)!.remainingTtlSeconds, 50);
    assert.is(a.lessor.get(1n)!.ttlSeconds, 100);
    a.lessor.checkInvariants();
    // A restarted member does not expire them at once: promotion gives fresh TTLs.
    clock.advance(10_000_000);
    a.lessor.promote(1000);
    assert.equal(a.lessor.findExpired(10), []);
    clock.advance(51_000);
    assert.equal(a.lessor.findExpired(10), [2n]);
  } finally {
    await a.close();
  }
}));

test('a checkpoint that went through the log: remaining 0 (left out on the wire) clears it', () => withTempDir(async (dir) => {
  const a = await open(dir, manualClock().now);
  try {
    grant(a, 5n, 600);
    const type = messageType('keyraftpb.InternalRequest');
    const through = (remaining: number) => decode<InternalRequest>(type, encode(type, { id: 1, lease_checkpoint: { checkpoints: [{ ID: 5n, remaining_TTL: remaining }] } }));
    a.apply(through(42));
    assert.is(a.lessor.get(5n)!.remainingTtlSeconds, 42);
    a.apply(through(0));
    assert.is(a.lessor.get(5n)!.remainingTtlSeconds, 0);
  } finally {
    await a.close();
  }
}));

test.run();
