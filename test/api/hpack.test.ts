/**
 * HPACK decoding against an independent encoder: node:http2's client (nghttp2's deflater, with
 * Huffman strings, a dynamic table and, after our SETTINGS shrink it, evictions and size updates)
 * sends seeded random header lists over one connection to a raw TCP server here; every header
 * block it sends must decode, with our HpackDecoder, to exactly the list it was given. Plus the
 * decoder's refusals (bad indexes, truncation, oversized lists) and the encoder round trip.
 */
import { connect } from 'node:http2';
import { createServer, type Server, type Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { huffmanCode, huffmanDecode, HuffmanError, HUFFMAN_EOS } from '../../src/http/hpack-huffman.js';
import { encodeWithoutIndexing, HpackDecoder, HpackError, type HeaderField } from '../../src/http/hpack.js';
import { rng } from '../seeded-random.js';

/** Header blocks (HEADERS + CONTINUATION joined) by stream id, in arrival order, from a raw HTTP/2 byte stream. */
class BlockCollector {
  readonly blocks: Array<{ streamId: number; block: Buffer }> = [];
  private buf = Buffer.alloc(0);
  private prefaceSeen = false;
  private pending: { streamId: number; fragments: Buffer[] } | undefined;

  push(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (!this.prefaceSeen) {
      if (this.buf.length < 24) return;
      this.buf = this.buf.subarray(24);
      this.prefaceSeen = true;
    }
    while (this.buf.length >= 9) {
      const length = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + length) return;
      const type = this.buf[3]!;
      const flags = this.buf[4]!;
      const streamId = this.buf.readUInt32BE(5) & 0x7fffffff;
      let payload = this.buf.subarray(9, 9 + length);
      this.buf = this.buf.subarray(9 + length);
      if (type === 0x1) {
        let start = 0;
        let end = payload.length;
        if (flags & 0x8) { start = 1; end -= payload[0]!; }
        if (flags & 0x20) start += 5;
        payload = payload.subarray(start, end);
        this.pending = { streamId, fragments: [Buffer.from(payload)] };
      } else if (type === 0x9 && this.pending) {
        this.pending.fragments.push(Buffer.from(payload));
      } else continue;
      if (flags & 0x4) {
        this.blocks.push({ streamId: this.pending!.streamId, block: Buffer.concat(this.pending!.fragments) });
        this.pending = undefined;
      }
    }
  }
}

const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-_';

function randomHeaders(random: () => number): Array<[string, string]> {
  const pick = (chars: string, n: number) => Array.from({ length: n }, () => chars[Math.floor(random() * chars.length)]).join('');
  const out: Array<[string, string]> = [];
  const count = 1 + Math.floor(random() * 8);
  for (let i = 0; i < count; i++) {
    // Names repeat often (so the encoder indexes them), values vary in length (short ones stay
    // raw, long ones go Huffman; 40-character values fill a 256-byte table after a few).
    const name = random() < 0.5 ? `x-h${Math.floor(random() * 6)}` : `x-${pick(NAME_CHARS, 1 + Math.floor(random() * 12))}`;
    const valueChars = random() < 0.3 ? 'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/=+%' : 'etaoin shrdlu';
    const value = random() < 0.2 ? 'same-value' : pick(valueChars, Math.floor(random() * 60));
    if (!out.some(([n]) => n === name)) out.push([name, value]);
  }
  return out;
}

let server: Server;
let socketOnServer: Promise<Socket>;

