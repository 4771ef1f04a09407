/**
 * etcd's Election service over gRPC (v3electionpb, @grpc/grpc-js), side by side with a real etcd
 * 3.4: one scripted sequence runs against both and the transcripts must match once lease ids (each
 * server's own) and member/cluster ids are replaced; revisions are compared as they are (both
 * servers start empty and take the same writes). The sequence covers campaign (at once, waiting
 * behind another, again with the same lease), proclaim, leader, observe (leader, proclamations,
 * the next leader after the first's lease is revoked), resign, a waiting campaign whose call is
 * cancelled (it resigns: its key is gone), and the bad inputs: no leader, proclaim without
 * leadership, resign of a key not held, a missing leader field, an empty key, an unknown lease,
 * an empty name.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import { b64, killAll, normalizeIds, postJson, startEtcd, startKeyraft, type ServerProcess } from '../integration/harness.js';
import { ElectionClient, failureOf, type LeaderKey, type LeaderReply } from './election-client.js';
import { eventually } from './eventually.js';

const test = suite('election-grpc');
let keyraft: ServerProcess;
let etcd: ServerProcess;
const needBoth = needEtcd('election/election-grpc', ['etcd']);

async function grant(port: number, ttl: number): Promise<string> {
  return (await postJson(port, '/v3/lease/grant', { TTL: ttl })).json.ID as string;
}

async function keysUnder(port: number, prefix: string): Promise<string[]> {
  const end = Buffer.from(prefix);
  end[end.length - 1]!++;
  const r = await postJson(port, '/v3/kv/range', { key: b64(prefix), range_end: end.toString('base64'), keys_only: true });
  return (r.json.kvs ?? []).map((kv: { key: string }) => Buffer.from(kv.key, 'base64').toString());
}

async function run(port: number): Promise<string[]> {
  const out: string[] = [];
  const client = new ElectionClient(port);
  const leases: string[] = [];
  // Lease ids differ between servers: name them by order of appearance.
  const norm = (text: string): string => {
    let s = text;
    for (const [i, lease] of leases.entries()) {
      s = s.replaceAll(lease, `<lease${i}>`).replaceAll(BigInt(lease).toString(16), `<hex${i}>`);
    }
    return normalizeIds(s);
  };
  const leaderKeyText = (l: LeaderKey) => `name=${l.name.toString()} key=${l.key.toString()} rev=${l.rev} lease=${l.lease}`;
  const kvText = (r: LeaderReply) => `rev ${r.header.revision}: ${r.kv.key.toString()}=${r.kv.value.toString()} create=${r.kv.create_revision} mod=${r.kv.mod_revision} v${r.kv.version} lease=${r.kv.lease}`;
  const step = async (what: string, call: () => Promise<string>) => {
    try {
      out.push(norm(`${what}: ${await call()}`));
    } catch (err) {
      out.push(norm(`${what}: ${failureOf(err)}`));
    }
  };
  try {
    await step('leader of nothing', async () => kvText(await client.leader('e')));
    const a = await grant(port, 60);
    const b = await grant(port, 60);
    const c = await grant(port, 60);
    leases.push(a, b, c);
    const observed: LeaderReply[] = [];
    const observer = client.observe('e', (r) => observed.push(r));
    const first = await client.campaign('e', a, 'a1').reply;
    out.push(norm(`campaign a: rev ${first.header.revision} ${leaderKeyText(first.leader)}`));
    await eventually('observer saw a1', async () => observed.length >= 1);
    const second = client.campaign('e', b, 'b1');
    await eventually('b waits in line', async () => (await keysUnder(port, 'e/')).length === 2);
    await step('campaign a again, new value', async () => {
      const again = await client.campaign('e', a, 'a2').reply;
      return `rev ${again.header.revision} ${leaderKeyText(again.leader)}`;
    });
    await eventually('observer saw a2', async () => observed.length >= 2);
    await step('proclaim a3', async () => `rev ${(await client.proclaim(first.leader, 'a3')).header.revision}`);
    await eventually('observer saw a3', async () => observed.length >= 3);
    await step('leader', async () => kvText(await client.leader('e')));
    await step('proclaim with a wrong rev', async () => `${(await client.proclaim({ ...first.leader, rev: String(Number(first.leader.rev) + 100) }, 'x')).header.revision}`);
    await step('proclaim with no leader field', async () => `${(await client.proclaim(undefined, 'x')).header.revision}`);
    await step('proclaim with an empty key', async () => `${(await client.proclaim({ name: Buffer.from('e'), key: Buffer.alloc(0), rev: '0', lease: '0' }, 'x')).header.revision}`);
    await step('resign of a key not held', async () => `rev ${(await client.resign({ ...first.leader, key: Buffer.from('e/none') })).header.revision}`);
    await step('resign with no leader field', async () => `${(await client.resign(undefined)).header.revision}`);
    await step('campaign under an unknown lease', async () => `${(await client.campaign('e', '12345', 'x').reply).header.revision}`);
    // A third campaigner waits, then its call is cancelled: it resigns, its key goes.
    const third = client.campaign('e', c, 'c1');
    await eventually('c waits in line', async () => (await keysUnder(port, 'e/')).length === 3);
    third.cancel();
    await step('cancelled campaign', async () => { await third.reply; return 'elected?'; });
    await eventually('the cancelled campaigner resigned', async () => (await keysUnder(port, 'e/')).length === 2);
    // a's lease ends: b is elected, the observer follows.
    await postJson(port, '/v3/lease/revoke', { ID: a });
    const won = await second.reply;
    out.push(norm(`campaign b: rev ${won.header.revision} ${leaderKeyText(won.leader)}`));
    await eventually('observer saw b1', async () => observed.length >= 4);
    await step('resign b', async () => `rev ${(await client.resign(won.leader)).header.revision}`);
    await step('leader after resign', async () => kvText(await client.leader('e')));
    await step('campaign with an empty name', async () => {
      const r = await client.campaign('', c, 'z').reply;
      return `rev ${r.header.revision} ${leaderKeyText(r.leader)}`;
    });
    await step('leader of the empty name', async () => kvText(await client.leader('')));
    observer.cancel();
    out.push(norm(`observed: ${observed.map(kvText).join(' | ')}`));
    out.push(norm(`observe ended: ${await observer.ended}`));
    for (const lease of leases) await postJson(port, '/v3/lease/revoke', { ID: lease });
  } finally {
    client.close();
  }
  return out;
}

test.before(async () => {
  if (needBoth.found) [keyraft, etcd] = await Promise.all([startKeyraft(), startEtcd()]);
});

test.after(async () => {
  await killAll();
});

needBoth.test(test, 'Campaign, Proclaim, Leader, Observe, Resign and their errors: the same transcript as etcd 3.4', async () => {
  const fromEtcd = await run(etcd.clientPort);
  const fromKeyraft = await run(keyraft.clientPort);
  for (let i = 0; i < fromEtcd.length; i++) assert.is(fromKeyraft[i], fromEtcd[i], `step ${i}`);
  assert.is(fromKeyraft.length, fromEtcd.length);
  // The transcript is not vacuous: the errors are etcd's, and the observer followed three values and a failover.
  assert.ok(fromKeyraft.includes('proclaim with a wrong rev: code 2 election: not leader'), fromKeyraft.join('\n'));
  assert.ok(fromKeyraft.includes('leader of nothing: code 2 election: no leader'));
  assert.match(fromKeyraft.find((l) => l.startsWith('observed:'))!, /e\/<hex0>=a1 .*a2 .*a3 .*e\/<hex1>=b1/);
});

test.run();
