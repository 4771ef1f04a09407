/**
 * The store as the watch hub's history (server/watch-history.ts): a watcher catching up from an
 * old revision, with prev_kv, gets every event's value and previous value right although the old
 * values live only in the backend (read back asynchronously), and a compaction racing the read
 * either leaves it whole or fails it cleanly with Compacted.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Applier } from '../../src/server/applier.js';
import { StoreWatchHistory } from '../../src/server/watch-history.js';
import { b, openApplier, plain, rng, withTempDir } from '../mvcc/helpers.js';

interface Model {
  /** Per revision: the changes (put or delete) in it, with the key's value just before. */
  events: Array<{ rev: number; key: string; value?: string; version: number; create: number; prev?: { value: string; version: number; create: number; mod: number } }>;
}

/** Seeded puts and deletes over a few keys, the backend flushed now and then. */
async function load(applier: Applier, seed: number, steps: number): Promise<Model> {
  const random = rng(seed);
  const live = new Map<string, { value: string; version: number; create: number; mod: number }>();
  const model: Model = { events: [] };
  let rev = applier.currentRevision;
  for (let step = 0; step < steps; step++) {
    const key = `k${Math.floor(random() * 5)}`;
    const prev = live.get(key);
    if (random() < 0.85 || prev === undefined) {
      const value = `${seed}/${step}/${'p'.repeat(Math.floor(random() * 200))}`;
      applier.apply({ id: 1, put: { key: b(key), value: b(value) } });
      rev++;
      const now = { value, version: (prev?.version ?? 0) + 1, create: prev?.create ?? rev, mod: rev };
      live.set(key, now);
      model.events.push({ rev, key, value, version: now.version, create: now.create, prev });
    } else {
      applier.apply({ id: 1, delete_range: { key: b(key) } });
      rev++;
      live.delete(key);
      model.events.push({ rev, key, version: 0, create: 0, prev });
    }
    applier.commit(step + 1);
    if (step % 50 === 49) await applier.flush();
  }
  await applier.flush();
  return model;
}

test('catch-up from every old revision with prev_kv: values and previous values from the backend', () => withTempDir(async (dir) => {
  const applier = await openApplier(dir);
  try {
    const model = await load(applier, 7, 400);
    const history = new StoreWatchHistory(() => applier.store);
    const current = applier.currentRevision;
    for (let from = 2; from <= current; from += 7) {
      const to = Math.min(current, from + 60);
      const events = await history.read(b('k'), b('l'), from, to, true);
      const want = model.events.filter((e) => e.rev >= from && e.rev <= to);
      assert.is(events.length, want.length, `from ${from}`);
      for (let i = 0; i < want.length; i++) {
        const e = want[i]!;
        const got = events[i]!;
        const where = `from ${from}: event at ${e.rev}`;
        assert.equal(plain(got.kv), {
          key: e.key, create_revision: e.create, mod_revision: e.rev, version: e.version, value: e.value ?? '', lease: '0',
        }, where);
        const createEvent = e.value !== undefined && e.version === 1;
        const prev = createEvent ? undefined : e.prev;
        assert.equal(plain(got.prev), prev === undefined ? undefined : {
          key: e.key, create_revision: prev.create, mod_revision: prev.mod, version: prev.version, value: prev.value, lease: '0',
        }, `${where}: prev_kv`);
      }
    }
    assert.ok(applier.store.history.backendReads > 0, 'old values came from the backend');
  } finally {
    await applier.close();
  }
}));

test('a compaction applied while a catch-up reads either leaves it whole or fails it with Compacted', () => withTempDir(async (dir) => {
  const applier = await openApplier(dir);
  try {
    const model = await load(applier, 11, 300);
    const history = new StoreWatchHistory(() => applier.store);
    const current = applier.currentRevision;
    let whole = 0;
    let compactedErrors = 0;
    for (let from = 2; from < current - 20; from += 20) {
      const reading = history.read(b('k'), b('l'), from, current, true);
      // Compact above `from` while the read is in flight.
      applier.apply({ id: 1, compaction: { revision: from + 10 } });
      applier.commit(1000 + from);
      try {
        const events = await reading;
        const want = model.events.filter((e) => e.rev >= from);
        assert.equal(events.map((e) => `${e.kv.mod_revision}:${e.kv.value.toString()}`), want.map((e) => `${e.rev}:${e.value ?? ''}`));
        whole++;
      } catch (err) {
        assert.is((err as { code?: string }).code, 'Compacted', String(err));
        compactedErrors++;
      }
      await applier.flush();
    }
    assert.ok(whole + compactedErrors > 0);
    // Compaction finished despite the reads (their pins were released).
    assert.not.ok(applier.store.compaction.running);
  } finally {
    await applier.close();
  }
}));

test.run();
