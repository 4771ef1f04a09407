import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { InternalRequest, RequestOp } from '../../src/proto/etcd-types.js';
import type { Applier } from '../../src/server/applier.js';
import type { WatchStream } from '../../src/watch/watch-stream.js';
import { withApplier } from '../mvcc/helpers.js';
import { rng } from '../seeded-random.js';
import { b, FramedTestSink, newHub, PiecesTestSink, settle, TestSink, turn, type Resp } from './helpers.js';

/**
 * Model-based check of the watch hub: seeded random writers (puts, txns, delete ranges) on a
 * small keyspace, applied through the real applier, and many watchers on overlapping ranges
 * created, canceled and slowed down at random (sinks with small high-water marks read at random
 * moments, so watchers fall back to history and catch up). A reference model of the keyspace,
 * independent of mvcc, predicts every event; afterwards each watcher's stream is checked: exactly
 * the events of its range from its start revision, each once, in revision order, no gap, with
 * etcd's filters and prev_kv; a canceled watcher got a gapless prefix of that. Progress
 * responses (asked at random) never carry a revision below an event still to come on the stream
 * for a watcher that existed when it was sent (etcd #15220).
 */

interface ModelKv { value: string; create: number; mod: number; version: number }
interface ModelEvent { rev: number; type: 0 | 1; key: string; value: string; create: number; version: number; prev?: ModelKv }

const KEYS = Array.from({ length: 16 }, (_, i) => `k${i.toString(16)}`);

class Model {
  rev = 1;
  readonly live = new Map<string, ModelKv>();
  readonly events: ModelEvent[] = [];

  /** Applies one request to the model (the same the applier gets). */
  apply(ops: Array<{ put?: [string, string]; del?: [string, string | undefined] }>): void {
    const next = this.rev + 1;
    const evs: ModelEvent[] = [];
    for (const op of ops) {
      if (op.put) {
        const [key, value] = op.put;
        const prev = this.live.get(key);
        const kv = { value, create: prev ? prev.create : next, mod: next, version: prev ? prev.version + 1 : 1 };
        this.live.set(key, kv);
        evs.push({ rev: next, type: 0, key, value, create: kv.create, version: kv.version, prev });
      } else if (op.del) {
        const [from, end] = op.del;
        const keys = [...this.live.keys()].filter((k) => (end === undefined ? k === from : k >= from && (end === '\0' || k < end))).sort();
        for (const key of keys) {
          evs.push({ rev: next, type: 1, key, value: '', create: 0, version: 0, prev: this.live.get(key) });
          this.live.delete(key);
        }
      }
    }
    if (evs.length > 0) {
      this.rev = next;
      this.events.push(...evs);
    }
  }
}

interface WatcherSpec {
  stream: number;
  id: number;
  key: string;
  end: string | undefined;
  startRev: number;
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
  canceled: boolean;
}

function holds(w: WatcherSpec, key: string): boolean {
  if (w.end === undefined) return key === w.key;
  return key >= w.key && (w.end === '\0' || key < w.end);
}

function expected(model: Model, w: WatcherSpec): ModelEvent[] {
  return model.events.filter((e) => e.rev >= w.startRev && holds(w, e.key) && !(e.type === 0 ? w.noPut : w.noDelete));
}

function describe(e: ModelEvent, prevKv: boolean): string {
  const prev = prevKv && e.prev ? ` prev=${e.prev.value}@${e.prev.mod}` : '';
  return `${e.rev} ${e.type === 0 ? 'PUT' : 'DELETE'} ${e.key}=${e.value} c${e.create} v${e.version}${prev}`;
}

function describeReceived(ev: NonNullable<Resp['events']>[number]): string {
  const kv = ev.kv!;
  const prev = ev.prev_kv ? ` prev=${ev.prev_kv.value?.toString('latin1') ?? ''}@${ev.prev_kv.mod_revision}` : '';
  return `${kv.mod_revision} ${(ev.type ?? 0) === 0 ? 'PUT' : 'DELETE'} ${kv.key!.toString('latin1')}=${kv.value?.toString('latin1') ?? ''} c${kv.create_revision ?? 0} v${kv.version ?? 0}${prev}`;
}

