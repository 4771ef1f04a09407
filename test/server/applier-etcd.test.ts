import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../integration/harness.js';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Applier } from '../../src/server/applier.js';
import type { InternalRequest, RangeRequest, RequestOp, TxnRequest } from '../../src/proto/etcd-types.js';
import { needEtcd } from '../etcd-binaries.js';
import { openApplier, pick, rng, withTempDir } from '../mvcc/helpers.js';

/**
 * Differential test against real etcd 3.4 (found by ../etcd-binaries.ts): the same seeded random requests go to
 * etcd's JSON gateway and to the Applier in-process; every response (and every error message)
 * must match once both are printed as etcd's gateway prints them (proto3 JSON: int64 as
 * strings, bytes as base64, defaults omitted). Skipped, with its reason, when etcd is not found.
 */

const need = needEtcd('server/applier-etcd', ['etcd']);
const STEPS = 600;

/** A request in etcd's gateway JSON. */
function toJson(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(toJson);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toJson(v);
    return out;
  }
  return value;
}

/** A response as etcd's gateway prints it: defaults omitted, int64 as strings, bytes as base64. */
function asEtcdPrints(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.length === 0 ? undefined : value.toString('base64');
  if (typeof value === 'bigint') return value === 0n ? undefined : value.toString();
  if (typeof value === 'number') return value === 0 ? undefined : String(value);
  if (typeof value === 'boolean') return value ? true : undefined;
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.map((v) => asEtcdPrints(v) ?? {});
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const p = asEtcdPrints(v);
      // Message fields print even when empty ("header":{}), scalars do not.
      if (p !== undefined) out[k] = p;
      else if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v) && !Array.isArray(v)) out[k] = {};
    }
    return out;
  }
  return value;
}

/** Drops what differs by design: ids and term in headers, and the top-level header (compared apart). */
function normalizeEtcd(body: Record<string, unknown>): Record<string, unknown> {
  const strip = (o: unknown): void => {
    if (Array.isArray(o)) o.forEach(strip);
    else if (o !== null && typeof o === 'object') {
      const rec = o as Record<string, unknown>;
      const h = rec.header as Record<string, unknown> | undefined;
      if (h) for (const k of ['cluster_id', 'member_id', 'raft_term']) delete h[k];
      Object.values(rec).forEach(strip);
    }
  };
  strip(body);
  delete body.header;
  return body;
}

const KEYS = ['a', 'ab', 'b', 'c', 'k1', 'k2', 'z'];

function randomRange(random: () => number, maxRev: number): RangeRequest {
  const r: RangeRequest = { key: Buffer.from(pick(random, KEYS)) };
  const form = random();
  if (form < 0.3) r.range_end = Buffer.from(pick(random, ['b', 'c', 'k', 'z', '~']));
  else if (form < 0.45) r.range_end = Buffer.from([0]);
  if (random() < 0.3) r.limit = 1 + Math.floor(random() * 3);
  if (random() < 0.3) r.revision = Math.floor(random() * (maxRev + 2));
  if (random() < 0.3) r.sort_order = pick(random, [0, 1, 2] as const);
  if (random() < 0.3) r.sort_target = pick(random, [0, 1, 2, 3, 4] as const);
  if (random() < 0.15) r.keys_only = true;
  if (random() < 0.1) r.count_only = true;
  if (random() < 0.1) r.min_mod_revision = Math.floor(random() * maxRev);
  if (random() < 0.1) r.max_create_revision = Math.floor(random() * maxRev);
  return r;
}

function randomTxn(random: () => number, maxRev: number, depth: number, used: Set<string>): TxnRequest {
  const compare = [];
  const n = Math.floor(random() * 3);
  for (let i = 0; i < n; i++) {
    const target = pick(random, [0, 1, 2, 3, 4] as const);
    const c: Record<string, unknown> = { key: Buffer.from(pick(random, KEYS)), target, result: pick(random, [0, 1, 2, 3] as const) };
    if (random() < 0.25) c.range_end = Buffer.from(pick(random, ['c', 'z', '\0']));
    const operand = Math.floor(random() * (maxRev + 1));
    if (target === 3) c.value = Buffer.from(pick(random, ['', 'v1', 'v5', 'x']));
    else if (target === 4) c.lease = 0n;
    else c[['version', 'create_revision', 'mod_revision'][target]!] = operand;
    compare.push(c);
  }
  const ops = (): RequestOp[] => {
    const out: RequestOp[] = [];
    const m = Math.floor(random() * 3);
    for (let i = 0; i < m; i++) {
      const r = random();
      if (r < 0.35) out.push({ request_range: randomRange(random, maxRev) });
      else if (r < 0.85 || depth >= 2) {
        const free = KEYS.filter((k) => !used.has(k));
        if (free.length === 0) continue;
        const key = pick(random, free);
        used.add(key);
        if (r < 0.65) out.push({ request_put: { key: Buffer.from(key), value: Buffer.from(`v${Math.floor(random() * 9)}`), prev_kv: random() < 0.5 } });
        else out.push({ request_delete_range: { key: Buffer.from(key), prev_kv: random() < 0.5 } });
      } else {
        out.push({ request_txn: randomTxn(random, maxRev, depth + 1, used) });
      }
    }
    return out;
  };
  return { compare: compare as TxnRequest['compare'], success: ops(), failure: ops() };
}

