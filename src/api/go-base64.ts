/**
 * Go's base64.StdEncoding.Decode, as encoding/json uses it for proto `bytes` fields in etcd 3.4's
 * gateway: padded standard alphabet only (no URL alphabet), CR and LF skipped anywhere, and the
 * error names the byte offset exactly as Go computes it ("illegal base64 data at input byte 4").
 *
 * Worked examples: "YQ==" -> "a"; "YQ" -> error at byte 0 (an unpadded final quantum is reported
 * at its first byte); "YQ===" -> error at byte 4 (trailing garbage after the padding).
 *
 * The byte-by-byte walk below runs only to name the offset of an error (or for input containing
 * CR/LF); valid input takes the fast path in decodeGoBase64.
 */

export class Base64Error extends Error {
  constructor(readonly offset: number) {
    super(`illegal base64 data at input byte ${offset}`);
  }
}


function isAlphabet(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f;
}

/**
 * Decodes like Go's StdEncoding or throws Base64Error with Go's offset.
 *
 * Fast path: node's decoder skips characters outside the alphabet (and reads the URL alphabet
 * too), so a strict input is recognised by its decoded length: with L characters (L a multiple of
 * 4) and p trailing '=' (0-2) it must give exactly 3L/4 - p bytes. Every skipped character
 * shortens the output, so any stray byte fails this check and takes the slow path, which finds
 * Go's error offset (or accepts CR/LF, which Go skips).
 */
export function decodeGoBase64(text: string): Buffer {
  const length = text.length;
  if (length === 0) return Buffer.alloc(0);
  if (length % 4 === 0 && text.indexOf('-') === -1 && text.indexOf('_') === -1) {
    const padding = text.charCodeAt(length - 1) !== 0x3d ? 0 : text.charCodeAt(length - 2) !== 0x3d ? 1 : 2;
    const decoded = Buffer.from(text, 'base64');
    if (decoded.length === (length / 4) * 3 - padding && (padding < 2 || text.charCodeAt(length - 3) !== 0x3d)) return decoded;
  }
  const offset = goBase64ErrorOffset(text);
  if (offset === undefined) return Buffer.from(text.replace(/[\r\n]/g, ''), 'base64');
  throw new Base64Error(offset);
}

/**
 * Go's decodeQuantum loop (encoding/base64), returning the offset of the first error or undefined.
 * Offsets count UTF-8 bytes of the input, as Go's do; non-ASCII is always illegal, so the offset
 * of the first such character is its byte offset.
 */
function goBase64ErrorOffset(text: string): number | undefined {
  const src = Buffer.from(text, 'utf8');
  let si = 0;
  const n = src.length;
  while (si < n) {
    let j = 0;
    for (; j < 4; j++) {
      if (si === n) {
        if (j === 0) return undefined;
        // Padding is required: a short final quantum is an error at its start.
        return si - j;
      }
      const c = src[si]!;
      si++;
      if (c === 0x0a || c === 0x0d) { j--; continue; }
      if (isAlphabet(c)) continue;
      if (c !== 0x3d) return si - 1;
      // '=' padding: legal only as the 3rd or 4th byte of a quantum.
      switch (j) {
        case 0:
        case 1:
          return si - 1;
        case 2: {
          // "==" is expected; skip newlines before the second '='.
          while (si < n && (src[si] === 0x0a || src[si] === 0x0d)) si++;
          if (si === n) return n;
          if (src[si] !== 0x3d) return si - 1;
          si++;
        }
      }
      // Skip trailing newlines; anything else after padding is garbage.
      while (si < n && (src[si] === 0x0a || src[si] === 0x0d)) si++;
      if (si < n) return si;
      return undefined;
    }
  }
  return undefined;
}
