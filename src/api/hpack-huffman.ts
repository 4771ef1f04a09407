/**
 * The Huffman code of HPACK (RFC 7541 Appendix B), decoding side, for h2-authority-rewrite.ts.
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

/**
 * Canonical decoding tables: for each length L, the first code of that length and the position in
 * SYMBOLS_BY_CODE of its symbol; codes of length L are firstCode[L] .. firstCode[L] + count[L] - 1.
 */
const firstCode = new Int32Array(MAX_CODE_BITS + 2);
const countOfBits = new Int32Array(MAX_CODE_BITS + 2);
const firstIndex = new Int32Array(MAX_CODE_BITS + 2);
const SYMBOLS_BY_CODE = new Uint16Array(CODE_BITS.length);
/** The code of each symbol, right-aligned (for tests and for an encoder). */
const CODES = new Uint32Array(CODE_BITS.length);

{
  for (const bits of CODE_BITS) countOfBits[bits]!++;
  let code = 0;
  let index = 0;
  for (let bits = 1; bits <= MAX_CODE_BITS; bits++) {
    code = (code + countOfBits[bits - 1]!) << 1;
    firstCode[bits] = code;
    firstIndex[bits] = index;
    index += countOfBits[bits]!;
  }
  const next = Int32Array.from(firstIndex);
  const nextCode = Int32Array.from(firstCode);
  for (let symbol = 0; symbol < CODE_BITS.length; symbol++) {
    const bits = CODE_BITS[symbol]!;
    SYMBOLS_BY_CODE[next[bits]!++] = symbol;
    CODES[symbol] = nextCode[bits]!++;
  }
}

/** The code of one symbol, right-aligned, and its length in bits. */
export function huffmanCode(symbol: number): { code: number; bits: number } {
  return { code: CODES[symbol]!, bits: CODE_BITS[symbol]! };
}

export class HuffmanError extends Error {
  override name = 'HuffmanError';
}

/**
 * Decodes a Huffman-coded string into a latin1 string (one char per byte). Throws HuffmanError on
 * EOS in the data, padding longer than 7 bits or not all 1s. Bit by bit: only rewritten
 * connections decode at all, so clarity beats a table-driven decoder here.
 */
export function huffmanDecode(input: Uint8Array, start: number, end: number): string {
  let out = '';
  let code = 0;
  let bits = 0;
  for (let i = start; i < end; i++) {
    const byte = input[i]!;
    for (let b = 7; b >= 0; b--) {
      code = (code << 1) | ((byte >> b) & 1);
      bits++;
      const offset = code - firstCode[bits]!;
      if (offset >= 0 && offset < countOfBits[bits]!) {
        const symbol = SYMBOLS_BY_CODE[firstIndex[bits]! + offset]!;
        if (symbol === HUFFMAN_EOS) throw new HuffmanError('Huffman: EOS inside a string');
        out += String.fromCharCode(symbol);
        code = 0;
        bits = 0;
      } else if (bits >= MAX_CODE_BITS) {
        // Unreachable for a complete code; kept so a table error cannot loop past 30 bits.
        throw new HuffmanError('Huffman: no code matched');
      }
    }
  }
  // Padding: fewer than 8 bits, all ones (the most significant bits of EOS).
  if (bits > 7) throw new HuffmanError(`Huffman: ${bits} bits of padding`);
  if (code !== (1 << bits) - 1) throw new HuffmanError('Huffman: padding is not all ones');
  return out;
}
