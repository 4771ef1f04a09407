import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Limits } from '../../src/platform/limits.js';
import type { Applier } from '../../src/server/applier.js';
import { withApplier } from '../mvcc/helpers.js';
import { b, FramedTestSink, newHub, PiecesTestSink, settle, TestSink, type Resp } from './helpers.js';

/**
 * The live path writes a revision's responses to all of a stream's watchers as one framed buffer,
 * each event encoded once and the header once per revision (watch-hub.ts notify, watch-stream.ts
 * sendRevision); the catch-up path sets the header revision as etcd does. These check that no
 * watcher gets another's events or id, and the header revisions.
 */

let index = 1;
function put(applier: Applier, key: string, value: string): void {
  applier.apply({ id: 0, put: { key: b(key), value: b(value) } });
  applier.commit(index++);
}
function txnPuts(applier: Applier, kvs: Array<[string, string]>): void {
  applier.apply({ id: 0, txn: { compare: [], success: kvs.map(([k, v]) => ({ request_put: { key: b(k), value: b(v) } })), failure: [] } });
  applier.commit(index++);
}

/** Per watch id, its events as "key=value@rev" (prev value after a slash when present). */
function byWatcher(rs: Resp[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const r of rs) {
    if (r.created || r.canceled || (r.events ?? []).length === 0) continue;
    const id = r.watch_id ?? 0;
    const list = out.get(id) ?? [];
    for (const e of r.events!) {
      const prev = e.prev_kv === undefined ? '' : `/${e.prev_kv.value!.toString('latin1')}`;
      list.push(`${e.kv!.key!.toString('latin1')}=${(e.kv!.value ?? Buffer.alloc(0)).toString('latin1')}@${e.kv!.mod_revision}${prev}`);
    }
    out.set(id, list);
  }
  return out;
}

for (const Sink of [PiecesTestSink, FramedTestSink, TestSink]) {
  test(`${Sink.name}: watchers on one stream with overlapping ranges each get exactly their events, under their own watch_id, one response per revision`, async () => {
    await withApplier(async (applier) => {
      const hub = newHub(applier);
      put(applier, 'a0', 'x'); // revision 2: the prev_kv of the next put of a0
      const sink = new Sink();
      const s = hub.newStream(sink, 1 << 20);
      s.handle({ create_request: { key: b('a'), range_end: b('b') } }); // 0: prefix a
      s.handle({ create_request: { key: b('a1') } }); // 1: the key a1
      s.handle({ create_request: { key: b('a0'), range_end: b('a2'), prev_kv: true } }); // 2: [a0, a2) with prev
      s.handle({ create_request: { key: b('a'), range_end: b('b'), filters: [0] } }); // 3: prefix a, no puts
      s.handle({ create_request: { key: b('a1'), range_end: b('\0'), watch_id: 40 } }); // 40: a1 and up
      s.handle({ create_request: { key: b('z') } }); // 5: never matched
      txnPuts(applier, [['a0', 'p'], ['a1', 'q'], ['b', 'r']]); // revision 3
      put(applier, 'a2', 's'); // revision 4
      put(applier, 'c', 't'); // revision 5
      sink.read();
      const got = byWatcher(sink.received);
      assert.equal(got.get(0), ['a0=p@3', 'a1=q@3', 'a2=s@4']);
      assert.equal(got.get(1), ['a1=q@3']);
      assert.equal(got.get(2), ['a0=p@3/x', 'a1=q@3']);
      assert.is(got.get(3), undefined, 'a NOPUT watcher got puts');
      assert.equal(got.get(40), ['a1=q@3', 'b=r@3', 'a2=s@4', 'c=t@5']);
      assert.is(got.get(5), undefined);
      // One response per watcher and revision (in revision order; watchers of one revision in no
      // set order, as in etcd), its header at that revision.
      const events = sink.received.filter((r) => (r.events ?? []).length > 0);
      const headers = events.map((r) => [r.header?.revision, r.watch_id ?? 0, String(r.header?.cluster_id), String(r.header?.member_id), r.header?.raft_term] as const);
      assert.equal(headers.map((h) => h[0]), [3, 3, 3, 3, 4, 4, 5]);
      assert.equal([...headers].sort((x, y) => x[0]! - y[0]! || x[1] - y[1]), [
        [3, 0, '7', '9', 2], [3, 1, '7', '9', 2], [3, 2, '7', '9', 2], [3, 40, '7', '9', 2],
        [4, 0, '7', '9', 2], [4, 40, '7', '9', 2],
        [5, 40, '7', '9', 2],
      ]);
      if (sink instanceof FramedTestSink) assert.is(sink.framedWrites, 3, 'one framed write per revision for the stream');
      if (sink instanceof PiecesTestSink) assert.is(sink.piecesWrites, 3, 'one pieces write per revision for the stream');
      hub.close();
    });
  });
}

test('two streams matching the same events each get their own responses; a stream over its mark leaves its watchers to history', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const fast = new FramedTestSink();
    const slow = new FramedTestSink(1); // over its mark after its first write
    const a = hub.newStream(fast, 1 << 20);
    const c = hub.newStream(slow, 1 << 20);
    for (const s of [a, c]) {
      s.handle({ create_request: { key: b('k'), range_end: b('l') } });
      s.handle({ create_request: { key: b('k1') } });
    }
    for (let i = 0; i < 5; i++) put(applier, `k${i % 2}`, `v${i}`);
    assert.ok(hub.slowWatchers > 0, 'the slow stream\'s watchers should be behind');
    await settle(hub, [fast, slow]);
    for (const sink of [fast, slow]) {
      const got = byWatcher(sink.received);
      assert.equal(got.get(0), ['k0=v0@2', 'k1=v1@3', 'k0=v2@4', 'k1=v3@5', 'k0=v4@6']);
      assert.equal(got.get(1), ['k1=v1@3', 'k1=v3@5']);
    }
    hub.close();
  });
});

test('catch-up: each response\'s header revision is the store\'s revision when it is sent, as etcd (not the last revision it carries)', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const history = Limits.watchCatchUpRevisionsMax + 500;
    for (let i = 0; i < history; i++) put(applier, `k${i % 3}`, `v${i}`);
    const current = history + 1;
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ create_request: { key: b('k'), range_end: b('l'), start_revision: 2 } });
    await settle(hub, [sink]);
    const responses = sink.received.filter((r) => (r.events ?? []).length > 0);
    // etcd 3.4 over the same history (watch from 2 over 1,500 revisions): events 2..1001 and
    // 1002..1501, both with header revision 1501.
    assert.equal(responses.map((r) => [r.header?.revision, r.events!.length, r.events![0]!.kv!.mod_revision, r.events!.at(-1)!.kv!.mod_revision]), [
      [current, Limits.watchCatchUpRevisionsMax, 2, Limits.watchCatchUpRevisionsMax + 1],
      [current, history - Limits.watchCatchUpRevisionsMax, Limits.watchCatchUpRevisionsMax + 2, current],
    ]);
    hub.close();
  });
});

test.run();
