import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { indexedHeaderBlocks } from '../../bench/kv/grpc-load.js';
import { HpackDecoder, type HeaderField } from '../../src/http/hpack.js';

/**
 * The load generator's request headers (bench/kv/grpc-load.ts): the first block on a connection
 * adds the fields outside the static table to the server's HPACK table, the later ones name every
 * field by index, and both decode, with the server's own decoder, to the same list.
 */
const headers: HeaderField[] = [
  [':method', 'POST'], [':scheme', 'http'], [':path', '/etcdserverpb.KV/Put'], [':authority', '127.0.0.1:2379'],
  ['content-type', 'application/grpc'], ['te', 'trailers'],
];

test('the indexed block decodes to the same headers after the first, and is one byte a field', () => {
  const [first, later] = indexedHeaderBlocks(headers);
  const decoder = new HpackDecoder({ tableBytesMax: 4096, headerListBytesMax: 16384 });
  assert.equal(decoder.decode(first), headers);
  assert.equal(decoder.dynamicTable.map(([name]) => name), ['te', 'content-type', ':authority', ':path']);
  for (let i = 0; i < 3; i++) assert.equal(decoder.decode(later), headers);
  assert.is(later.length, headers.length);
  // Without the first block the indexes name nothing: refused, not misread.
  assert.throws(() => new HpackDecoder({ tableBytesMax: 4096, headerListBytesMax: 16384 }).decode(later));
});

test.run();
