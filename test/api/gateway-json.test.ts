/** The etcd 3.4 gateway JSON mapping: request decoding, reply encoding, Go's error texts. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Base64Error, decodeGoBase64 } from '../../src/api/go-base64.js';
import { goJsonSyntaxError } from '../../src/api/go-json-syntax.js';
import {
  GatewayDecodeError, deleteRangeResponseJson, errorJson, memberListResponseJson, parseBody, putResponseJson,
  rangeResponseJson, requestTypes, statusResponseJson, txnResponseJson,
} from '../../src/api/gateway-json.js';
import { protoSizeOf } from '../../src/api/proto-size.js';
import { encode, messageType } from '../../src/proto/codec.js';
import { rng } from '../seeded-random.js';

const body = (v: unknown): Buffer => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
const b64 = (s: string): string => Buffer.from(s).toString('base64');

function decodeError(type: keyof typeof requestTypes, text: string): string {
  try {
    parseBody(requestTypes[type], body(text));
  } catch (err) {
    assert.instance(err, GatewayDecodeError);
    return (err as Error).message;
  }
  throw new Error(`expected ${text} to fail`);
}

test('requests: snake_case and lowerCamelCase names, enums by name or number, 64-bit ints as strings or numbers', () => {
  const snake = parseBody(requestTypes.range, body({ key: b64('a'), range_end: b64('c'), limit: '2', sort_order: 'DESCEND', sort_target: 3, keys_only: true, revision: 7 }));
  const camel = parseBody(requestTypes.range, body({ key: b64('a'), rangeEnd: b64('c'), limit: 2, sortOrder: 2, sortTarget: 'MOD', keysOnly: true, revision: '7' }));
  assert.equal(snake, camel);
  assert.equal(snake.key, Buffer.from('a'));
  assert.is(snake.limit, 2);
  assert.is(snake.sort_order, 2);
  assert.is(snake.sort_target, 3);
  assert.is(snake.revision, 7);
});

test('requests: unknown fields ignored, null is absent, empty body and null body are empty requests', () => {
  assert.equal(parseBody(requestTypes.put, body({ key: b64('k'), bogus: [1, 2], value: null })), { key: Buffer.from('k') });
  assert.equal(parseBody(requestTypes.put, Buffer.alloc(0)), {});
  assert.equal(parseBody(requestTypes.put, body('null')), {});
  assert.equal(parseBody(requestTypes.put, body('  \n ')), {});
  // json.Decoder reads only the first value.
  assert.equal(parseBody(requestTypes.put, body('{"key":"aw=="} trailing')), { key: Buffer.from('k') });
});

test('requests: ids are bigint, nested txn ops and compares decode', () => {
  const txn = parseBody(requestTypes.txn, body({
    compare: [{ key: b64('a'), result: 'NOT_EQUAL', target: 'LEASE', lease: '9223372036854775807' }],
    success: [{ request_put: { key: b64('b'), value: b64('v'), lease: 5 } }, { requestTxn: { success: [{ request_range: { key: b64('z') } }] } }],
  }));
  assert.is(txn.compare[0].lease, 9223372036854775807n);
  assert.is(txn.compare[0].result, 3);
  assert.is(txn.compare[0].target, 4);
  assert.is(txn.success[0].request_put.lease, 5n);
  assert.equal(txn.success[1].request_txn.success[0].request_range.key, Buffer.from('z'));
});

test('requests: Go error texts as etcd 3.4 answers them', () => {
  assert.is(decodeError('range', '{"key": "YQ=="'), 'unexpected EOF');
  assert.is(decodeError('range', '{"key": "@@@not base64"}'), 'illegal base64 data at input byte 0');
  assert.is(decodeError('range', '{"key": "YQ==", "limit": "ten"}'), "invalid character 'e' in literal true (expecting 'r')");
  assert.is(decodeError('range', '{"key":"YQ==","limit":"1.5"}'), 'json: cannot unmarshal number 1.5 into Go value of type int64');
  assert.is(decodeError('range', '{"key":"YQ==","limit":1.5}'), 'json: cannot unmarshal number 1.5 into Go value of type int64');
  assert.is(decodeError('range', '{"key":"YQ==","sort_order":"BOGUS"}'), 'unknown value "BOGUS" for enum etcdserverpb.RangeRequest_SortOrder');
  assert.is(decodeError('range', '[]'), 'json: cannot unmarshal array into Go value of type map[string]json.RawMessage');
  assert.is(decodeError('range', '{"key":"YQ"}'), 'illegal base64 data at input byte 0');
  assert.is(decodeError('range', '{"key":"YQ==="}'), 'illegal base64 data at input byte 4');
  assert.is(decodeError('range', '{"key":"-_8"}'), 'illegal base64 data at input byte 0');
  assert.is(decodeError('range', '{"key":1}'), 'json: cannot unmarshal number into Go value of type []uint8');
  assert.is(decodeError('range', '{"key":[256]}'), 'json: cannot unmarshal number 256 into Go value of type uint8');
  // encoding/json fills []byte from an array of numbers too (etcd answers such a range normally).
  assert.equal(parseBody(requestTypes.range, body('{"key":[1,97]}')).key, Buffer.from([1, 97]));
  assert.is(decodeError('range', '{"keys_only":"yes"}'), 'json: cannot unmarshal string into Go value of type bool');
  assert.is(decodeError('txn', '{"success":{}}'), 'json: cannot unmarshal object into Go value of type []json.RawMessage');
  assert.is(decodeError('range', '{"key" 1}'), "invalid character '1' after object key");
  assert.is(decodeError('range', '{"key":1 2}'), "invalid character '2' after object key:value pair");
  assert.is(decodeError('range', '{,}'), "invalid character ',' looking for beginning of object key string");
  assert.is(decodeError('range', '{"key":"a\u0001"}'), "invalid character '\\x01' in string literal");
});

test('Go base64: strict padding, CR/LF skipped, offsets as Go reports them', () => {
  assert.equal(decodeGoBase64('aGVsbG8='), Buffer.from('hello'));
  assert.equal(decodeGoBase64('aGVs\nbG8='), Buffer.from('hello'));
  assert.equal(decodeGoBase64(''), Buffer.alloc(0));
  const offset = (s: string): number => {
    try {
      decodeGoBase64(s);
    } catch (err) {
      assert.instance(err, Base64Error);
      return (err as Base64Error).offset;
    }
    return -1;
  };
  assert.is(offset('aGVsbG8'), 4);
  assert.is(offset('a==='), 1);
  assert.is(offset('aGVsbG8=x'), 8);
  assert.is(offset('aG*s'), 2);
  assert.is(offset('aGV='), -1);
  // Inputs node's decoder would read leniently: URL alphabet, inner padding, stray bytes.
  assert.is(offset('-_8='), 0);
  assert.is(offset('YQ==YQ=='), 4);
  assert.is(offset('YW*j'), 2);
  assert.is(offset('Y Q='), 1);
  assert.is(offset('===='), 0);
});

test('Go base64 agrees with a reference model on seeded random inputs', () => {
  const rand = rng(99);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ *\n';
  const strict = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  for (let i = 0; i < 3000; i++) {
    let text: string;
    if (rand() < 0.5) {
      text = Buffer.from(Array.from({ length: Math.floor(rand() * 12) }, () => Math.floor(rand() * 256))).toString('base64');
      if (rand() < 0.5 && text.length > 0) {
        const at = Math.floor(rand() * text.length);
        text = text.slice(0, at) + alphabet[Math.floor(rand() * alphabet.length)] + text.slice(at + 1);
      }
    } else {
      text = Array.from({ length: Math.floor(rand() * 10) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
    }
    let ok = true;
    let decoded: Buffer | undefined;
    try {
      decoded = decodeGoBase64(text);
    } catch {
      ok = false;
    }
    // Reference: Go skips CR and LF anywhere; the rest must be strict padded standard alphabet.
    const stripped = text.replace(/[\r\n]/g, '');
    assert.is(ok, strict.test(stripped), JSON.stringify(text));
    if (ok) assert.equal(decoded, Buffer.from(stripped, 'base64'), JSON.stringify(text));
  }
});

test('Go JSON scanner: valid text passes, unmarshal mode refuses trailing bytes', () => {
  for (const ok of ['{}', '[1,2,{"a":null}]', '-0.5e+3', '"\\u00e9"', 'true']) assert.is(goJsonSyntaxError(Buffer.from(ok), 'unmarshal'), undefined, ok);
  assert.is(goJsonSyntaxError(Buffer.from('1 2'), 'unmarshal'), "invalid character '2' after top-level value");
  assert.is(goJsonSyntaxError(Buffer.from(''), 'unmarshal'), 'unexpected end of JSON input');
  assert.is(goJsonSyntaxError(Buffer.from('01'), 'unmarshal'), "invalid character '1' after top-level value");
  assert.is(goJsonSyntaxError(Buffer.from('1.'), 'unmarshal'), 'unexpected end of JSON input');
  assert.is(goJsonSyntaxError(Buffer.from('1.x'), 'unmarshal'), "invalid character 'x' after decimal point in numeric literal");
});

const header = { cluster_id: 14583454798482351579n, member_id: 12765802683452166826n, revision: 3, raft_term: 2 };
const hdr = '{"cluster_id":"14583454798482351579","member_id":"12765802683452166826","revision":"3","raft_term":"2"}';

test('replies: byte-exact JSON as etcd 3.4 prints it (field order, defaults omitted, int64 strings)', () => {
  const kv = { key: Buffer.from('a'), create_revision: 2, mod_revision: 2, version: 1, value: Buffer.from('1'), lease: 0n };
  assert.is(rangeResponseJson({ header, kvs: [kv], more: false, count: 1 }),
    `{"header":${hdr},"kvs":[{"key":"YQ==","create_revision":"2","mod_revision":"2","version":"1","value":"MQ=="}],"count":"1"}`);
  assert.is(rangeResponseJson({ header, kvs: [], more: false, count: 0 }), `{"header":${hdr}}`);
  assert.is(putResponseJson({ header, prev_kv: { ...kv, value: Buffer.alloc(0), lease: 7n } }),
    `{"header":${hdr},"prev_kv":{"key":"YQ==","create_revision":"2","mod_revision":"2","version":"1","lease":"7"}}`);
  assert.is(deleteRangeResponseJson({ header, deleted: 1, prev_kvs: [] }), `{"header":${hdr},"deleted":"1"}`);
  // Captured from etcd 3.4.23: inner headers carry only the revision; an empty header prints as {}.
  assert.is(txnResponseJson({
    header, succeeded: true, responses: [
      { response_put: { header: { cluster_id: 0n, member_id: 0n, revision: 3, raft_term: 0 } } },
      { response_txn: { header: { cluster_id: 0n, member_id: 0n, revision: 0, raft_term: 0 }, succeeded: true, responses: [] } },
    ],
  }), `{"header":${hdr},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"3"}}},{"response_txn":{"header":{},"succeeded":true}}]}`);
  assert.is(memberListResponseJson({
    header: { ...header, revision: 0 },
    members: [{ ID: 12765802683452166826n, name: 'default', peerURLs: ['http://127.0.0.1:34481'], clientURLs: ['http://127.0.0.1:42547'], isLearner: false }],
  }), '{"header":{"cluster_id":"14583454798482351579","member_id":"12765802683452166826","raft_term":"2"},"members":[{"ID":"12765802683452166826","name":"default","peerURLs":["http://127.0.0.1:34481"],"clientURLs":["http://127.0.0.1:42547"]}]}');
  assert.is(statusResponseJson({
    header, version: '3.4.23', dbSize: 20480, leader: 12765802683452166826n, raftIndex: 12, raftTerm: 2, raftAppliedIndex: 12,
    errors: [], dbSizeInUse: 16384, isLearner: false,
  }), `{"header":${hdr},"version":"3.4.23","dbSize":"20480","leader":"12765802683452166826","raftIndex":"12","raftTerm":"2","raftAppliedIndex":"12","dbSizeInUse":"16384"}`);
  assert.is(errorJson('a <b> & "c"', 3), '{"error":"a \\u003cb\\u003e \\u0026 \\"c\\"","message":"a \\u003cb\\u003e \\u0026 \\"c\\"","code":3}');
});

test('replies round-trip: what we print decodes back to the same request shape', () => {
  const kv = { key: Buffer.from([0, 255, 10]), create_revision: 9, mod_revision: 10, version: 2, value: Buffer.from('v'), lease: 3n };
  const json = JSON.parse(rangeResponseJson({ header, kvs: [kv], more: true, count: 5 }));
  assert.equal(Buffer.from(json.kvs[0].key, 'base64'), kv.key);
  assert.is(json.more, true);
  assert.is(json.count, '5');
  assert.is(json.kvs[0].lease, '3');
});

test('proto size equals protobufjs encoded length (reference model, seeded random requests)', () => {
  const rand = rng(42);
  const bytes = (): Buffer => Buffer.from(Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256)));
  const int = (): number => (rand() < 0.3 ? 0 : Math.floor(rand() * 2 ** (rand() * 50)));
  const putType = messageType('etcdserverpb.PutRequest');
  const txnType = messageType('etcdserverpb.TxnRequest');
  for (let i = 0; i < 300; i++) {
    const put = { key: bytes(), value: bytes(), lease: BigInt(int()), prev_kv: rand() < 0.5, ignore_value: rand() < 0.2 };
    assert.is(protoSizeOf(putType, put), encode(putType, put).length, `put #${i}`);
    const txn = {
      compare: [{ key: bytes(), result: Math.floor(rand() * 4), target: 2, mod_revision: int() }],
      success: [{ request_put: put }, { request_range: { key: bytes(), limit: int(), revision: int() } }],
      failure: [{ request_txn: { success: [{ request_delete_range: { key: bytes(), prev_kv: true } }] } }],
    };
    assert.is(protoSizeOf(txnType, txn), encode(txnType, txn).length, `txn #${i}`);
  }
});

test.run();