async function applyOps(applier: Applier, model: Model, ops: Array<{ put?: [string, string]; del?: [string, string | undefined] }>, index: number): Promise<void> {
  let request: InternalRequest;
  if (ops.length === 1 && ops[0]!.put) request = { id: 0, put: { key: b(ops[0]!.put[0]), value: b(ops[0]!.put[1]) } };
  else if (ops.length === 1 && ops[0]!.del) {
    const [k, e] = ops[0]!.del;
    request = { id: 0, delete_range: { key: b(k), range_end: e === undefined ? undefined : b(e) } };
  } else {
    const success: RequestOp[] = ops.map((op) => op.put
      ? { request_put: { key: b(op.put[0]), value: b(op.put[1]) } }
      : { request_delete_range: { key: b(op.del![0]), range_end: op.del![1] === undefined ? undefined : b(op.del![1]) } });
    request = { id: 0, txn: { compare: [], success, failure: [] } };
  }
  applier.apply(request);
  model.apply(ops);
  applier.commit(index);
}

function randomOps(r: () => number, step: number): Array<{ put?: [string, string]; del?: [string, string | undefined] }> {
  const pick = (): string => KEYS[Math.floor(r() * KEYS.length)]!;
  const kind = r();
  if (kind < 0.55) return [{ put: [pick(), `v${step}`] }];
  if (kind < 0.75) {
    const a = pick();
    const c = pick();
    return [{ del: a < c ? [a, c] : r() < 0.5 ? [a, undefined] : [c, '\0'] }];
  }
  // A txn on distinct keys: puts, and at most one single-key delete (no overlap, as the API demands).
  const keys = [...new Set([pick(), pick(), pick()])];
  return keys.map((k, i) => (i === keys.length - 1 && keys.length > 1 && r() < 0.4 ? { del: [k, undefined] as [string, undefined] } : { put: [k, `t${step}.${i}`] as [string, string] }));
}

function randomRange(r: () => number): { key: string; end: string | undefined } {
  const a = KEYS[Math.floor(r() * KEYS.length)]!;
  const c = KEYS[Math.floor(r() * KEYS.length)]!;
  const kind = r();
  if (kind < 0.35) return { key: a, end: undefined };
  if (kind < 0.55) return { key: 'k', end: 'l' }; // prefix k
  if (kind < 0.65) return { key: a, end: '\0' };
  if (a === c) return { key: a, end: undefined };
  return a < c ? { key: a, end: c } : { key: c, end: a };
}

