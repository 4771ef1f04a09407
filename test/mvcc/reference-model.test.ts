import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Applier } from '../../src/server/applier.js';
import { CompareResult, CompareTarget, type RequestOp, type TxnResponse } from '../../src/proto/etcd-types.js';
import { b, openApplier, pick, plain, rng, withTempDir } from './helpers.js';

/**
 * Random operations against the applier and a naive model (a flat list of every write, searched
 * linearly), over seeded inputs; every read, every response and every error is compared. The
 * store is restarted from its backend every so often, and after each restart the whole history
 * still readable is compared revision by revision.
 */

interface MKV { key: string; create_revision: number; mod_revision: number; version: number; value: string; lease: string }

class Model {
  rev = 1;
  compacted = -1;
  private writes: Array<{ rev: number; key: string; kv: MKV | null }> = [];

  get(key: string, atRev: number): MKV | undefined {
    for (let i = this.writes.length - 1; i >= 0; i--) {
      const w = this.writes[i]!;
      if (w.key === key && w.rev <= atRev) return w.kv ?? undefined;
    }
    return undefined;
  }

  range(key: string, end: string | undefined, atRev: number): MKV[] {
    if (end === undefined || end === '') {
      const kv = this.get(key, atRev);
      return kv ? [kv] : [];
    }
    const fromKey = end === '\0';
    const keys = [...new Set(this.writes.map((w) => w.key))].filter((k) => k >= key && (fromKey || k < end)).sort();
    return keys.map((k) => this.get(k, atRev)).filter((kv): kv is MKV => kv !== undefined);
  }

  /** Writes at revision `rev` (the pending revision of a request). */
  put(key: string, value: string, rev: number): MKV | undefined {
    const prev = this.get(key, rev);
    const kv: MKV = {
      key, create_revision: prev ? prev.create_revision : rev, mod_revision: rev,
      version: prev ? prev.version + 1 : 1, value, lease: '0',
    };
    this.writes.push({ rev, key, kv });
    return prev;
  }

  del(key: string, end: string | undefined, rev: number): MKV[] {
    const live = this.range(key, end, rev);
    for (const kv of live) this.writes.push({ rev, key: kv.key, kv: null });
    return live;
  }
}

const KEYS = ['a', 'aa', 'ab', 'b', 'ba', 'c', 'd', 'e', '\xff', '\x00x'];
const ENDS = [undefined, undefined, 'b', 'c', 'e', '\0', 'ab', 'z'];

function outcome<T>(fn: () => T): { ok: T } | { error: string } {
  try {
    return { ok: fn() };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (!code) throw err;
    return { error: code };
  }
}

function expectedReadError(model: Model, rev: number): string | undefined {
  if (rev > model.rev) return 'FutureRevision';
  if (rev > 0 && rev < model.compacted) return 'Compacted';
  return undefined;
}

/**
 * With `images`, the store writes its history image (mvcc/history-image.ts) after every 25
 * records not covered, so restarts start from images taken at all sorts of points: before and
 * after compactions, with some abandoned half-written by the close. Returns how many restarts
 * read records from an image.
 */
async function runSeed(seed: number, steps: number, images = false): Promise<number> {
  const random = rng(seed);
  const options = images ? { historyImage: { recordsMin: 25 } } : {};
  let restartsFromImage = 0;
  await withTempDir(async (dir) => {
    let applier: Applier = await openApplier(dir, options);
    const model = new Model();
    let applied = 0;
    const checkAllHistory = async (): Promise<void> => {
      for (let rev = Math.max(model.compacted, 1); rev <= model.rev; rev++) {
        const got = await applier.range({ key: b('\0'), range_end: b('\0'), revision: rev });
        assert.equal(got.kvs.map(plain), model.range('\0', '\0', rev), `seed ${seed}: full history at revision ${rev}`);
      }
    };
    try {
      for (let step = 0; step < steps; step++) {
        const what = random();
        const ctx = `seed ${seed} step ${step}`;
        if (what < 0.4) {
          const key = pick(random, KEYS);
          const value = `v${step}`;
          const prevKv = random() < 0.5;
          const r = applier.apply({ id: step, put: { key: b(key), value: b(value), prev_kv: prevKv } }) as { prev_kv?: unknown };
          const prev = model.put(key, value, model.rev + 1);
          model.rev++;
          assert.equal(plain(r.prev_kv as never), prevKv ? prev : undefined, ctx);
        } else if (what < 0.5) {
          const key = pick(random, KEYS);
          const end = pick(random, ENDS);
          const r = applier.apply({ id: step, delete_range: { key: b(key), range_end: end === undefined ? undefined : b(end), prev_kv: true } }) as { deleted: number; prev_kvs: never[] };
          const deleted = model.del(key, end, model.rev + 1);
          if (deleted.length > 0) model.rev++;
          assert.is(r.deleted, deleted.length, ctx);
          assert.equal(r.prev_kvs.map(plain), deleted, ctx);
        } else if (what < 0.65) {
          runTxn(applier, model, random, ctx);
        } else if (what < 0.68) {
          const rev = model.compacted + Math.floor(random() * (model.rev - model.compacted + 2)) - 1;
          const got = outcome(() => applier.apply({ id: step, compaction: { revision: rev } }));
          const expected = rev <= model.compacted ? 'Compacted' : rev > model.rev ? 'FutureRevision' : undefined;
          assert.equal('error' in got ? got.error : undefined, expected, `${ctx}: compact ${rev}`);
          if (!expected) model.compacted = rev;
        } else {
          const key = pick(random, KEYS);
          const end = pick(random, ENDS);
          const rev = random() < 0.3 ? 0 : Math.max(0, model.compacted) + Math.floor(random() * (model.rev - Math.max(0, model.compacted) + 2)) - 1;
          const limit = random() < 0.3 ? 1 + Math.floor(random() * 3) : 0;
          const got = outcome(() => applier.range({ key: b(key), range_end: end === undefined ? undefined : b(end), revision: rev, limit }));
          const error = expectedReadError(model, rev);
          if (error) {
            assert.equal(got, { error }, `${ctx}: read at ${rev}`);
          } else {
            if (!('ok' in got)) assert.unreachable(`${ctx}: read at ${rev} failed: ${got.error}`);
            const all = model.range(key, end, rev <= 0 ? model.rev : rev);
            const r = await (got as { ok: ReturnType<Applier['range']> }).ok;
            assert.equal(r.kvs.map(plain), limit > 0 ? all.slice(0, limit) : all, `${ctx}: range ${JSON.stringify([key, end, rev, limit])}`);
            assert.is(r.count, all.length, ctx);
            assert.is(r.more, limit > 0 && all.length > limit, ctx);
          }
        }
        assert.is(applier.currentRevision, model.rev, ctx);
        applier.commit(++applied);
        if (step % 97 === 96) {
          // Mostly let an image being written finish; sometimes close under it.
          if (images && random() < 0.7) await applier.store.historyImageSettled();
          await applier.close();
          applier = await openApplier(dir, options);
          if (applier.store.recovered.imageRecords > 0) restartsFromImage++;
          assert.is(applier.appliedIndex, applied, `${ctx}: applied index after restart`);
          assert.is(applier.currentRevision, model.rev, `${ctx}: revision after restart`);
          assert.is(applier.compactedRevision, model.compacted, `${ctx}: compacted revision after restart`);
          await checkAllHistory();
        }
      }
      await checkAllHistory();
    } finally {
      await applier.close();
    }
  });
  return restartsFromImage;
}

