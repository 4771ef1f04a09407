/**
 * Leases on a real 3-member cluster across the leader's kill -9 (50 ms heartbeats, 500 ms
 * election timeout, so the minimum TTL is ceil(1.5 x 0.5 s) = 1 s):
 *   - a lease kept alive (through followers, which forward to the leader, and whichever member
 *     answers) stays alive through the failover: its key is never deleted;
 *   - a lease left alone expires no later than TTL + one election timeout after the new leader
 *     took over (the new leader gives every lease a fresh TTL plus one election timeout);
 *   - with checkpoints, a long lease left alone keeps the remaining TTL it had, not a fresh one;
 *   - every member applies the same revocations: they converge on the same revision.
 * Time bounds carry 1 s of slack for this shared machine; the lower bounds have none.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { killAll } from '../integration/harness.js';
import { TestCluster } from '../cluster/cluster-harness.js';
import { LeaseGrpc } from '../cluster/lease-grpc.js';

const ELECTION_MS = 500;
const SLACK_MS = 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.after(async () => {
  await killAll();
});

/** A key's presence, asked of any member that answers. */
async function keyOn(clients: Map<number, LeaseGrpc>, cluster: TestCluster, key: string) {
  for (const [i, c] of clients) {
    if (!cluster.isUp(i)) continue;
    try {
      return { found: true as const, kv: await c.get(key) };
    } catch {
      // that member is down or has no leader yet: try the next
    }
  }
  return { found: false as const, kv: undefined };
}

