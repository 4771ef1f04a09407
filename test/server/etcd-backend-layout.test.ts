/**
 * etcd's backend layout codecs against a reference: mvccpb.KeyValue as protobufjs encodes it from
 * our .proto files (seeded random values, leases past 2^53 and negative as int64), and revision
 * keys against their worked example.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode, messageType } from '../../src/proto/codec.js';
import type { KeyValue } from '../../src/proto/etcd-types.js';
import {
  decodeEtcdKeyValue, decodeEtcdRevisionKey, encodeEtcdKeyValue, encodeEtcdRevisionKey, encodeEtcdMember,
} from '../../src/server/etcd-backend-layout.js';
import { rng } from '../seeded-random.js';

const KV = messageType('mvccpb.KeyValue');

test('KeyValue: same bytes as protobufjs, and decoded back, over seeded inputs', () => {
  const random = rng(5);
  const bytes = (max: number) => Buffer.from(Array.from({ length: Math.floor(random() * max) }, () => Math.floor(random() * 256)));
  const leases = [0n, 1n, 0x694d7d7c6b2e1a04n, -5n, (1n << 62n) + 3n];
  for (let i = 0; i < 500; i++) {
    const kv = {
      key: Buffer.concat([Buffer.from('k'), bytes(30)]),
      createRevision: random() < 0.2 ? 0 : Math.floor(random() * 2 ** (1 + Math.floor(random() * 52))),
      modRevision: Math.floor(random() * 1e9),
      version: random() < 0.2 ? 0 : Math.floor(random() * 300),
      value: bytes(random() < 0.1 ? 5000 : 40),
      lease: leases[i % leases.length]!,
    };
    const ours = encodeEtcdKeyValue(kv);
    const reference = Buffer.from(encode(KV, { key: kv.key, create_revision: kv.createRevision, mod_revision: kv.modRevision, version: kv.version, value: kv.value, lease: kv.lease }));
    if (!ours.equals(reference)) assert.unreachable(`case ${i}: ${ours.toString('hex')} != ${reference.toString('hex')}`);
    const back = decodeEtcdKeyValue(ours);
    assert.equal({ ...back, key: Buffer.from(back.key), value: Buffer.from(back.value) }, kv, `case ${i}`);
    const viaReference = decode<KeyValue>(KV, ours);
    assert.is(viaReference.mod_revision, kv.modRevision);
  }
});

test('revision keys: main and sub big-endian around "_", a tombstone adds "t"; anything else is not one', () => {
  assert.is(encodeEtcdRevisionKey(9, 1, true).toString('hex'), '0000000000000009' + '5f' + '0000000000000001' + '74');
  assert.equal(decodeEtcdRevisionKey(encodeEtcdRevisionKey(2 ** 40 + 7, 3, false)), { main: 2 ** 40 + 7, sub: 3, tombstone: false });
  assert.equal(decodeEtcdRevisionKey(encodeEtcdRevisionKey(5, 0, true)), { main: 5, sub: 0, tombstone: true });
  assert.is(decodeEtcdRevisionKey(Buffer.from('consistent_index')), null);
  const bad = encodeEtcdRevisionKey(5, 0, true);
  bad[17] = 0x78;
  assert.is(decodeEtcdRevisionKey(bad), null);
});

test('members: the hex id without padding, the uint64 id exact in the JSON', () => {
  const m = encodeEtcdMember({ id: 0xbdae9bbc11dd390dn, name: 's1', peerURLs: ['http://127.0.0.1:23801'], clientURLs: ['http://127.0.0.1:23791'], isLearner: false });
  assert.is(m.key.toString(), 'bdae9bbc11dd390d');
  // The value etcd 3.4 wrote for this member (read from a real snapshot).
  assert.is(m.value.toString(), '{"id":13668033151171901709,"peerURLs":["http://127.0.0.1:23801"],"name":"s1","clientURLs":["http://127.0.0.1:23791"]}');
  assert.is(encodeEtcdMember({ id: 0x1an, name: 'l', peerURLs: [], clientURLs: [], isLearner: true }).value.toString(), '{"id":26,"peerURLs":[],"name":"l","clientURLs":[],"isLearner":true}');
});

test.run();
