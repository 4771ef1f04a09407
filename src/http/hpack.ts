/**
 * HPACK (RFC 7541), as much as our HTTP/2 server (http2-connection.ts) needs: a decoder that
 * mirrors a client's encoder (static table, dynamic table with eviction, size updates, Huffman
 * strings), and an encoder that never touches a dynamic table.
 *
 * Why the encoder never indexes: our response header blocks are a handful of short fields, most
 * of them encoded once at start-up; literals "without indexing" keep the client's decoder table
 * empty forever, so there is no encoder table to keep in step with the client's SETTINGS, and no
 * state shared between streams. The cost is a few bytes per block.
 *
 * Header names and values are latin1 strings (one char per byte), so `.length` is the octet count
 * the RFC's table-size arithmetic uses (an entry weighs name + value + 32 octets).
 */
import { huffmanDecode, HuffmanError } from './hpack-huffman.js';

export type HeaderField = [name: string, value: string];

/** RFC 7541 Appendix A; index 1 is STATIC_TABLE[0]. */
export const STATIC_TABLE: readonly HeaderField[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/** First static index of each name, and of each exact name+value pair, for the encoder. */
const STATIC_NAME_INDEX = new Map<string, number>();
const STATIC_PAIR_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
  STATIC_PAIR_INDEX.set(`${name}\0${value}`, i + 1);
});

const ENTRY_OVERHEAD_BYTES = 32;
/** An HPACK integer longer than this many continuation bytes is refused (2^35 > any size here). */
const INTEGER_CONTINUATION_BYTES_MAX = 5;

/** A malformed or over-limit header block: a connection error (COMPRESSION_ERROR in HTTP/2). */
export class HpackError extends Error {
  override name = 'HpackError';
}

export interface HpackDecoderOptions {
  /**
   * SETTINGS_HEADER_TABLE_SIZE the server announced: the most a size update may ask for. nghttp2
   * (node:http2) announces the default, 4096, unless configured otherwise.
   */
  tableBytesMax: number;
  /** Most octets of decoded header list (name + value + 32 each) one block may produce. */
  headerListBytesMax: number;
}

/**
 * Decodes the header blocks of one direction of one connection, in order; the dynamic table
 * carries over between blocks, so blocks must all be passed, none skipped.
 */
export class HpackDecoder {
  /** Newest entry last; dynamic index 1 (HPACK index 62) is the last element. */
  private readonly entries: HeaderField[] = [];
  /** Invariant: tableBytes = sum of (name.length + value.length + 32) over entries <= tableBytesLimit. */
  private tableBytes = 0;
  private tableBytesLimit: number;

  constructor(private readonly options: HpackDecoderOptions) {
    this.tableBytesLimit = options.tableBytesMax;
  }

  /** Entries of the dynamic table, newest first (as HPACK indexes them), for tests. */
  get dynamicTable(): HeaderField[] {
    return this.entries.slice().reverse();
  }

  get dynamicTableBytes(): number {
    return this.tableBytes;
  }

