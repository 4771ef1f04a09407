/**
 * Go's encoding/json scanner, so the JSON gateway reads bodies as etcd 3.4's grpc-gateway does:
 * Go's exact error texts for malformed bodies, Go's nesting limit, and (goJsonParse) values whose
 * numbers keep their text, for the bodies JSON.parse cannot read exactly (a number beyond 2^53 or
 * written with a fraction or exponent: Go refuses 1e3 for an int64 and reads
 * 9223372036854775807 exactly, JSON.parse makes both doubles). None of it is on the hot path:
 * it runs when a body is not plain (isPlainJson) or JSON.parse refused it, and for the inner
 * text of a quoted integer, which Go re-parses as JSON.
 *
 * Iterative, with an explicit stack: a body of a million '[' must cost a million steps, not the
 * call stack (recursion made such bodies a RangeError, answered 500 with a stack trace logged).
 *
 * Worked examples (etcd 3.4.23 gateway, checked with curl):
 *   `{"key": "YQ=="`          -> "unexpected EOF"                 (json.Decoder on the body)
 *   inner text `ten` of "ten" -> "invalid character 'e' in literal true (expecting 'r')"
 *   `{"key" 1}`               -> "invalid character '1' after object key"
 */

import { Limits } from '../platform/limits.js';

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

/**
 * Go's encoding/json maxNestingDepth: an array or object opened deeper than this is a syntax
 * error ("invalid character '[' exceeded max depth", as etcd 3.4.23's gateway answers, checked
 * with curl against 10,001 and 9,999 levels).
 */
const goJsonDepthMax = Limits.gatewayJsonDepthMax;

/** A JSON number as written: its text, so an int64 is read exactly and 1e3 can be refused as Go does. */
export class JsonNumber {
  constructor(readonly text: string) {}
}

/** What Go's scanner makes of a text: its error, or where the first value ends (`empty` if none). */
export interface GoJsonScan {
  error?: string;
  /** Byte offset just past the first value. */
  end: number;
  /** Only whitespace: json.Decoder reports io.EOF, which grpc-gateway treats as an empty request. */
  empty: boolean;
  /** The first value, when asked for: objects without a prototype, numbers as JsonNumber. */
  value?: unknown;
}

/** Go's error text for `bytes`, or undefined when Go accepts it (see goJsonScan). */
export function goJsonSyntaxError(bytes: Uint8Array, mode: GoJsonMode): string | undefined {
  return goJsonScan(bytes, mode).error;
}

/**
 * Whether JSON.parse reads `bytes` exactly as Go would, judged in one pass without allocating:
 * nothing nested deeper than Go allows, and every number an integer of at most 15 digits (a
 * double holds those exactly, and Go's int fields take no fraction or exponent). A body that is
 * not plain, or that JSON.parse refuses, goes to goJsonScan. Malformed bodies may pass: JSON.parse
 * judges them next.
 */
export function isPlainJson(bytes: Uint8Array): boolean {
  let depth = 0;
  const n = bytes.length;
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!;
    if (c === 0x22) {
      // A string: to the first quote after an even run of backslashes. indexOf, not a byte loop:
      // this runs on every gateway request and values are long (a 256 B value: 580 -> 114 ns).
      for (;;) {
        const quote = bytes.indexOf(0x22, i + 1);
        if (quote === -1) return true; // unterminated: JSON.parse refuses it next
        let k = quote - 1;
        while (bytes[k] === 0x5c) k--;
        i = quote;
        if (((quote - 1 - k) & 1) === 0) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > goJsonDepthMax) return false;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    } else if ((c >= 0x30 && c <= 0x39) || c === 0x2d) {
      let digits = 0;
      for (; i < n; i++) {
        const d = bytes[i]!;
        if (d >= 0x30 && d <= 0x39) digits++;
        else if (d === 0x2e || d === 0x65 || d === 0x45) return false;
        else if (d !== 0x2d) break;
      }
      i--;
      if (digits > 15) return false;
    }
  }
  return true;
}

