import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Limits } from '../../src/platform/limits.js';
import type { Applier } from '../../src/server/applier.js';
import { withApplier } from '../mvcc/helpers.js';
import { b, newHub, settle, TestSink, turn, type Resp } from './helpers.js';

/** etcd 3.4's answers on a watch stream, one property at a time, against the hub over a real store. */

let index = 1;
function put(applier: Applier, key: string, value: string): void {
  applier.apply({ id: 0, put: { key: b(key), value: b(value) } });
  applier.commit(index++);
}

const events = (rs: Resp[]): string[] =>
  rs.flatMap((r) => (r.events ?? []).map((e) => `${(e.type ?? 0) === 0 ? 'PUT' : 'DELETE'} ${e.kv!.key!.toString('latin1')}@${e.kv!.mod_revision}`));

test('create: auto ids count up from 0; the created header is the revision at the create; a chosen id is kept', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    put(applier, 'a', '1');
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ create_request: { key: b('a') } });
    s.handle({ create_request: { key: b('b') } });
    s.handle({ create_request: { key: b('c'), watch_id: 7 } });
    s.handle({ create_request: { key: b('d') } });
    sink.read();
    assert.equal(sink.received.map((r) => [r.watch_id ?? 0, r.created, r.header?.revision, r.header?.cluster_id, r.header?.member_id, r.header?.raft_term]),
      [[0, true, 2, 7n, 9n, 2], [1, true, 2, 7n, 9n, 2], [7, true, 2, 7n, 9n, 2], [2, true, 2, 7n, 9n, 2]]);
    hub.close();
  });
});

test('create: duplicate id, range_end before key, and range_end equal to key are refused as etcd (watch_id -1, created and canceled)', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ create_request: { key: b('a'), watch_id: 3 } });
    s.handle({ create_request: { key: b('b'), watch_id: 3 } });
    s.handle({ create_request: { key: b('m'), range_end: b('c') } });
    s.handle({ create_request: { key: b('m'), range_end: b('m') } });
    sink.read();
    assert.equal(sink.received.slice(1).map((r) => [r.watch_id, r.created, r.canceled, r.cancel_reason]), [
      [-1, true, true, 'mvcc: duplicate watch ID provided on the WatchStream'],
      [-1, true, true, 'mvcc: watcher range is empty'],
      [-1, true, true, 'mvcc: watcher range is empty'],
    ]);
    assert.is(hub.watchers, 1);
    hub.close();
  });
});

test('create on an empty key watches "\\0"; range_end "\\0" watches every key from key', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ create_request: { key: Buffer.alloc(0) } });
    s.handle({ create_request: { key: b('m'), range_end: Buffer.from([0]) } });
    put(applier, '\0', 'z');
    put(applier, 'a', '1');
    put(applier, 'm', '1');
    put(applier, 'zz', '1');
    sink.read();
    assert.equal(events(sink.received.filter((r) => (r.watch_id ?? 0) === 0)), ['PUT \0@2']);
    assert.equal(events(sink.received.filter((r) => r.watch_id === 1)), ['PUT m@4', 'PUT zz@5']);
    hub.close();
  });
});

test('cancel: a known id answers canceled at the current revision, an unknown id answers nothing', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ create_request: { key: b('a') } });
    put(applier, 'x', '1');
    s.handle({ cancel_request: { watch_id: 42 } });
    s.handle({ cancel_request: { watch_id: 0 } });
    put(applier, 'a', '1');
    sink.read();
    assert.equal(sink.received.map((r) => [r.watch_id ?? 0, r.created ?? false, r.canceled ?? false, r.header?.revision]), [[0, true, false, 1], [0, false, true, 2]]);
    assert.is(hub.watchers, 0);
    hub.close();
  });
});

test('a txn: one response per revision, events in op order; DeleteRange gives one DELETE per key', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ create_request: { key: b('a'), range_end: b('z') } });
    applier.apply({ id: 0, txn: { success: [
      { request_put: { key: b('q'), value: b('1') } }, { request_put: { key: b('c'), value: b('2') } }, { request_put: { key: b('m'), value: b('3') } },
    ] } });
    applier.apply({ id: 0, delete_range: { key: b('a'), range_end: b('n') } });
    sink.read();
    const rs = sink.received.slice(1);
    assert.equal(rs.map((r) => r.header?.revision), [2, 3]);
    assert.equal(events(rs), ['PUT q@2', 'PUT c@2', 'PUT m@2', 'DELETE c@3', 'DELETE m@3']);
    hub.close();
  });
});