  /** Decodes one complete header block (all fragments joined). Throws HpackError. */
  decode(block: Uint8Array): HeaderField[] {
    const headers: HeaderField[] = [];
    let listBytes = 0;
    let at = 0;
    let fieldSeen = false;
    const end = block.length;
    // Reads an integer with an n-bit prefix at `at` (RFC 7541 5.1).
    const readInteger = (prefixBits: number): number => {
      const mask = (1 << prefixBits) - 1;
      let value = block[at++]! & mask;
      if (value < mask) return value;
      let shift = 0;
      for (let n = 0; ; n++) {
        if (at >= end) throw new HpackError('HPACK: truncated integer');
        if (n >= INTEGER_CONTINUATION_BYTES_MAX) throw new HpackError('HPACK: integer too long');
        const byte = block[at++]!;
        value += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if ((byte & 0x80) === 0) return value;
      }
    };
    // Reads a string literal (RFC 7541 5.2) at `at`.
    const readString = (): string => {
      if (at >= end) throw new HpackError('HPACK: truncated string');
      const huffman = (block[at]! & 0x80) !== 0;
      const length = readInteger(7);
      if (length > end - at) throw new HpackError(`HPACK: string of ${length} bytes overruns the block`);
      const start = at;
      at += length;
      if (!huffman) return Buffer.from(block.buffer, block.byteOffset + start, length).toString('latin1');
      try {
        return huffmanDecode(block, start, at);
      } catch (err) {
        if (err instanceof HuffmanError) throw new HpackError(err.message);
        throw err;
      }
    };
    const emit = (field: HeaderField): void => {
      listBytes += field[0].length + field[1].length + ENTRY_OVERHEAD_BYTES;
      if (listBytes > this.options.headerListBytesMax) {
        throw new HpackError(`HPACK: header list over ${this.options.headerListBytesMax} bytes`);
      }
      headers.push(field);
    };

    while (at < end) {
      const byte = block[at]!;
      if (byte & 0x80) {
        // Indexed header field.
        emit(this.field(readInteger(7)));
        fieldSeen = true;
      } else if (byte & 0x40) {
        // Literal with incremental indexing.
        const index = readInteger(6);
        const name = index === 0 ? readString() : this.field(index)[0];
        const field: HeaderField = [name, readString()];
        this.insert(field);
        emit(field);
        fieldSeen = true;
      } else if (byte & 0x20) {
        // Dynamic table size update: only before the first field of a block (RFC 7541 4.2).
        if (fieldSeen) throw new HpackError('HPACK: table size update after a header field');
        const size = readInteger(5);
        if (size > this.options.tableBytesMax) throw new HpackError(`HPACK: table size update to ${size} over ${this.options.tableBytesMax}`);
        this.tableBytesLimit = size;
        this.evictTo(size);
      } else {
        // Literal without indexing (0000) or never indexed (0001): 4-bit prefix, table untouched.
        const index = readInteger(4);
        const name = index === 0 ? readString() : this.field(index)[0];
        emit([name, readString()]);
        fieldSeen = true;
      }
    }
    return headers;
  }

  private field(index: number): HeaderField {
    if (index === 0) throw new HpackError('HPACK: index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const field = this.entries[this.entries.length - (index - STATIC_TABLE.length)];
    if (field === undefined) throw new HpackError(`HPACK: index ${index} beyond the dynamic table (${this.entries.length} entries)`);
    return field;
  }

  private insert(field: HeaderField): void {
    const size = field[0].length + field[1].length + ENTRY_OVERHEAD_BYTES;
    // An entry larger than the table empties it and is not added (RFC 7541 4.4).
    this.evictTo(Math.max(0, this.tableBytesLimit - size));
    if (size > this.tableBytesLimit) return;
    this.entries.push(field);
    this.tableBytes += size;
  }

  private evictTo(bytes: number): void {
    let drop = 0;
    while (this.tableBytes > bytes) {
      const oldest = this.entries[drop++]!;
      this.tableBytes -= oldest[0].length + oldest[1].length + ENTRY_OVERHEAD_BYTES;
    }
    if (drop > 0) this.entries.splice(0, drop);
  }
}

/**
 * Encodes a header list without touching the receiver's dynamic table: exact static matches as
 * indexed fields, everything else as literals without indexing (static name index when there is
 * one), strings raw (no Huffman).
 */
export function encodeWithoutIndexing(headers: readonly HeaderField[]): Buffer {
  let bytes = 0;
  for (const [name, value] of headers) bytes += name.length + value.length + 12;
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  const writeInteger = (value: number, prefixBits: number, firstByte: number): void => {
    const mask = (1 << prefixBits) - 1;
    if (value < mask) {
      out[at++] = firstByte | value;
      return;
    }
    out[at++] = firstByte | mask;
    value -= mask;
    while (value >= 0x80) {
      out[at++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    out[at++] = value;
  };
  const writeString = (text: string): void => {
    writeInteger(text.length, 7, 0);
    at += out.write(text, at, 'latin1');
  };
  for (const [name, value] of headers) {
    const pair = STATIC_PAIR_INDEX.get(`${name}\0${value}`);
    if (pair !== undefined) {
      writeInteger(pair, 7, 0x80);
      continue;
    }
    const nameIndex = STATIC_NAME_INDEX.get(name);
    if (nameIndex !== undefined) {
      writeInteger(nameIndex, 4, 0x00);
    } else {
      out[at++] = 0x00;
      writeString(name);
    }
    writeString(value);
  }
  return out.subarray(0, at);
}
