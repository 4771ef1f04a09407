/**
 * The txn write checks against naive models over seeded random txns: checkBranchWrites against a
 * transcription of etcd's checkIntervals (sets and delete lists per level, a linear scan per
 * put: the O(puts x deletes) code it replaced), checkPathWrites against the pairwise check on the
 * taken path, and KeyCoverage against counting by hand. Plus the size that used to stall.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KeyCoverage } from '../../src/mvcc/key-coverage.js';
import { KeyraftError } from '../../src/platform/errors.js';
import type { RequestOp, TxnRequest } from '../../src/proto/etcd-types.js';
import { checkBranchWrites, checkPathWrites } from '../../src/server/txn-write-checks.js';
import { codeOf } from '../error-code.js';
import { rng } from '../seeded-random.js';

// ---- naive models -------------------------------------------------------------------------------

interface NaiveDelete { start: string; end: string | null }

const inDelete = (d: NaiveDelete, key: string): boolean => (d.end === null ? key === d.start : key >= d.start && key < d.end);

/** etcd's checkIntervals as written in key.go, with a list for its interval tree. */
function naiveBranch(ops: RequestOp[]): { puts: Set<string>; dels: NaiveDelete[] } {
  const dels: NaiveDelete[] = [];
  for (const op of ops) {
    const d = op.request_delete_range;
    if (d?.key) dels.push({ start: d.key.toString('latin1'), end: d.range_end?.length ? d.range_end.toString('latin1') : null });
  }
  const puts = new Set<string>();
  for (const op of ops) {
    const t = op.request_txn;
    if (!t) continue;
    const then = naiveBranch(t.success ?? []);
    const otherwise = naiveBranch(t.failure ?? []);
    for (const k of then.puts) {
      if (puts.has(k) || dels.some((d) => inDelete(d, k))) throw new KeyraftError('DuplicateKey');
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw new KeyraftError('DuplicateKey');
      if (dels.some((d) => inDelete(d, k))) throw new KeyraftError('DuplicateKey');
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of ops) {
    const p = op.request_put;
    if (!p?.key) continue;
    const k = p.key.toString('latin1');
    if (puts.has(k) || dels.some((d) => inDelete(d, k))) throw new KeyraftError('DuplicateKey');
    puts.add(k);
  }
  return { puts, dels };
}

/** Every pair of writes on the taken path, "\0" as range end meaning to the end of the keyspace. */
function naivePath(t: TxnRequest, path: boolean[]): void {
  const writes: Array<{ put?: string; del?: { start: string; end: string | null | undefined } }> = [];
  const cursor = { at: 0 };
  const walk = (x: TxnRequest): void => {
    for (const op of (path[cursor.at++] ? x.success : x.failure) ?? []) {
      if (op.request_txn) walk(op.request_txn);
      else if (op.request_put) writes.push({ put: op.request_put.key!.toString('latin1') });
      else if (op.request_delete_range) {
        const e = op.request_delete_range.range_end;
        writes.push({ del: { start: op.request_delete_range.key!.toString('latin1'), end: !e?.length ? null : e.length === 1 && e[0] === 0 ? undefined : e.toString('latin1') } });
      }
    }
  };
  walk(t);
  for (const a of writes) {
    if (a.put === undefined) continue;
    for (const b of writes) {
      if (a === b) continue;
      if (b.put === a.put) throw new KeyraftError('DuplicateKey');
      const d = b.del;
      if (d && (d.end === null ? a.put === d.start : a.put >= d.start && (d.end === undefined || a.put < d.end))) throw new KeyraftError('DuplicateKey');
    }
  }
}

// ---- random txns --------------------------------------------------------------------------------

/** Few distinct keys (a..h, some two bytes long, "\0" now and then) so that collisions are common. */
function randomKey(rand: () => number): string {
  if (rand() < 0.03) return '\0';
  const a = String.fromCharCode(97 + Math.floor(rand() * 8));
  return rand() < 0.3 ? a + String.fromCharCode(97 + Math.floor(rand() * 3)) : a;
}

function randomOps(rand: () => number, depth: number, budget: { ops: number }): RequestOp[] {
  const n = Math.floor(rand() * 5);
  const ops: RequestOp[] = [];
  for (let i = 0; i < n && budget.ops > 0; i++) {
    budget.ops--;
    const r = rand();
    if (r < 0.35) {
      ops.push({ request_put: { key: Buffer.from(randomKey(rand), 'latin1'), value: Buffer.from('v') } });
    } else if (r < 0.6) {
      const start = randomKey(rand);
      const e = rand();
      const end = e < 0.4 ? undefined : e < 0.5 ? '\0' : randomKey(rand);
      ops.push({ request_delete_range: { key: Buffer.from(start, 'latin1'), range_end: end === undefined ? undefined : Buffer.from(end, 'latin1') } });
    } else if (r < 0.7) {
      ops.push({ request_range: { key: Buffer.from(randomKey(rand), 'latin1') } });
    } else if (depth < 4) {
      ops.push({ request_txn: { success: randomOps(rand, depth + 1, budget), failure: randomOps(rand, depth + 1, budget) } });
    }
  }
  return ops;
}

function countPaths(t: TxnRequest, rand: () => number): boolean[] {
  const path: boolean[] = [];
  const walk = (x: TxnRequest): void => {
    const taken = rand() < 0.5;
    path.push(taken);
    for (const op of (taken ? x.success : x.failure) ?? []) if (op.request_txn) walk(op.request_txn);
  };
  walk(t);
  return path;
}

test('checkBranchWrites decides as etcd\'s checkIntervals on 20,000 seeded random txns', () => {
  const rand = rng(2024);
  const seen = new Map<string, number>();
  for (let i = 0; i < 20_000; i++) {
    const ops = randomOps(rand, 0, { ops: 40 });
    const want = codeOf(() => naiveBranch(ops));
    const got = codeOf(() => checkBranchWrites(ops));
    seen.set(want, (seen.get(want) ?? 0) + 1);
    if (got !== want) assert.unreachable(`case ${i}: ${got}, model ${want}: ${JSON.stringify(ops, (_k, v) => (v?.type === 'Buffer' ? Buffer.from(v.data).toString('latin1') : v))}`);
  }
  // Both answers are common, or the comparison proves little.
  assert.ok((seen.get('ok') ?? 0) > 2000 && (seen.get('DuplicateKey') ?? 0) > 2000, JSON.stringify([...seen]));
});

test('checkPathWrites decides as the pairwise check on the taken path, 20,000 seeded random txns', () => {
  const rand = rng(77);
  const seen = new Map<string, number>();
  for (let i = 0; i < 20_000; i++) {
    const t: TxnRequest = { success: randomOps(rand, 0, { ops: 30 }), failure: randomOps(rand, 0, { ops: 30 }) };
    const path = countPaths(t, rand);
    const want = codeOf(() => naivePath(t, path));
    seen.set(want, (seen.get(want) ?? 0) + 1);
    assert.is(codeOf(() => checkPathWrites(t, path)), want, `case ${i}`);
  }
  assert.ok((seen.get('ok') ?? 0) > 2000 && (seen.get('DuplicateKey') ?? 0) > 2000, JSON.stringify([...seen]));
});

test('KeyCoverage counts as a hand count does (points, ranges, open ends, removals)', () => {
  const rand = rng(5);
  for (let round = 0; round < 300; round++) {
    const keys = Array.from({ length: 1 + Math.floor(rand() * 12) }, () => randomKey(rand));
    const coverage = new KeyCoverage(keys);
    const live: Array<{ start: string; end: string | null | undefined }> = [];
    for (let step = 0; step < 30; step++) {
      if (live.length > 0 && rand() < 0.3) {
        const [r] = live.splice(Math.floor(rand() * live.length), 1);
        coverage.add(r!.start, r!.end, -1);
      } else {
        const e = rand();
        const r = { start: randomKey(rand), end: e < 0.3 ? null : e < 0.4 ? undefined : randomKey(rand) };
        live.push(r);
        coverage.add(r.start, r.end, 1);
      }
      for (const k of keys) {
        const want = live.some((r) => (r.end === null ? k === r.start : k >= r.start && (r.end === undefined || k < r.end)));
        assert.is(coverage.covers(k), want, `round ${round} step ${step} key ${JSON.stringify(k)}`);
      }
    }
  }
});

/**
 * The attack shape under etcd's default budget of 128 ops per level: 40 txns of 40 txns of 13 puts
 * and 13 deletes (41,600 ops, ~420 KB encoded), no key shared. The old check compared each put
 * with every delete of the earlier nested txns: ~2 * 10^8 steps here.
 */
function nestedAttack(): RequestOp[] {
  const leaf = (a: number, b: number): RequestOp => ({
    request_txn: {
      success: [
        ...Array.from({ length: 13 }, (_, i) => ({ request_put: { key: Buffer.from(`p/${a}/${b}/${i}`), value: Buffer.from('v') } })),
        ...Array.from({ length: 13 }, (_, i) => ({ request_delete_range: { key: Buffer.from(`d/${a}/${b}/${i}`), range_end: Buffer.from(`d/${a}/${b}/${i}z`) } })),
      ],
    },
  });
  return Array.from({ length: 40 }, (_, a) => ({ request_txn: { success: Array.from({ length: 40 }, (_, b) => leaf(a, b)) } }));
}

test('41,600 nested ops are judged in n log n: a few hundred ms, where the old check took minutes', () => {
  const ops = nestedAttack();
  const started = performance.now();
  checkBranchWrites(ops);
  // A put under a delete of an earlier nested txn is still found.
  (ops[39]!.request_txn!.success![39]!.request_txn!.success as RequestOp[]).push({ request_put: { key: Buffer.from('d/0/0/5x'), value: Buffer.from('v') } });
  assert.is(codeOf(() => checkBranchWrites(ops)), 'DuplicateKey');
  const ms = performance.now() - started;
  // Generous for a loaded 2-core machine (~0.3 s each measured under load; the old code: minutes).
  assert.ok(ms < 5000, `${ms.toFixed(0)} ms`);
});

test.run();
