/**
 * The hand encoder of Put proposals (src/server/put-proposal-encoding.ts) writes exactly the bytes
 * protobufjs writes for the same InternalRequest (codec.ts' encode, what the member used before and
 * still uses for every other request), and declines the shapes it does not cover.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode, messageType } from '../../src/proto/codec.js';
import type { InternalRequest, PutRequest } from '../../src/proto/etcd-types.js';
import { decodePutProposal } from '../../src/server/put-proposal-decoding.js';
import { putProposalBytes, writePutProposal } from '../../src/server/put-proposal-encoding.js';
import { rng } from '../seeded-random.js';

const internalRequestType = messageType('keyraftpb.InternalRequest');

function handEncoded(request: InternalRequest): Buffer {
  const bytes = putProposalBytes(request);
  assert.ok(bytes > 0, `shape not covered: ${JSON.stringify(request, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
  const out = Buffer.alloc(bytes, 0xee);
  writePutProposal(request, out);
  return out;
}

function assertSameBytes(request: InternalRequest, what: string): void {
  const expected = Buffer.from(encode(internalRequestType, request));
  const actual = handEncoded(request);
  assert.is(actual.toString('hex'), expected.toString('hex'), what);
}

const memberId = 0x8e9e05c52164694dn;
const maxUint64 = (1n << 64n) - 1n;

test('the worked example of the header comment', () => {
  const request: InternalRequest = { id: 5, put: { key: Buffer.from('a'), value: Buffer.from('bc') }, member_id: 0x81n };
  assert.is(handEncoded(request).toString('hex'), '0805' + '12070a0161120262' + '63' + '388101');
  assertSameBytes(request, 'worked example');
});

test('the same bytes as protobufjs for each field alone and together', () => {
  const id = Date.now() * 1024; // as wait.ts hands them out: past 2^32
  const shapes: Array<[string, PutRequest]> = [
    ['empty put', {}],
    ['empty key and value', { key: Buffer.alloc(0), value: Buffer.alloc(0) }],
    ['key only', { key: Buffer.from('foo') }],
    ['value only', { value: Buffer.from('bar') }],
    ['key and value', { key: Buffer.from('foo'), value: Buffer.from('bar') }],
    ['127-byte value (1-byte length)', { key: Buffer.from('k'), value: Buffer.alloc(127, 1) }],
    ['128-byte value (2-byte length)', { key: Buffer.from('k'), value: Buffer.alloc(128, 1) }],
    ['16 KiB value (3-byte length)', { key: Buffer.from('k'), value: Buffer.alloc(16384, 2) }],
    ['1.5 MiB value', { key: Buffer.alloc(300, 3), value: Buffer.alloc(1_572_864, 4) }],
    ['lease', { key: Buffer.from('k'), value: Buffer.from('v'), lease: 0x694d7d7c6b2e1a04n }],
    ['small lease', { key: Buffer.from('k'), lease: 1n }],
    ['lease 0n (not written)', { key: Buffer.from('k'), lease: 0n }],
    ['negative lease (10-byte varint)', { key: Buffer.from('k'), lease: -1n }],
    ['largest int64 lease', { key: Buffer.from('k'), lease: (1n << 63n) - 1n }],
    ['prev_kv', { key: Buffer.from('k'), value: Buffer.from('v'), prev_kv: true }],
    ['ignore_value', { key: Buffer.from('k'), ignore_value: true }],
    ['ignore_lease', { key: Buffer.from('k'), value: Buffer.from('v'), ignore_lease: true }],
    ['flags false (not written)', { key: Buffer.from('k'), prev_kv: false, ignore_value: false, ignore_lease: false }],
    ['everything', { key: Buffer.from('key'), value: Buffer.from('value'), lease: 42n, prev_kv: true, ignore_value: true, ignore_lease: true }],
    ['plain Uint8Array key and value', { key: new Uint8Array([1, 2, 3]) as Buffer, value: new Uint8Array([4, 5]) as Buffer }],
    ['a key that is a view into a larger buffer', { key: Buffer.from('xxkeyxx').subarray(2, 5), value: Buffer.from('v') }],
  ];
  for (const [what, put] of shapes) {
    assertSameBytes({ id, put, member_id: memberId }, what);
  }
});

test('the same bytes for request ids and member ids of every varint length', () => {
  const put: PutRequest = { key: Buffer.from('k'), value: Buffer.from('v') };
  const ids = [0, 1, 127, 128, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35, Date.now() * 1024, Number.MAX_SAFE_INTEGER];
  const memberIds: Array<bigint | undefined> = [undefined, 0n, 1n, 0x81n, 0xffffffffn, 0x100000000n, memberId, (1n << 63n), maxUint64];
  for (const id of ids) {
    for (const member_id of memberIds) {
      const request: InternalRequest = member_id === undefined ? { id, put } : { id, put, member_id };
      assertSameBytes(request, `id ${id}, member_id ${member_id}`);
    }
  }
});

test('the same bytes over seeded random puts, alternating member ids (the varint caches)', () => {
  const random = rng(20261203);
  const bytes = (max: number): Buffer => {
    const n = Math.floor(random() * max);
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(random() * 256);
    return out;
  };
  const big64 = (): bigint => (BigInt(Math.floor(random() * 2 ** 32)) << 32n) | BigInt(Math.floor(random() * 2 ** 32));
  for (let i = 0; i < 2000; i++) {
    const put: PutRequest = {};
    if (random() < 0.9) put.key = bytes(random() < 0.1 ? 600 : 40);
    if (random() < 0.8) put.value = bytes(random() < 0.05 ? 40_000 : 300);
    if (random() < 0.3) put.lease = BigInt.asIntN(64, big64());
    if (random() < 0.3) put.prev_kv = random() < 0.5;
    if (random() < 0.2) put.ignore_value = random() < 0.5;
    if (random() < 0.2) put.ignore_lease = random() < 0.5;
    const request: InternalRequest = { id: Math.floor(random() * Number.MAX_SAFE_INTEGER), put, member_id: random() < 0.5 ? memberId : big64() };
    assertSameBytes(request, `random case ${i}`);
    const decoded = decode<InternalRequest>(internalRequestType, handEncoded(request));
    assert.is(decoded.id, request.id, `random case ${i}: id decodes back`);
    assert.is(decoded.member_id ?? 0n, request.member_id, `random case ${i}: member_id decodes back`);
  }
});

test('the hand decoder (put-proposal-decoding.ts, what followers use) reads back what the hand encoder wrote', () => {
  const random = rng(31);
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
  for (let i = 0; i < 500; i++) {
    const put: PutRequest = {};
    if (random() < 0.9) put.key = bytes(1 + Math.floor(random() * 40));
    if (random() < 0.8) put.value = bytes(1 + Math.floor(random() * (random() < 0.05 ? 20_000 : 300)));
    if (random() < 0.3) put.lease = BigInt.asIntN(64, (BigInt(Math.floor(random() * 2 ** 32)) << 32n) | 7n);
    if (random() < 0.3) put.prev_kv = true;
    if (random() < 0.2) put.ignore_value = true;
    if (random() < 0.2) put.ignore_lease = true;
    const request: InternalRequest = { id: 1 + Math.floor(random() * Number.MAX_SAFE_INTEGER), put, member_id: memberId };
    const decoded = decodePutProposal(handEncoded(request));
    assert.ok(decoded !== null, `case ${i}: the hand decoder declined the hand encoder's bytes`);
    assert.equal(decoded, request, `case ${i}`);
  }
});

test('shapes it does not cover are declined (the member encodes those with protobufjs)', () => {
  const key = Buffer.from('k');
  const declined: Array<[string, InternalRequest]> = [
    ['no put', { id: 1, delete_range: { key } }],
    ['a put and another oneof member', { id: 1, put: { key }, txn: {} }],
    ['string key', { id: 1, put: { key: 'k' as unknown as Buffer } }],
    ['string value', { id: 1, put: { key, value: 'v' as unknown as Buffer } }],
    ['number lease', { id: 1, put: { key, lease: 5 as unknown as bigint } }],
    ['non-boolean flag', { id: 1, put: { key, prev_kv: 1 as unknown as boolean } }],
    ['negative id', { id: -1, put: { key } }],
    ['fractional id', { id: 1.5, put: { key } }],
    ['id past 2^53', { id: 2 ** 53, put: { key } }],
    ['number member id', { id: 1, put: { key }, member_id: 7 as unknown as bigint }],
    ['unknown fields kept by protobufjs', { id: 1, put: { key, $unknowns: [new Uint8Array([0x40, 1])] } as PutRequest }],
  ];
  for (const [what, request] of declined) assert.is(putProposalBytes(request), -1, what);
});

test.run();