test.before(async () => {
  let accept!: (s: Socket) => void;
  socketOnServer = new Promise((resolve) => { accept = resolve; });
  server = createServer((socket) => accept(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
});

test.after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test('every header block node:http2 (nghttp2) encodes decodes to the headers it was given', async () => {
  const port = (server.address() as { port: number }).port;
  const session = connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  const socket = await socketOnServer;
  const collector = new BlockCollector();
  socket.on('data', (chunk: Buffer) => collector.push(chunk));
  // Server preface: a 256-byte table, so the client's encoder must send a size update and evict.
  const settings = Buffer.from([0, 0, 6, 0x4, 0, 0, 0, 0, 0, 0x00, 0x01, 0, 0, 0x01, 0x00]);
  socket.write(settings);
  try {
    const random = rng(20261201);
    const sent = new Map<number, Array<[string, string]>>();
    const requests = 300;
    for (let i = 0; i < requests; i++) {
      const headers = randomHeaders(random);
      const req = session.request({ ':method': 'POST', ':path': `/p/${i}`, ...Object.fromEntries(headers) }, { endStream: true });
      req.on('error', () => undefined);
      sent.set(1 + 2 * i, headers); // stream ids in request order: 1, 3, 5, ...
      // Wait until this block arrived: blocks interleave with nothing, and the test stays simple.
      await waitFor(() => collector.blocks.length > i, `header block ${i}`);
    }
    const decoder = new HpackDecoder({ tableBytesMax: 4096, headerListBytesMax: 1 << 20 });
    let sizeUpdatesSeen = false;
    for (const { streamId, block } of collector.blocks) {
      if ((block[0]! & 0xe0) === 0x20) sizeUpdatesSeen = true;
      const decoded = decoder.decode(block);
      const expected = sent.get(streamId)!;
      assert.ok(expected, `a block for stream ${streamId}, which was never sent`);
      const regular = decoded.filter(([n]) => !n.startsWith(':'));
      assert.equal(regular, expected, `stream ${streamId}`);
      assert.equal(decoded.find(([n]) => n === ':path'), [':path', `/p/${(streamId - 1) / 2}`]);
      assert.ok(decoder.dynamicTableBytes <= 4096);
    }
    assert.is(collector.blocks.length, requests);
    assert.ok(sizeUpdatesSeen, 'the encoder announced the smaller table (a size update was exercised)');
    assert.ok(decoder.dynamicTableBytes <= 256, `table at ${decoder.dynamicTableBytes} bytes after the size update to 256`);
  } finally {
    session.destroy();
    socket.destroy();
  }
});

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('refusals: index 0, an index past the table, truncated integers and strings, a list over its limit', () => {
  const decoder = () => new HpackDecoder({ tableBytesMax: 4096, headerListBytesMax: 100 });
  const refuses = (bytes: number[], why: RegExp) => {
    try {
      decoder().decode(Buffer.from(bytes));
    } catch (err) {
      assert.instance(err, HpackError);
      assert.match((err as Error).message, why);
      return;
    }
    assert.unreachable(`decoded ${bytes.map((b) => b.toString(16)).join(' ')}`);
  };
  refuses([0x80], /index 0/);
  refuses([0xbe], /beyond the dynamic table/); // index 62: the dynamic table is empty
  refuses([0xff, 0x80, 0x80], /truncated integer/);
  refuses([0x40, 0x05, 0x61], /overruns the block/);
  refuses([0x3f, 0xe1, 0x7f], /table size update to .* over 4096/);
  refuses([0x82, 0x20], /size update after a header field/);
  const long = encodeWithoutIndexing([['x-long', 'v'.repeat(80)]]);
  refuses([...long], /header list over 100 bytes/);
});

test('encodeWithoutIndexing round-trips through the decoder and leaves its table empty', () => {
  const random = rng(7);
  const decoder = new HpackDecoder({ tableBytesMax: 4096, headerListBytesMax: 1 << 20 });
  for (let i = 0; i < 200; i++) {
    const fields: HeaderField[] = [[':status', random() < 0.5 ? '200' : '415'], ...randomHeaders(random), ['content-type', 'application/grpc']];
    // latin1 bytes above 0x7f (grpc-message is percent-encoded, but a decoder must carry any byte)
    fields.push(['x-bytes', String.fromCharCode(...Array.from({ length: 5 }, () => Math.floor(random() * 256)))]);
    assert.equal(decoder.decode(encodeWithoutIndexing(fields)), fields);
  }
  assert.is(decoder.dynamicTableBytes, 0);
});

/** Reference model: the bit-by-bit decoder the nibble table replaced (a code search per bit). */
function naiveHuffmanDecode(input: Uint8Array): string | 'error' {
  const codes = new Map<string, number>();
  for (let symbol = 0; symbol <= HUFFMAN_EOS; symbol++) {
    const { code, bits } = huffmanCode(symbol);
    codes.set(`${bits}:${code}`, symbol);
  }
  let out = '';
  let code = 0;
  let bits = 0;
  for (const byte of input) {
    for (let b = 7; b >= 0; b--) {
      code = code * 2 + ((byte >> b) & 1);
      bits++;
      const symbol = codes.get(`${bits}:${code}`);
      if (symbol === HUFFMAN_EOS) return 'error';
      if (symbol !== undefined) {
        out += String.fromCharCode(symbol);
        code = 0;
        bits = 0;
      }
    }
  }
  if (bits > 7 || code !== 2 ** bits - 1) return 'error';
  return out;
}

function huffmanEncode(text: Buffer, padding: number): Buffer {
  let acc = 0n;
  let n = 0;
  for (const byte of text) {
    const { code, bits } = huffmanCode(byte);
    acc = (acc << BigInt(bits)) | BigInt(code);
    n += bits;
  }
  const pad = (8 - (n % 8)) % 8;
  acc = (acc << BigInt(pad)) | BigInt(padding & ((1 << pad) - 1));
  n += pad;
  const out = Buffer.alloc(n / 8);
  for (let i = out.length - 1; i >= 0; i--) {
    out[i] = Number(acc & 0xffn);
    acc >>= 8n;
  }
  return out;
}

test('Huffman: the nibble-table decoder agrees with a bit-by-bit reference on 2,000 seeded strings, valid and not', () => {
  const rand = rng(2024);
  let valid = 0;
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    let input: Buffer;
    const kind = i % 3;
    const text = Buffer.from(Array.from({ length: Math.floor(rand() * 40) }, () => (rand() < 0.7 ? 0x20 + Math.floor(rand() * 95) : Math.floor(rand() * 256))));
    if (kind === 0) input = huffmanEncode(text, 0xff); // valid: all-ones padding
    else if (kind === 1) input = huffmanEncode(text, Math.floor(rand() * 256)); // padding maybe not all ones
    else input = Buffer.from(Array.from({ length: Math.floor(rand() * 30) }, () => (rand() < 0.5 ? 0xff : Math.floor(rand() * 256)))); // random, often EOS
    const want = naiveHuffmanDecode(input);
    let got: string;
    try {
      got = huffmanDecode(input, 0, input.length);
    } catch (err) {
      assert.instance(err, HuffmanError);
      got = 'error';
    }
    assert.is(got, want, `input ${input.toString('hex')}`);
    if (kind === 0) assert.is(got, text.toString('latin1'));
    if (got === 'error') refused++;
    else valid++;
  }
  assert.ok(valid > 700 && refused > 300, `both outcomes reached: ${valid} valid, ${refused} refused`);
});

test.run();
