/**
 * codec.ts' encode side: bigint ids become Longs on copies of only the objects on the way to them
 * (copy on write), the caller's objects never change, and the bytes are protobufjs' own for the
 * same message given its ids as decimal strings (fromObject), at every depth an id can sit.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode, messageType, prepareForEncode } from '../../src/proto/codec.js';

/** Deep copy with every bigint as its decimal string: protobufjs' fromObject reads those as 64-bit. */
function withStringIds(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(withStringIds);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = withStringIds(v);
  return out;
}

function reference(typeName: string, obj: object): string {
  const type = messageType(typeName);
  return Buffer.from(type.encode(type.fromObject(withStringIds(obj) as object)).finish()).toString('hex');
}

/** A deep snapshot that keeps bigints and Buffers comparable by value. */
function snapshot(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
}

const header = { cluster_id: 0xcdf818194e3a8c32n, member_id: 0x8e9e05c52164694dn, revision: 7, raft_term: 2 };
const kv = (key: string, lease: bigint) => ({ key: Buffer.from(key), create_revision: 2, mod_revision: 7, version: 3, value: Buffer.from('v'), lease });

const cases: Array<[string, object]> = [
  ['etcdserverpb.PutResponse', { header }],
  ['etcdserverpb.PutResponse', { header, prev_kv: kv('a', 0x694d7d7c6b2e1a04n) }],
  ['etcdserverpb.RangeResponse', { header, kvs: [kv('a', 0n), kv('b', 5n), kv('c', -1n)], count: 3, more: false }],
  ['etcdserverpb.RangeRequest', { key: Buffer.from('a'), range_end: Buffer.from('b'), limit: 10, revision: 4 }],
  ['etcdserverpb.TxnRequest', {
    compare: [{ key: Buffer.from('k'), target: 4, lease: 9n }],
    success: [{ request_put: { key: Buffer.from('k'), value: Buffer.from('v'), lease: 0x7fffffffffffffffn } }, { request_range: { key: Buffer.from('k') } }],
    failure: [{ request_txn: { success: [{ request_put: { key: Buffer.from('n'), lease: 3n } }] } }],
  }],
  ['etcdserverpb.LeaseGrantResponse', { header, ID: 0xffffffffffffffffn, TTL: 60 }],
  ['keyraftpb.InternalRequest', { id: 2 ** 40, member_id: 0xffffffffffffffffn, put: { key: Buffer.from('k'), value: Buffer.from('v'), lease: 12n } }],
];

test('the bytes are protobufjs\' for the same message with string ids, and decode back', () => {
  for (const [typeName, obj] of cases) {
    assert.is(Buffer.from(encode(messageType(typeName), obj)).toString('hex'), reference(typeName, obj), typeName);
  }
  const decoded = decode<{ header: typeof header }>(messageType('etcdserverpb.PutResponse'), encode(messageType('etcdserverpb.PutResponse'), { header }));
  assert.is(decoded.header.cluster_id, header.cluster_id);
  assert.is(decoded.header.member_id, header.member_id);
});

test('encode never changes the caller\'s objects (bigints stay bigints, arrays stay the same arrays)', () => {
  for (const [typeName, obj] of cases) {
    const before = snapshot(obj);
    const arrays = Object.values(obj).filter(Array.isArray);
    encode(messageType(typeName), obj);
    assert.is(snapshot(obj), before, typeName);
    for (const a of arrays) assert.ok(Object.values(obj).includes(a), `${typeName}: an array was replaced`);
  }
});

test('only the objects on the way to an id are copied', () => {
  const rangeRequest = { key: Buffer.from('a'), revision: 4 };
  assert.is(prepareForEncode(messageType('etcdserverpb.RangeRequest'), rangeRequest), rangeRequest, 'no id: the same object');
  const kvs = [kv('a', 0n)];
  const response = { header: { revision: 7 }, kvs: [{ key: Buffer.from('a'), value: Buffer.from('v') }] };
  assert.is(prepareForEncode(messageType('etcdserverpb.RangeResponse'), response), response, 'ids absent at every depth: the same object');
  const withIds = { header, kvs, count: 1 };
  const prepared = prepareForEncode(messageType('etcdserverpb.RangeResponse'), withIds) as typeof withIds;
  assert.is.not(prepared, withIds);
  assert.is.not(prepared.header, header);
  assert.is.not(prepared.kvs, kvs);
  assert.is(prepared.kvs[0]!.key, kvs[0]!.key, 'bytes are shared, not copied');
  assert.ok(typeof header.cluster_id === 'bigint');
});

test.run();
