/**
 * The Huffman code of HPACK (RFC 7541 Appendix B), decoding side, for hpack.ts.
 *
 * The code is canonical: within one code length, codes are consecutive in symbol order, and each
 * length's first code follows the last code of the previous length shifted left. So the 257 code
 * lengths below determine every code; Appendix B's hex column is their result. Worked example:
 * the ten 5-bit symbols '0' '1' '2' 'a' 'c' 'e' 'i' 'o' 's' 't' get 0b00000..0b01001, the first
 * 6-bit symbol ' ' gets (0b01001 + 1) << 1 = 0b010100 = 0x14, as the RFC lists; the last symbol,
 * EOS (256), gets thirty 1 bits. The unit test checks the derived codes against the RFC's hex
 * column (a sample) and the Kraft sum (exactly 1: the code is complete).
 *
 * Decoding rules (RFC 7541 5.2): padding after the last symbol is at most 7 bits, all 1 (a
 * prefix of EOS); an EOS symbol inside the string is an error.
 */

/** Code length in bits of symbols 0..256 (256 is EOS), RFC 7541 Appendix B. */
const CODE_BITS: readonly number[] = [
  // 0-31: control bytes
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  // 32-63: ' ' ! " # $ % & ' ( ) * + , - . / 0-9 : ; < = > ?
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  // 64-95: @ A-Z [ \ ] ^ _
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  // 96-127: ` a-z { | } ~ DEL
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  // 128-255
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  // 256: EOS
  30,
];

export const HUFFMAN_EOS = 256;
const MAX_CODE_BITS = 30;

/** Codes per length, and the first code of each length (canonical: consecutive within a length). */
const firstCode = new Int32Array(MAX_CODE_BITS + 2);
const countOfBits = new Int32Array(MAX_CODE_BITS + 2);
/** The code of each symbol, right-aligned (the decoding tree below, tests, an encoder). */
const CODES = new Uint32Array(CODE_BITS.length);

{
  for (const bits of CODE_BITS) countOfBits[bits]!++;
  let code = 0;
  for (let bits = 1; bits <= MAX_CODE_BITS; bits++) {
    code = (code + countOfBits[bits - 1]!) << 1;
    firstCode[bits] = code;
  }
  const nextCode = Int32Array.from(firstCode);
  for (let symbol = 0; symbol < CODE_BITS.length; symbol++) CODES[symbol] = nextCode[CODE_BITS[symbol]!]!++;
}

/** The code of one symbol, right-aligned, and its length in bits. */
export function huffmanCode(symbol: number): { code: number; bits: number } {
  return { code: CODES[symbol]!, bits: CODE_BITS[symbol]! };
}

export class HuffmanError extends Error {
  override name = 'HuffmanError';
}

/**
 * The decoding automaton, 4 bits at a time (as nghttp2's): a state is an internal node of the
 * code tree (256 of them; 0 is the root), and for each state and nibble one table entry gives the
 * state after those 4 bits, the symbol completed on the way if any (at most one: the shortest code
 * has 5 bits) and whether EOS was reached. Built once at load; decoding is then one lookup per
 * nibble instead of a canonical-code search per bit (a 250 KB header once cost 0.2 s of CPU).
 *
 * Entry layout (Uint32): bits 0-7 next state, 8-16 symbol, bit 17 "a symbol was emitted", bit 18
 * "EOS reached" (an error). PAD_OK[state]: the bits since the last symbol may end the string (the
 * state lies on the all-ones path, at most 7 bits deep: a prefix of EOS, RFC 7541 5.2).
 */
const EMIT = 1 << 17;
const FAIL = 1 << 18;
const NIBBLE_TABLE = new Uint32Array(256 * 16);
const PAD_OK = new Uint8Array(256);

{
  // The tree: children of internal node n at 2n (bit 0) and 2n+1 (bit 1); >= 0 an internal node,
  // < 0 a leaf holding symbol -(value + 1).
  const children = new Int32Array(256 * 2).fill(0);
  let nodes = 1;
  for (let symbol = 0; symbol < CODE_BITS.length; symbol++) {
    const bits = CODE_BITS[symbol]!;
    const code = CODES[symbol]!;
    let node = 0;
    for (let b = bits - 1; b >= 0; b--) {
      const bit = (code >>> b) & 1;
      const slot = node * 2 + bit;
      if (b === 0) {
        children[slot] = -(symbol + 1);
        break;
      }
      if (children[slot] === 0) children[slot] = nodes++;
      node = children[slot]!;
    }
  }
  if (nodes !== 256) throw new Error(`Huffman tree has ${nodes} internal nodes, want 256`);
  // All-ones path: depths 0..7 may end a string.
  for (let node = 0, depth = 0; depth <= 7; depth++) {
    PAD_OK[node] = 1;
    node = children[node * 2 + 1]!;
  }
  for (let state = 0; state < 256; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let b = 3; b >= 0; b--) {
        const next = children[node * 2 + ((nibble >>> b) & 1)]!;
        if (next < 0) {
          const symbol = -next - 1;
          if (symbol === HUFFMAN_EOS) {
            entry |= FAIL;
            break;
          }
          entry |= EMIT | (symbol << 8);
          node = 0;
        } else {
          node = next;
        }
      }
      NIBBLE_TABLE[state * 16 + nibble] = entry | node;
    }
  }
}

/**
 * Decodes a Huffman-coded string into a latin1 string (one char per byte). Throws HuffmanError on
 * EOS in the data, padding longer than 7 bits or not all 1s.
 */
export function huffmanDecode(input: Uint8Array, start: number, end: number): string {
  // The shortest code has 5 bits: at most 8/5 symbols per byte.
  const out = Buffer.allocUnsafe(Math.ceil(((end - start) * 8) / 5));
  let n = 0;
  let state = 0;
  for (let i = start; i < end; i++) {
    const byte = input[i]!;
    let entry = NIBBLE_TABLE[state * 16 + (byte >>> 4)]!;
    if (entry & FAIL) throw new HuffmanError('Huffman: EOS inside a string');
    if (entry & EMIT) out[n++] = (entry >>> 8) & 0xff;
    state = entry & 0xff;
    entry = NIBBLE_TABLE[state * 16 + (byte & 0xf)]!;
    if (entry & FAIL) throw new HuffmanError('Huffman: EOS inside a string');
    if (entry & EMIT) out[n++] = (entry >>> 8) & 0xff;
    state = entry & 0xff;
  }
  if (PAD_OK[state] === 0) throw new HuffmanError('Huffman: padding longer than 7 bits or not all ones');
  return out.toString('latin1', 0, n);
}
