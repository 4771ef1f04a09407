/**
 * Error texts of Go's encoding/json scanner, so the JSON gateway reports malformed bodies with the
 * exact words etcd 3.4's grpc-gateway uses. This runs only after JSON.parse has already refused
 * the text (or for the inner text of a quoted 64-bit integer, which Go re-parses as JSON): it is
 * never on the hot path.
 *
 * Worked examples (etcd 3.4.23 gateway, checked with curl):
 *   `{"key": "YQ=="`          -> "unexpected EOF"                 (json.Decoder on the body)
 *   inner text `ten` of "ten" -> "invalid character 'e' in literal true (expecting 'r')"
 *   `{"key" 1}`               -> "invalid character '1' after object key"
 */

/** How the text is read: a json.Decoder stream (the body) or json.Unmarshal (a field's inner text). */
export type GoJsonMode = 'decoder' | 'unmarshal';

/** Go's quoteChar: the offending byte as Go prints it. */
function quoteChar(c: number): string {
  if (c === 0x27) return "'\\''";
  if (c === 0x22) return "'\"'";
  const s = JSON.stringify(String.fromCharCode(c));
  // strconv.Quote differs from JSON.stringify for control bytes: Go writes \x01, \a, \b, \f, \v.
  const inner = s.slice(1, -1);
  if (c < 0x20 || c === 0x7f) {
    const named: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r' };
    return `'${named[c] ?? '\\x' + c.toString(16).padStart(2, '0')}'`;
  }
  return `'${inner}'`;
}

class SyntaxFailure {
  constructor(readonly message: string) {}
}

function invalid(c: number, context: string): SyntaxFailure {
  return new SyntaxFailure(`invalid character ${quoteChar(c)} ${context}`);
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** What Go's scanner makes of a text: its error, or where the first value ends (`empty` if none). */
export interface GoJsonScan {
  error?: string;
  /** Byte offset just past the first value. */
  end: number;
  /** Only whitespace: json.Decoder reports io.EOF, which grpc-gateway treats as an empty request. */
  empty: boolean;
}

/** Go's error text for `bytes`, or undefined when Go accepts it (see goJsonScan). */
export function goJsonSyntaxError(bytes: Uint8Array, mode: GoJsonMode): string | undefined {
  return goJsonScan(bytes, mode).error;
}

/**
 * Scans `bytes` as Go's scanner does. In 'decoder' mode only the first value is read (trailing
 * bytes are ignored, as json.Decoder.Decode does); in 'unmarshal' mode trailing non-space is an
 * error.
 */
export function goJsonScan(bytes: Uint8Array, mode: GoJsonMode): GoJsonScan {
  const eof = mode === 'decoder' ? 'unexpected EOF' : 'unexpected end of JSON input';
  let i = 0;
  const n = bytes.length;
  class Eof {}
  const EOF = new Eof();
  const peek = (): number => {
    if (i >= n) throw EOF;
    return bytes[i]!;
  };
  const skipSpace = (): void => {
    while (i < n && isSpace(bytes[i]!)) i++;
  };
  const literal = (word: string): void => {
    // The first letter is consumed by the caller.
    for (let k = 1; k < word.length; k++) {
      const c = peek();
      if (c !== word.charCodeAt(k)) throw invalid(c, `in literal ${word} (expecting '${word[k]}')`);
      i++;
    }
  };
  const string = (): void => {
    // Opening quote already consumed.
    for (;;) {
      const c = peek();
      i++;
      if (c === 0x22) return;
      if (c === 0x5c) {
        const e = peek();
        i++;
        if (e === 0x75) {
          for (let k = 0; k < 4; k++) {
            const h = peek();
            const hex = (h >= 0x30 && h <= 0x39) || (h >= 0x61 && h <= 0x66) || (h >= 0x41 && h <= 0x46);
            if (!hex) throw invalid(h, 'in \\u hexadecimal character escape');
            i++;
          }
        } else if (!'bfnrt\\/"'.includes(String.fromCharCode(e))) {
          throw invalid(e, 'in string escape code');
        }
      } else if (c < 0x20) {
        throw invalid(c, 'in string literal');
      }
    }
  };
  const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
  // Numbers end at the first byte that cannot continue them; at EOF a number is complete.
  const number = (first: number): void => {
    let c = first;
    if (c === 0x2d) {
      if (i >= n) throw EOF;
      c = bytes[i]!;
      if (!isDigit(c)) throw invalid(c, 'in numeric literal');
      i++;
    }
    if (c !== 0x30) while (i < n && isDigit(bytes[i]!)) i++;
    if (i < n && bytes[i] === 0x2e) {
      i++;
      const d = peek();
      if (!isDigit(d)) throw invalid(d, 'after decimal point in numeric literal');
      while (i < n && isDigit(bytes[i]!)) i++;
    }
    if (i < n && (bytes[i] === 0x65 || bytes[i] === 0x45)) {
      i++;
      let d = peek();
      if (d === 0x2b || d === 0x2d) {
        i++;
        d = peek();
      }
      if (!isDigit(d)) throw invalid(d, 'in exponent of numeric literal');
      while (i < n && isDigit(bytes[i]!)) i++;
    }
  };
  const value = (): void => {
    skipSpace();
    const c = peek();
    i++;
    switch (c) {
      case 0x7b: { // {
        skipSpace();
        if (peek() === 0x7d) { i++; return; }
        for (;;) {
          skipSpace();
          const k = peek();
          if (k !== 0x22) throw invalid(k, 'looking for beginning of object key string');
          i++;
          string();
          skipSpace();
          const colon = peek();
          if (colon !== 0x3a) throw invalid(colon, 'after object key');
          i++;
          value();
          skipSpace();
          const sep = peek();
          i++;
          if (sep === 0x7d) return;
          if (sep !== 0x2c) throw invalid(sep, 'after object key:value pair');
        }
      }
      case 0x5b: { // [
        skipSpace();
        if (peek() === 0x5d) { i++; return; }
        for (;;) {
          value();
          skipSpace();
          const sep = peek();
          i++;
          if (sep === 0x5d) return;
          if (sep !== 0x2c) throw invalid(sep, 'after array element');
        }
      }
      case 0x22: string(); return;
      case 0x74: literal('true'); return;
      case 0x66: literal('false'); return;
      case 0x6e: literal('null'); return;
      default:
        if (c === 0x2d || isDigit(c)) { number(c); return; }
        throw invalid(c, 'looking for beginning of value');
    }
  };
  skipSpace();
  if (i === n && mode === 'decoder') return { end: n, empty: true };
  try {
    value();
    const end = i;
    if (mode === 'unmarshal') {
      skipSpace();
      if (i < n) throw invalid(bytes[i]!, 'after top-level value');
    }
    return { end, empty: false };
  } catch (err) {
    if (err === EOF) return { error: eof, end: i, empty: false };
    if (err instanceof SyntaxFailure) return { error: err.message, end: i, empty: false };
    throw err;
  }
}