function runTxn(applier: Applier, model: Model, random: () => number, ctx: string): void {
  const key = pick(random, KEYS);
  const current = model.get(key, model.rev);
  const compareKind = random();
  const compare = compareKind < 0.4
    ? { key: b(key), target: CompareTarget.VERSION, result: CompareResult.EQUAL, version: random() < 0.5 ? (current?.version ?? 0) : 1 }
    : compareKind < 0.7
      ? { key: b(key), target: CompareTarget.VALUE, result: CompareResult.EQUAL, value: b(random() < 0.5 ? (current?.value ?? '') : 'nope') }
      : { key: b(key), range_end: b('c'), target: CompareTarget.MOD, result: CompareResult.LESS, mod_revision: Math.floor(random() * (model.rev + 2)) };
  const succeeded = (() => {
    if (compare.target === CompareTarget.MOD) {
      const kvs = model.range(key, 'c', model.rev);
      return kvs.length === 0 ? 0 < compare.mod_revision! : kvs.every((kv) => kv.mod_revision < compare.mod_revision!);
    }
    if (compare.target === CompareTarget.VERSION) return (current?.version ?? 0) === compare.version;
    return current !== undefined && current.value === compare.value!.toString('latin1');
  })();
  // Ops on distinct keys (the API layer refuses a txn writing one key twice).
  const makeOps = (): Array<{ op: RequestOp; kind: string; key: string; value?: string }> => {
    const used = new Set<string>();
    const ops: Array<{ op: RequestOp; kind: string; key: string; value?: string }> = [];
    const n = Math.floor(random() * 4);
    for (let i = 0; i < n; i++) {
      const k = pick(random, KEYS);
      if (used.has(k)) continue;
      used.add(k);
      const r = random();
      if (r < 0.5) ops.push({ kind: 'put', key: k, value: `t${i}`, op: { request_put: { key: b(k), value: b(`t${i}`), prev_kv: true } } });
      else if (r < 0.75) ops.push({ kind: 'del', key: k, op: { request_delete_range: { key: b(k), prev_kv: true } } });
      else ops.push({ kind: 'range', key: k, op: { request_range: { key: b(k) } } });
    }
    return ops;
  };
  const success = makeOps();
  const failure = makeOps();
  const got = applier.apply({ id: 0, txn: { compare: [compare], success: success.map((o) => o.op), failure: failure.map((o) => o.op) } }) as TxnResponse;
  assert.is(got.succeeded, succeeded, `${ctx}: txn compare`);
  const writeRev = model.rev + 1;
  let changed = false;
  const taken = succeeded ? success : failure;
  taken.forEach((o, i) => {
    const resp = got.responses[i]!;
    if (o.kind === 'put') {
      const prev = model.put(o.key, o.value!, writeRev);
      changed = true;
      assert.equal(plain(resp.response_put!.prev_kv), prev, `${ctx}: txn put ${o.key}`);
    } else if (o.kind === 'del') {
      const deleted = model.del(o.key, undefined, writeRev);
      if (deleted.length > 0) changed = true;
      assert.is(resp.response_delete_range!.deleted, deleted.length, `${ctx}: txn delete ${o.key}`);
    } else {
      const seen = model.range(o.key, undefined, changed ? writeRev : model.rev);
      assert.equal(resp.response_range!.kvs.map(plain), seen, `${ctx}: txn range ${o.key}`);
    }
  });
  if (changed) model.rev++;
}

test('applier matches the reference model over seeded random operations, across restarts', async () => {
  for (const seed of [11, 22, 33, 44, 55]) await runSeed(seed, 1200);
});

test('... and across restarts that start from the history image', async () => {
  let fromImage = 0;
  for (const seed of [12, 23, 34, 45, 56]) fromImage += await runSeed(seed, 1200, true);
  // 12 restarts per seed; compactions make some images misfit, so not all of them use one.
  assert.ok(fromImage >= 20, `restarts that read an image: ${fromImage} of 60`);
});

test.run();
