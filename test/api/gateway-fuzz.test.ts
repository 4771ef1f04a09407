/**
 * A seeded JSON fuzzer against the gateway (fixed number of cases, reproducible): bodies built
 * from the request grammar (etcd's field names, nested txns) with hostile values (integers past
 * int64, exponents, fractions, deep nesting, bad base64, control bytes, truncation). The server
 * answers every one with 2xx/4xx in etcd's JSON shape, never a 5xx, and logs nothing as a failure.
 * And the two ways the gateway reads JSON (JSON.parse for plain bodies, Go's scanner for the rest)
 * decode every plain body alike.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeMessage, messageDepthMax, requestTypes } from '../../src/api/gateway-json.js';
import { goJsonParse, isPlainJson } from '../../src/api/go-json-syntax.js';
import { Limits } from '../../src/platform/limits.js';
import { b64, httpRequest, startWithLogCapture, type Running } from './helpers.js';
import { rng } from '../seeded-random.js';

let running: Running;
let logged: string[] = [];

test.before(async () => {
  ({ running, logged } = await startWithLogCapture());
});

test.after(async () => {
  await running.server.close();
});

type Rand = () => number;
const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;

const INTEGERS = [
  '0', '-0', '1', '-1', '7', '9007199254740993', '9223372036854775807', '9223372036854775808', '-9223372036854775808',
  '-9223372036854775809', '18446744073709551615', '18446744073709551616', '1e3', '1E+2', '1.0', '0.5', '-1e-3', '99',
  '2147483648', '123456789012345678901234567890',
];
const STRINGS = [b64('a'), b64('key/1'), b64('\0'), '', 'YQ', 'YQ===', '!!!', 'ASC', 'DESCEND', 'MOD', 'VALUE', 'EQUAL', 'GREATER', 'VERSION', ' 5 ', '1e3', '"5"', '\u0000', '\ud800', 'é'];
const FIELDS = [
  'key', 'range_end', 'rangeEnd', 'value', 'lease', 'prev_kv', 'prevKv', 'ignore_value', 'ignore_lease', 'limit', 'revision',
  'sort_order', 'sortOrder', 'sort_target', 'serializable', 'keys_only', 'count_only', 'min_mod_revision', 'max_create_revision',
  'compare', 'success', 'failure', 'request_put', 'request_range', 'request_delete_range', 'request_txn', 'result', 'target',
  'version', 'create_revision', 'mod_revision', 'physical', 'unknown_field',
];

/** A random JSON value as text, at most `depth` levels deep. */
function value(rand: Rand, depth: number): string {
  const r = rand();
  if (depth > 0 && r < 0.3) return object(rand, depth - 1);
  if (depth > 0 && r < 0.4) return `[${Array.from({ length: Math.floor(rand() * 4) }, () => value(rand, depth - 1)).join(',')}]`;
  if (r < 0.6) return pick(rand, INTEGERS);
  if (r < 0.65) return `"${pick(rand, INTEGERS)}"`;
  if (r < 0.9) return JSON.stringify(pick(rand, STRINGS));
  return pick(rand, ['true', 'false', 'null']);
}

function object(rand: Rand, depth: number): string {
  const n = Math.floor(rand() * 5);
  return `{${Array.from({ length: n }, () => `"${pick(rand, FIELDS)}":${value(rand, depth)}`).join(',')}}`;
}

/** A body from the request grammar, then mangled now and then: truncated, deepened, a byte changed. */
function body(rand: Rand): string {
  let text = object(rand, 4);
  const r = rand();
  if (r < 0.1) text = text.slice(0, Math.floor(rand() * text.length));
  else if (r < 0.14) text = `{"key":"${b64('a')}","x":${'['.repeat(9_990 + Math.floor(rand() * 20))}${']'.repeat(10_000)}}`;
  else if (r < 0.15) text = `{"key":"${b64('a')}","x":${'[{"a":'.repeat(Math.floor(rand() * 30_000))}`;
  else if (r < 0.2) {
    let t = '{}';
    for (let i = 0, n = Math.floor(rand() * 400); i < n; i++) t = `{"success":[{"request_txn":${t}}]}`;
    text = t;
  } else if (r < 0.3) {
    const at = Math.floor(rand() * text.length);
    text = text.slice(0, at) + pick(rand, ['\u0000', '\n', '"', '}', ']', ',', '\\', 'e', '-', '.', '\u00ff']) + text.slice(at + 1);
  }
  return text;
}

const PATHS = ['/v3/kv/range', '/v3/kv/put', '/v3/kv/deleterange', '/v3/kv/txn', '/v3/kv/compaction'];

test('800 seeded hostile JSON bodies: every answer 2xx/4xx in etcd\'s JSON shape, never a 5xx, nothing logged as a failure', async () => {
  const rand = rng(90210);
  const statuses = new Map<number, number>();
  for (let i = 0; i < 800; i++) {
    const path = pick(rand, PATHS);
    const text = body(rand);
    const reply = await httpRequest(running.server.port, 'POST', path, text);
    statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
    assert.ok(reply.status < 500, `case ${i}: ${reply.status} for ${path} ${text.slice(0, 300)}: ${reply.body}`);
    const json = JSON.parse(reply.body);
    if (reply.status !== 200) {
      assert.type(json.error, 'string');
      assert.is(json.message, json.error);
      assert.type(json.code, 'number');
    }
  }
  assert.ok((statuses.get(200) ?? 0) > 50 && (statuses.get(400) ?? 0) > 50, JSON.stringify([...statuses]));
  assert.equal(logged, []);
  const health = await httpRequest(running.server.port, 'GET', '/health');
  assert.is(health.status, 200);
});

/** The decoded request, or the error's text, with Buffers and bigints made comparable. */
function decoded(fn: () => unknown): string {
  try {
    return JSON.stringify(fn(), (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

test('plain bodies decode alike through JSON.parse and through Go\'s scanner (3,000 seeded bodies)', () => {
  const rand = rng(31337);
  let plain = 0;
  for (let i = 0; i < 3000; i++) {
    const text = object(rand, 4);
    const bytes = Buffer.from(text);
    if (!isPlainJson(bytes)) continue;
    let fast: unknown;
    try {
      fast = JSON.parse(text);
    } catch {
      continue;
    }
    plain++;
    const type = pick(rand, Object.values(requestTypes));
    const depthMax = messageDepthMax(Limits.txnDepthMax);
    const viaParse = decoded(() => decodeMessage(type, fast, 1, depthMax));
    const viaGo = decoded(() => decodeMessage(type, goJsonParse(bytes, 'decoder').value, 1, depthMax));
    assert.is(viaGo, viaParse, `case ${i}: ${type.name} ${text}`);
  }
  assert.ok(plain > 1000, `${plain} plain bodies`);
});

test.run();