test('kill -9 of the leader: a kept-alive lease survives, one left alone expires by TTL + election timeout after the failover', async () => {
  const cluster = await TestCluster.start({ members: 3, args: ['--lease-checkpoint-interval', '1000'] });
  const clients = new Map(cluster.slots.map((s, i) => [i, new LeaseGrpc(s.clientPort)] as const));
  let keeping = true;
  try {
    const leader = await cluster.waitLeader();
    const followers = [0, 1, 2].filter((i) => i !== leader);
    const f = clients.get(followers[0]!)!;
    const kept = (await f.grant(3)).ID;
    const longSent = performance.now();
    const long = (await f.grant(10)).ID;
    await f.put('kept/k', 'v', kept);
    await f.put('long/k', 'v', long);
    const keptBefore = (await f.get('kept/k'))!;

    // Keep `kept` alive every 500 ms through whichever member answers, followers first.
    const ttls: number[] = [];
    const keeper = (async () => {
      const streams = new Map<number, ReturnType<LeaseGrpc['keepAliveStream']>>();
      while (keeping) {
        for (const i of [...followers, leader]) {
          if (!cluster.isUp(i)) continue;
          try {
            let s = streams.get(i);
            if (!s) streams.set(i, s = clients.get(i)!.keepAliveStream());
            ttls.push(await s.keepAlive(kept));
            break;
          } catch {
            streams.get(i)?.close();
            streams.delete(i);
          }
        }
        await sleep(500);
      }
      for (const s of streams.values()) s.close();
    })();

    // Let checkpoints of `long` land, then fail over about 4 s into its 10 s TTL, with `alone`
    // granted just before: it is alive when the leader dies, and nobody renews it.
    await sleep(Math.max(0, longSent + 4000 - performance.now()));
    const aloneSent = performance.now();
    const alone = (await f.grant(3)).ID;
    await f.put('alone/k', 'v', alone);
    const aloneNow = await f.get('alone/k');
    const readEnded = performance.now();
    // Gone from a read that ended before 3 s after the grant was sent: revoked before its TTL.
    assert.ok(aloneNow !== undefined || readEnded - aloneSent >= 3000,
      `the lease left alone was gone ${(readEnded - aloneSent).toFixed(0)} ms after its grant was sent, before its 3 s TTL`);
    await cluster.kill9(leader);
    const killed = performance.now();
    const newLeader = await cluster.waitLeader(20_000, followers);
    const tookOver = performance.now();
    const nl = clients.get(newLeader)!;

    // `alone`: gone no later than TTL + one election timeout after the new leader took over.
    let aloneGoneAt = 0;
    let longGoneAt = 0;
    while (aloneGoneAt === 0 || longGoneAt === 0) {
      const now = performance.now();
      if (aloneGoneAt === 0 && (await keyOn(clients, cluster, 'alone/k')).found && (await keyOn(clients, cluster, 'alone/k')).kv === undefined) aloneGoneAt = now;
      if (longGoneAt === 0 && (await keyOn(clients, cluster, 'long/k')).found && (await keyOn(clients, cluster, 'long/k')).kv === undefined) longGoneAt = now;
      if (now - tookOver > 20_000) break;
      await sleep(50);
    }
    console.log(`  lease-failover: left alone revoked ${(aloneGoneAt - tookOver).toFixed(0)} ms, checkpointed 10 s lease ${(longGoneAt - tookOver).toFixed(0)} ms after the new leader was seen`);
    assert.ok(aloneGoneAt > 0 && aloneGoneAt - tookOver <= 3000 + ELECTION_MS + SLACK_MS,
      `the lease left alone was revoked ${(aloneGoneAt - tookOver).toFixed(0)} ms after the failover (TTL 3 s + election 0.5 s)`);
    assert.ok(aloneGoneAt - aloneSent >= 3000, `the lease left alone was revoked ${(aloneGoneAt - aloneSent).toFixed(0)} ms after its grant, before its TTL`);
    // It was alive at the kill, so the new leader is the one that revoked it.
    assert.ok(aloneGoneAt > killed, 'the lease left alone outlived the old leader');
    // `long` had about 7 s left at its last checkpoint before the kill (10 s TTL, 4 s in, checkpoints
    // each second): the new leader gives it that plus 0.5 s, not a fresh 10 s.
    assert.ok(longGoneAt > 0 && longGoneAt - tookOver <= 7000 + ELECTION_MS + SLACK_MS,
      `the checkpointed 10 s lease was revoked ${(longGoneAt - tookOver).toFixed(0)} ms after the failover; without its checkpoint it would live about 10.5 s`);
    assert.ok(longGoneAt - longSent >= 10_000, `the 10 s lease was revoked ${(longGoneAt - longSent).toFixed(0)} ms after its grant was sent, before its TTL`);

    // `kept` lived through all of it: never answered TTL 0, its key never deleted (same create
    // revision and version as before the failover), and it is still listed.
    // Two more renewals after the failover (at least 8 in all) show the keeper still answered.
    const renewalsWanted = Math.max(8, ttls.length + 2);
    const renewalsDeadline = performance.now() + 5000;
    while (ttls.length < renewalsWanted && performance.now() < renewalsDeadline) await sleep(50);
    assert.ok(ttls.length >= 8, `keep-alives answered: ${ttls.length}`);
    assert.ok(ttls.every((t) => t === 3), `keep-alive TTLs: ${ttls.join(',')}`);
    const keptAfter = await nl.get('kept/k');
    assert.ok(keptAfter !== undefined, 'the kept-alive lease\'s key survived the failover');
    assert.is(keptAfter!.create_revision, keptBefore.create_revision);
    assert.is(keptAfter!.version, keptBefore.version);
    assert.ok((await nl.leases()).leases.some((l) => l.ID === kept));
    const ttl = await clients.get(followers.find((i) => i !== newLeader)!)!.timeToLive(kept, true);
    assert.is(ttl.grantedTTL, 3);
    assert.ok(ttl.TTL >= 1, `time-to-live through a follower: ${ttl.TTL}`);
    assert.equal(ttl.keys.map(String), ['kept/k']);

    // Released, it expires too, and the two members left agree on the result.
    keeping = false;
    await keeper;
    while ((await nl.get('kept/k')) !== undefined) await sleep(50);
    assert.is((await nl.timeToLive(kept)).TTL, -1);
    const converged = await cluster.waitConverged();
    assert.is(converged.length, 2);
  } catch (err) {
    // The members' own account of what happened, for a failure here.
    (err as Error).message += '\n' + cluster.slots.map((s) => `--- ${s.name}\n${s.process?.output().slice(-3000) ?? '(down)'}`).join('\n');
    throw err;
  } finally {
    keeping = false;
    for (const c of clients.values()) c.close();
    await cluster.close();
  }
});

test.run();