test('filters and prev_kv: NOPUT, NODELETE; prev_kv on updates and deletes, none on a create', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ create_request: { key: b('k'), filters: [0] } });
    s.handle({ create_request: { key: b('k'), filters: [1], prev_kv: true } });
    put(applier, 'k', 'v1');
    put(applier, 'k', 'v2');
    applier.apply({ id: 0, delete_range: { key: b('k') } });
    sink.read();
    assert.equal(events(sink.received.filter((r) => (r.watch_id ?? 0) === 0)), ['DELETE k@4']);
    const w1 = sink.received.filter((r) => r.watch_id === 1).flatMap((r) => r.events ?? []);
    assert.equal(w1.map((e) => [e.kv!.value!.toString(), e.prev_kv?.value?.toString()]), [['v1', undefined], ['v2', 'v1']]);
    hub.close();
  });
});

test('start_revision in the future: nothing until the store reaches it, then from there', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ create_request: { key: b('k'), start_revision: 4 } });
    put(applier, 'k', '1');
    put(applier, 'k', '2');
    put(applier, 'k', '3');
    put(applier, 'k', '4');
    sink.read();
    assert.equal(events(sink.received), ['PUT k@4', 'PUT k@5']);
    hub.close();
  });
});

test('start_revision in the past replays history after the created response, then goes live', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    for (let i = 0; i < 5; i++) put(applier, `k${i % 2}`, `${i}`);
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ create_request: { key: b('k'), range_end: b('l'), start_revision: 3 } });
    await settle(hub, [sink]);
    put(applier, 'k9', 'x');
    sink.read();
    assert.ok(sink.received[0]!.created);
    assert.equal(events(sink.received), ['PUT k1@3', 'PUT k0@4', 'PUT k1@5', 'PUT k0@6', 'PUT k9@7']);
    hub.close();
  });
});

test('compaction while a watcher lags: it is canceled with compact_revision, the others continue', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const slow = new TestSink(64);
    const fast = new TestSink();
    const s1 = hub.newStream(slow, 1 << 20);
    const s2 = hub.newStream(fast, 1 << 20);
    s1.handle({ create_request: { key: b('k') } });
    s2.handle({ create_request: { key: b('k') } });
    for (let i = 0; i < 20; i++) put(applier, 'k', `value-${i}`); // the slow sink fills at once
    applier.apply({ id: 0, compaction: { revision: 15 } });
    applier.commit(index++);
    put(applier, 'k', 'after');
    await settle(hub, [slow, fast]);
    const cancel = slow.received.find((r) => r.canceled);
    assert.ok(cancel, 'the lagging watcher was not canceled');
    assert.is(cancel!.compact_revision, 15);
    assert.is(cancel!.watch_id ?? 0, 0);
    const slowRevs = events(slow.received).map((e) => Number(e.split('@')[1]));
    assert.ok(slowRevs.length > 0 && slowRevs.length < 15, `slow watcher got ${slowRevs.length} events`);
    assert.equal(events(fast.received).length, 21);
    assert.is(hub.watchers, 1);
    hub.close();
  });
});

test('a client that stops reading: queued bytes stay bounded while history grows; it catches up, in order, when it reads', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const hwm = 16 * 1024;
    const slow = new TestSink(hwm);
    const other = new TestSink();
    const s = hub.newStream(slow, 1 << 20);
    const o = hub.newStream(other, 1 << 20);
    s.handle({ create_request: { key: b('k'), range_end: b('l') } });
    o.handle({ create_request: { key: b('k'), range_end: b('l') } });
    const value = Buffer.alloc(1024, 120).toString();
    const n = 3000;
    for (let i = 0; i < n; i++) {
      put(applier, `k${i % 50}`, value);
      if (i % 100 === 0) { other.read(); await turn(); }
    }
    other.read();
    // About 3 MB of events went by; the slow stream holds one response past its mark.
    assert.ok(slow.maxQueuedBytes < hwm + 2048, `slow stream queued ${slow.maxQueuedBytes} bytes`);
    assert.is(events(other.received).length, n);
    assert.ok(hub.slowWatchers === 1);
    await settle(hub, [slow, other]);
    const revs = events(slow.received).map((e) => Number(e.split('@')[1]));
    assert.is(revs.length, n);
    for (let i = 0; i < n; i++) assert.is(revs[i], i + 2);
    hub.close();
  });
});

test('progress request: answered at once when synced; deferred until a catching-up watcher is synced, even one that gets no event (#17507)', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    for (let i = 0; i < 10; i++) put(applier, 'other', `${i}`);
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ progress_request: {} });
    sink.read();
    assert.equal(sink.received.map((r) => [r.watch_id, r.header?.revision]), [[-1, 11]]);
    // A watcher from revision 2 on a key with no events at all: behind until its catch-up runs.
    s.handle({ create_request: { key: b('quiet'), start_revision: 2 } });
    s.handle({ progress_request: {} });
    s.handle({ progress_request: {} });
    sink.read();
    assert.is(sink.received.length, 2, 'progress answered while a watcher was behind');
    await settle(hub, [sink]);
    assert.equal(sink.received.slice(2).map((r) => [r.watch_id, r.header?.revision]), [[-1, 11]]);
    hub.close();
  });
});

