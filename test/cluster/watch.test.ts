/**
 * Watch on a 3-member cluster: every member applies every entry, so a watcher on any member sees
 * writes made through any other, with the same revisions, in order. The etcd3 client watches on
 * each follower while writes go through the leader.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import { killAll } from '../integration/harness.js';
import { TestCluster } from './cluster-harness.js';

test.after(async () => {
  await killAll();
});

test('watchers on the followers see the writes made through the leader, with the leader\'s revisions', async () => {
  const cluster = await TestCluster.start({ members: 3 });
  const clients: Etcd3[] = [];
  const watchers: Watcher[] = [];
  try {
    const leader = await cluster.waitLeader();
    const followers = [0, 1, 2].filter((i) => i !== leader);
    const seen = new Map<number, string[]>();
    for (const f of followers) {
      const c = new Etcd3({ hosts: `127.0.0.1:${cluster.slots[f]!.clientPort}` });
      clients.push(c);
      const w = await c.watch().prefix('cw/').create();
      seen.set(f, []);
      w.on('put', (kv: IKeyValue) => seen.get(f)!.push(`${kv.key.toString()}=${kv.value.toString()}@${kv.mod_revision}`));
      w.on('delete', (kv: IKeyValue) => seen.get(f)!.push(`-${kv.key.toString()}@${kv.mod_revision}`));
      watchers.push(w);
    }
    const writer = new Etcd3({ hosts: `127.0.0.1:${cluster.slots[leader]!.clientPort}` });
    clients.push(writer);
    const expected: string[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await writer.put(`cw/${i % 7}`).value(`v${i}`);
      expected.push(`cw/${i % 7}=v${i}@${r.header.revision}`);
    }
    const d = await writer.delete().key('cw/0');
    expected.push(`-cw/0@${d.header.revision}`);
    for (const [f, w] of followers.map((f, i) => [f, watchers[i]!] as const)) {
      await new Promise<void>((resolve) => {
        const check = (): void => { if (seen.get(f)!.length >= expected.length) resolve(); };
        check();
        w.on('put', check);
        w.on('delete', check);
      });
      assert.equal(seen.get(f), expected, `member ${f}`);
    }
  } finally {
    // Canceled before the clients close: a live watcher of a closed etcd3 client keeps redialing
    // (its backoff timer holds the process, and uvu never exits).
    for (const w of watchers) await w.cancel().catch(() => undefined);
    for (const c of clients) c.close();
    await cluster.close();
  }
});

test.run();
