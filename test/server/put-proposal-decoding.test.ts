/** The hand decoder of Put proposals gives codec.decode's object for every Put, and null for the rest. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode, messageType } from '../../src/proto/codec.js';
import type { InternalRequest } from '../../src/proto/etcd-types.js';
import { decodePutProposal } from '../../src/server/put-proposal-decoding.js';
import { rng as seeded } from '../seeded-random.js';

const internalRequestType = messageType('keyraftpb.InternalRequest');

/** Plain, comparable form: Buffers and Uint8Arrays as hex, bigints tagged. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return `bytes:${Buffer.from(value).toString('hex')}`;
  if (typeof value === 'bigint') return `big:${value}`;
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

function same(request: InternalRequest, what: string): void {
  const bytes = encode(internalRequestType, request);
  const expected = decode<InternalRequest>(internalRequestType, bytes);
  const got = decodePutProposal(bytes);
  assert.ok(got !== null, `${what}: decoded`);
  assert.equal(plain(got), plain(expected), what);
}

test('every Put shape decodes as protobufjs decodes it', () => {
  same({ id: 1, member_id: 1n, put: { key: Buffer.from('k'), value: Buffer.from('v') } }, 'simple');
  same({ id: 0, put: { key: Buffer.from('k') } }, 'no value, id 0 not on the wire');
  same({ id: 7, put: {} }, 'empty put');
  same({ id: 2 ** 53 - 1, member_id: 0xffffffffffffffffn, put: { key: Buffer.alloc(300, 1), value: Buffer.alloc(70_000, 2) } }, 'big ids, long lengths');
  same({ id: 1.8e15, member_id: 0x8000000000000000n, put: { key: Buffer.from('k'), lease: 0x7fffffffffffffffn, prev_kv: true, ignore_value: true, ignore_lease: true } }, 'every flag, largest lease');
  same({ id: 3, member_id: 42n, put: { key: Buffer.from('k'), lease: -5n, prev_kv: false } }, 'negative lease');
  const random = seeded(7);
  const rng = { nextInt: (n: number) => Math.floor(random() * n) };
  for (let i = 0; i < 500; i++) {
    const put: Record<string, unknown> = {};
    if (rng.nextInt(4) > 0) put.key = Buffer.from(Array.from({ length: rng.nextInt(200) }, () => rng.nextInt(256)));
    if (rng.nextInt(4) > 0) put.value = Buffer.from(Array.from({ length: rng.nextInt(3000) }, () => rng.nextInt(256)));
    if (rng.nextInt(3) === 0) put.lease = BigInt(rng.nextInt(0x7fffffff)) * BigInt(rng.nextInt(0x7fffffff) + 1);
    if (rng.nextInt(3) === 0) put.prev_kv = true;
    if (rng.nextInt(5) === 0) put.ignore_value = true;
    if (rng.nextInt(5) === 0) put.ignore_lease = true;
    same({ id: rng.nextInt(0x7fffffff) * 1024 + rng.nextInt(1024), member_id: BigInt(rng.nextInt(0x7fffffff)) << BigInt(rng.nextInt(33)), put } as InternalRequest, `random ${i}`);
  }
});

test('other requests, unknown or repeated fields and damaged entries are left to protobufjs', () => {
  const other: InternalRequest[] = [
    { id: 1, delete_range: { key: Buffer.from('k') } },
    { id: 1, txn: { success: [{ request_put: { key: Buffer.from('k') } }] } },
    { id: 1, compaction: { revision: 5 } },
    { id: 1, lease_grant: { TTL: 5, ID: 9n } },
  ] as InternalRequest[];
  for (const request of other) assert.is(decodePutProposal(encode(internalRequestType, request)), null, Object.keys(request).join());
  const put = Buffer.from(encode(internalRequestType, { id: 1, member_id: 2n, put: { key: Buffer.from('key'), value: Buffer.from('value') } }));
  assert.is(decodePutProposal(Buffer.concat([put, put])), null, 'fields repeated (protobufjs merges them)');
  assert.is(decodePutProposal(Buffer.concat([put, Buffer.from([0x48, 0x01])])), null, 'unknown field 9');
  // A cut at a field boundary is a valid, shorter request; anywhere else protobufjs throws.
  let damaged = 0;
  for (let cut = 1; cut < put.length; cut++) {
    const bytes = put.subarray(0, cut);
    let expected: InternalRequest | null = null;
    try {
      expected = decode<InternalRequest>(internalRequestType, bytes);
    } catch {
      damaged++;
    }
    const got = decodePutProposal(bytes);
    if (expected === null || expected.put === undefined) assert.is(got, null, `truncated at ${cut}`);
    else assert.equal(plain(got), plain(expected), `cut at ${cut}`);
  }
  assert.ok(damaged > 10, 'most cuts damage the entry');
  assert.is(decodePutProposal(Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), null, 'varint over 10 bytes');
  assert.is(decodePutProposal(Buffer.from([0x12, 0x02, 0x20, 0x02])), null, 'prev_kv of 2');
  assert.is(decodePutProposal(new Uint8Array(0)), null, 'empty entry (a no-op)');
});

test('a Uint8Array that is not a Buffer decodes to views of it', () => {
  const bytes = encode(internalRequestType, { id: 9, put: { key: Buffer.from('abc'), value: Buffer.from('xyz') } });
  const copy = new Uint8Array(bytes.length + 4);
  copy.set(bytes, 4);
  const got = decodePutProposal(copy.subarray(4));
  assert.equal(plain(got), plain({ id: 9, put: { key: Buffer.from('abc'), value: Buffer.from('xyz') } }));
  assert.is(got!.put!.key!.buffer, copy.buffer, 'a view, not a copy');
});

test.run();