for (const seed of [1, 2, 3, 4, 5, 6]) {
  test(`model: seed ${seed}: every watcher gets exactly its range's events, once, in order, no gap`, async () => {
    await withApplier(async (applier) => {
      const r = rng(seed * 7919);
      const model = new Model();
      const hub = newHub(applier);
      // Stream 0 never stalls; the others have small high-water marks and are read now and then.
      // Two take framed batches, two pieces written in place (as gRPC calls do: sendFramed,
      // sendPieces), two one message at a time as the gateway does.
      const sinks = [new FramedTestSink(), new TestSink(300), new FramedTestSink(2000), new TestSink(600), new PiecesTestSink(), new PiecesTestSink(1500, 2, 3)];
      const streams: WatchStream[] = sinks.map((s) => hub.newStream(s, 1024 * 1024));
      const watchers: WatcherSpec[] = [];
      const nextIds = sinks.map(() => 0);
      let index = 1;
      let slowMax = 0;
      for (let step = 0; step < 600; step++) {
        slowMax = Math.max(slowMax, hub.slowWatchers);
        const action = r();
        if (action < 0.12) {
          const stream = Math.floor(r() * streams.length);
          const { key, end } = randomRange(r);
          const fromNow = r() < 0.5;
          const startRev = fromNow ? model.rev + 1 : 1 + Math.floor(r() * model.rev);
          const spec: WatcherSpec = {
            stream, id: nextIds[stream]!++, key, end, startRev,
            noPut: r() < 0.1, noDelete: r() < 0.15, prevKv: r() < 0.5, canceled: false,
          };
          watchers.push(spec);
          const filters = [...(spec.noPut ? [0] : []), ...(spec.noDelete ? [1] : [])];
          streams[stream]!.handle({ create_request: { key: b(key), range_end: end === undefined ? undefined : b(end), start_revision: fromNow ? 0 : startRev, prev_kv: spec.prevKv, filters } });
        } else if (action < 0.15 && watchers.length > 0) {
          const w = watchers[Math.floor(r() * watchers.length)]!;
          if (!w.canceled) {
            w.canceled = true;
            streams[w.stream]!.handle({ cancel_request: { watch_id: w.id } });
          }
        } else if (action < 0.18) {
          streams[Math.floor(r() * streams.length)]!.handle({ progress_request: {} });
        } else if (action < 0.35) {
          sinks[1 + Math.floor(r() * (sinks.length - 1))]!.read();
          sinks[0]!.read();
          await turn();
        } else {
          await applyOps(applier, model, randomOps(r, step), index++);
        }
      }
      await settle(hub, sinks);
      // The slow streams did fill up, and watchers did fall back to history.
      for (const sink of sinks.slice(1)) assert.ok(sink.maxQueuedBytes >= 300, `a slow sink never reached its mark (${sink.maxQueuedBytes} bytes)`);
      assert.ok(slowMax > 3, `at most ${slowMax} watchers were ever behind`);
      assert.ok(watchers.length > 30, `only ${watchers.length} watchers`);
      let checkedEvents = 0;
      for (const w of watchers) {
        const sink = sinks[w.stream]!;
        const mine = sink.received.filter((x) => (x.watch_id ?? 0) === w.id);
        assert.ok(mine[0]?.created === true, `watcher ${w.stream}/${w.id}: first response is not 'created'`);
        // Live and catch-up alike: within one revision, op order (a txn's).
        const got = mine.flatMap((x) => (x.events ?? []).map(describeReceived));
        const want = expected(model, w).map((e) => describe(e, w.prevKv));
        if (w.canceled) {
          assert.equal(got, want.slice(0, got.length), `canceled watcher ${w.stream}/${w.id} [${w.key},${w.end}) from ${w.startRev}: not a prefix`);
        } else {
          assert.equal(got, want, `watcher ${w.stream}/${w.id} [${w.key},${w.end}) from ${w.startRev} noPut=${w.noPut} noDelete=${w.noDelete}`);
        }
        checkedEvents += got.length;
        // Each response: revisions ascending, header revision at or past its events.
        for (const x of mine) {
          const revs = (x.events ?? []).map((e) => e.kv!.mod_revision!);
          for (let i = 1; i < revs.length; i++) assert.ok(revs[i]! >= revs[i - 1]!, 'events out of order in one response');
          if (revs.length > 0) assert.ok((x.header?.revision ?? 0) >= revs[revs.length - 1]!, 'header revision below its events');
        }
      }
      assert.ok(checkedEvents > 500, `only ${checkedEvents} events checked`);
      // Progress responses never run ahead of events still to come for watchers that existed then.
      let progressSeen = 0;
      for (const sink of sinks) {
        const existing = new Set<number>();
        const progressAt: Array<{ rev: number; ids: Set<number> }> = [];
        for (const x of sink.received) {
          const id = x.watch_id ?? 0;
          if (x.created && !x.canceled) existing.add(id);
          if (id === -1 && !x.created && !x.canceled && (x.events ?? []).length === 0) {
            progressAt.push({ rev: x.header?.revision ?? 0, ids: new Set(existing) });
            progressSeen++;
            continue;
          }
          for (const e of x.events ?? []) {
            const rev = e.kv!.mod_revision!;
            for (const p of progressAt) assert.ok(rev > p.rev || !p.ids.has(id), `event at ${rev} for watcher ${id} after a progress response at ${p.rev}`);
          }
        }
      }
      assert.ok(progressSeen > 3, `only ${progressSeen} progress responses`);
      hub.close();
    });
  });
}

test.run();