function randomRequest(random: () => number, maxRev: number): { path: string; request: InternalRequest | RangeRequest; kind: string } {
  const r = random();
  const key = Buffer.from(pick(random, KEYS));
  if (r < 0.35) {
    const put: Record<string, unknown> = { key, value: Buffer.from(`v${Math.floor(random() * 9)}`) };
    const flag = random();
    if (flag < 0.1) put.ignore_value = true, put.value = random() < 0.5 ? Buffer.alloc(0) : put.value;
    else if (flag < 0.15) put.ignore_lease = true;
    else if (flag < 0.18) put.lease = 77n;
    if (random() < 0.4) put.prev_kv = true;
    return { path: 'kv/put', kind: 'put', request: { id: 0, put } };
  }
  if (r < 0.45) {
    const end = random() < 0.5 ? undefined : Buffer.from(pick(random, ['b', 'k', '\0']));
    return { path: 'kv/deleterange', kind: 'delete', request: { id: 0, delete_range: { key, range_end: end, prev_kv: random() < 0.5 } } };
  }
  if (r < 0.65) return { path: 'kv/txn', kind: 'txn', request: { id: 0, txn: randomTxn(random, maxRev, 0, new Set()) } };
  if (r < 0.7) return { path: 'kv/compaction', kind: 'compaction', request: { id: 0, compaction: { revision: Math.floor(random() * (maxRev + 2)) } } };
  return { path: 'kv/range', kind: 'range', request: randomRange(random, maxRev) };
}

need.test(test, 'applier answers exactly as etcd 3.4 over seeded random requests', async () => {
  await withTempDir(async (dir) => {
    const clientPort = await freePort();
    const peerPort = await freePort();
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    let etcd: ChildProcess | undefined;
    let applier: Applier | undefined;
    try {
      etcd = spawn(need.path('etcd'), [
        '--data-dir', join(dir, 'etcd'), '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `default=${peerUrl}`,
        '--log-level', 'error',
      ], { stdio: 'ignore' });
      // A failed spawn emits 'error' and no 'exit': fail the test with it, not the process.
      let spawnError: Error | undefined;
      etcd.once('error', (err) => { spawnError = err; });
      const call = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
        const res = await fetch(`${clientUrl}/v3/${path}`, { method: 'POST', body: JSON.stringify(toJson(body)) });
        return (await res.json()) as Record<string, unknown>;
      };
      // Wait for etcd to serve (a condition, not a fixed sleep).
      for (let attempt = 0; ; attempt++) {
        try {
          await call('kv/range', { key: Buffer.from('probe') });
          break;
        } catch (err) {
          if (spawnError !== undefined) throw spawnError;
          if (attempt > 200) throw err;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      applier = await openApplier(dir);
      const random = rng(2024);
      let checked = 0;
      for (let step = 0; step < STEPS; step++) {
        const { path, request, kind } = randomRequest(random, applier.currentRevision);
        const body = kind === 'range' ? request : Object.values(request).find((v) => typeof v === 'object');
        const fromEtcd = await call(path, body);
        let mine: Record<string, unknown>;
        try {
          const response = kind === 'range' ? applier.range(request as RangeRequest) : applier.apply(request as InternalRequest);
          mine = asEtcdPrints(response) as Record<string, unknown>;
        } catch (err) {
          const e = err as { message: string; code?: string };
          if (!e.code) throw err;
          mine = { error: e.message };
        }
        const ctx = `step ${step} ${path} ${JSON.stringify(toJson(body))}`;
        if ('error' in fromEtcd) {
          assert.is(mine.error, fromEtcd.error, ctx);
          continue;
        }
        assert.is((fromEtcd.header as { revision?: string }).revision, String(applier.currentRevision), `${ctx}: header revision`);
        assert.equal(mine, normalizeEtcd(fromEtcd), ctx);
        checked++;
      }
      console.log(`  compared ${checked} responses and ${STEPS - checked} errors with etcd`);
      assert.ok(checked > STEPS / 2, `only ${checked} successful responses compared`);
    } finally {
      await applier?.close();
      if (etcd?.pid !== undefined && etcd.exitCode === null) {
        const exited = new Promise((resolve) => etcd!.once('exit', resolve));
        etcd.kill('SIGKILL');
        await exited;
      }
    }
  });
});

test.run();