test('progress request never reports a revision below events still to come (#15220)', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const sink = new TestSink(256);
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ create_request: { key: b('k') } });
    for (let i = 0; i < 30; i++) put(applier, 'k', `${i}`); // the stream blocks; the watcher falls behind
    s.handle({ progress_request: {} });
    await settle(hub, [sink]);
    const progressAt = sink.received.findIndex((r) => r.watch_id === -1);
    assert.ok(progressAt > 0);
    const rev = sink.received[progressAt]!.header!.revision!;
    assert.is(rev, 31);
    assert.equal(events(sink.received.slice(progressAt)), []);
    assert.is(events(sink.received.slice(0, progressAt)).length, 30);
    hub.close();
  });
});

test('progress_notify: an idle synced watcher gets a progress response (its id, the current revision); a future one does not', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier, 5);
    put(applier, 'x', '1');
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    s.handle({ create_request: { key: b('k'), progress_notify: true } });
    s.handle({ create_request: { key: b('f'), progress_notify: true, start_revision: 100 } });
    for (let i = 0; i < 100_000 && !sink.received.some((r) => !r.created && (r.watch_id ?? 0) === 0); i++) {
      sink.read();
      await new Promise((r) => setTimeout(r, 1));
    }
    const notify = sink.received.find((r) => !r.created && (r.watch_id ?? 0) === 0)!;
    assert.equal([notify.header?.revision, (notify.events ?? []).length], [2, 0]);
    assert.not.ok(sink.received.some((r) => !r.created && r.watch_id === 1));
    hub.close();
  });
});

test('fragment: a response above the limit is split as etcd (fragment: true on all but the last); without fragment it is whole', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const sink = new TestSink();
    const s = hub.newStream(sink, 400);
    s.handle({ create_request: { key: b('a'), range_end: b('z'), fragment: true } });
    s.handle({ create_request: { key: b('a'), range_end: b('z') } });
    const value = b('v'.repeat(150));
    applier.apply({ id: 0, txn: { success: ['b', 'c', 'd', 'e', 'f'].map((k) => ({ request_put: { key: b(k), value } })) } });
    sink.read();
    const frag = sink.received.filter((r) => (r.watch_id ?? 0) === 0 && !r.created);
    assert.ok(frag.length >= 3, `${frag.length} fragments`);
    assert.equal(frag.map((r) => r.fragment ?? false), [...frag.slice(1).map(() => true), false]);
    assert.equal(events(frag), ['PUT b@2', 'PUT c@2', 'PUT d@2', 'PUT e@2', 'PUT f@2']);
    assert.is(sink.received.filter((r) => r.watch_id === 1 && !r.created).length, 1);
    hub.close();
  });
});

test('a client that writes requests and never reads is cut off (control bytes bounded)', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const sink = new TestSink(128);
    const s = hub.newStream(sink, 1 << 20);
    for (let i = 0; i < 100_000 && sink.ended === undefined; i++) {
      s.handle({ create_request: { key: b(`k${i}`) } });
      s.handle({ progress_request: {} });
    }
    assert.ok(sink.ended !== undefined, 'never cut off');
    assert.ok(sink.maxQueuedBytes < Limits.watchStreamControlBytesBlockedMax + 1024);
    assert.is(hub.watchers, 0);
    assert.is(hub.streamCount, 0);
  });
});

test('10,000 watchers on one stream: all notified; canceling them all leaves nothing behind', async () => {
  await withApplier(async (applier) => {
    const hub = newHub(applier);
    const sink = new TestSink();
    const s = hub.newStream(sink, 1 << 20);
    for (let i = 0; i < 10_000; i++) {
      if (i % 2 === 0) s.handle({ create_request: { key: b(`k${i % 100}`) } });
      else s.handle({ create_request: { key: b(`k${i % 100}`), range_end: b(`k${i % 100}\0`) } });
    }
    assert.is(hub.watchers, 10_000);
    for (let i = 0; i < 100; i++) put(applier, `k${i}`, 'v');
    sink.read();
    assert.is(events(sink.received).length, 10_000);
    for (let i = 0; i < 10_000; i++) s.handle({ cancel_request: { watch_id: i } });
    assert.is(hub.watchers, 0);
    const before = sink.received.length;
    for (let i = 0; i < 100; i++) put(applier, `k${i}`, 'w');
    sink.read();
    assert.is(sink.received.length - before, 10_000, 'only the canceled answers');
    assert.equal(events(sink.received.slice(before)), []);
    s.close();
    assert.is(hub.streamCount, 0);
    hub.close();
  });
});

test.run();