/** The first JSON value of a body as Go reads it, numbers as JsonNumber (see goJsonScan). */
export function goJsonParse(bytes: Uint8Array, mode: GoJsonMode): GoJsonScan {
  return goJsonScan(bytes, mode, true);
}

class Eof {}
const EOF = new Eof();

/** An object or array being read: its value so far and, for an object, the key awaiting its value. */
interface Open {
  object: boolean;
  value: any;
  key: string;
}

/**
 * Scans `bytes` as Go's scanner does. In 'decoder' mode only the first value is read (trailing
 * bytes are ignored, as json.Decoder.Decode does); in 'unmarshal' mode trailing non-space is an
 * error. With `build`, the value is built as well.
 */
export function goJsonScan(bytes: Uint8Array, mode: GoJsonMode, build = false): GoJsonScan {
  const eof = mode === 'decoder' ? 'unexpected EOF' : 'unexpected end of JSON input';
  let i = 0;
  const n = bytes.length;
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
  /** A string whose opening quote is consumed; its decoded value when building. */
  const string = (): string => {
    const start = i - 1;
    for (;;) {
      const c = peek();
      i++;
      if (c === 0x22) break;
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
    // Escapes are valid JSON by now; invalid UTF-8 becomes U+FFFD, as Go decodes it.
    return build ? JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + start, i - start).toString('utf8')) as string : '';
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
  /** The key of an object member, from its opening quote through the colon. */
  const objectKey = (): string => {
    skipSpace();
    const k = peek();
    if (k !== 0x22) throw invalid(k, 'looking for beginning of object key string');
    i++;
    const key = string();
    skipSpace();
    const colon = peek();
    if (colon !== 0x3a) throw invalid(colon, 'after object key');
    i++;
    return key;
  };
  const open: Open[] = [];
  skipSpace();
  if (i === n && mode === 'decoder') return { end: n, empty: true };
  try {
    let result: unknown;
    // Each turn reads one value; a complete value is then attached to the containers it closes.
    next: for (;;) {
      skipSpace();
      const c = peek();
      const at = i++;
      let value: unknown;
      switch (c) {
        case 0x7b: // {
        case 0x5b: { // [
          // Go counts the level before looking inside, so an empty {} or [] counts too.
          if (open.length + 1 > goJsonDepthMax) throw invalid(c, 'exceeded max depth');
          const object = c === 0x7b;
          const container: any = build ? (object ? Object.create(null) : []) : undefined;
          skipSpace();
          if (peek() === (object ? 0x7d : 0x5d)) {
            i++;
            value = container;
            break;
          }
          open.push({ object, value: container, key: object ? objectKey() : '' });
          continue next;
        }
        case 0x22: value = string(); break;
        case 0x74: literal('true'); value = true; break;
        case 0x66: literal('false'); value = false; break;
        case 0x6e: literal('null'); value = null; break;
        default:
          if (c !== 0x2d && !isDigit(c)) throw invalid(c, 'looking for beginning of value');
          number(c);
          if (build) value = new JsonNumber(Buffer.from(bytes.buffer, bytes.byteOffset + at, i - at).toString('latin1'));
      }
      // `value` is complete: attach it, and close every container it completes.
      for (;;) {
        const top = open[open.length - 1];
        if (top === undefined) {
          result = value;
          break next;
        }
        if (build) {
          if (top.object) top.value[top.key] = value;
          else top.value.push(value);
        }
        skipSpace();
        const sep = peek();
        i++;
        if (sep === (top.object ? 0x7d : 0x5d)) {
          open.pop();
          value = top.value;
          continue;
        }
        if (sep !== 0x2c) throw invalid(sep, top.object ? 'after object key:value pair' : 'after array element');
        if (top.object) top.key = objectKey();
        continue next;
      }
    }
    const end = i;
    if (mode === 'unmarshal') {
      skipSpace();
      if (i < n) throw invalid(bytes[i]!, 'after top-level value');
    }
    return build ? { end, empty: false, value: result } : { end, empty: false };
  } catch (err) {
    if (err === EOF) return { error: eof, end: i, empty: false };
    if (err instanceof SyntaxFailure) return { error: err.message, end: i, empty: false };
    throw err;
  }
}
