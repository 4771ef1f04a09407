/**
 * The handful of Go text conventions etcdctl's output and input depend on, reimplemented so
 * keyraftctl prints and parses byte for byte as etcdctl 3.4 does:
 *
 * - `%q` quoting (strconv.Quote) for error messages and the txn grammar's quoted strings
 *   (strconv.Unquote, as fmt.Sscanf("%q") reads them).
 * - strconv.ParseInt's accepted syntax and its error texts
 *   (`strconv.ParseInt: parsing "abc": invalid syntax`).
 * - time.Duration's String() ("1.392672ms", "5.000289982s", "850µs") and time.ParseDuration.
 * - go-humanize's Bytes() ("20 kB"), including Go's round-half-to-even in `%.0f`.
 */

import { GoDurationError, parseGoDurationMs } from '../platform/go-duration.js';

/**
 * strconv.Quote: a double-quoted Go string literal. Worked example: `a"b\n` -> `"a\"b\n"`.
 * Bytes that are not valid UTF-8 print as \xNN, as Go prints a []byte converted to string.
 */
export function goQuote(value: string | Uint8Array): string {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  let out = '"';
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    const length = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 0;
    const slice = bytes.subarray(i, i + Math.max(length, 1));
    const text = length > 0 ? slice.toString('utf8') : '';
    // Valid only when the sequence decodes to one code point that encodes back to the same bytes.
    if (length === 0 || slice.length < length || [...text].length !== 1 || !Buffer.from(text, 'utf8').equals(slice)) {
      out += `\\x${lead.toString(16).padStart(2, '0')}`;
      i += 1;
      continue;
    }
    out += quoteRune(text);
    i += length;
  }
  return out + '"';
}

function quoteRune(ch: string): string {
  switch (ch) {
    case '"': return '\\"';
    case '\\': return '\\\\';
    case '\x07': return '\\a';
    case '\b': return '\\b';
    case '\f': return '\\f';
    case '\n': return '\\n';
    case '\r': return '\\r';
    case '\t': return '\\t';
    case '\v': return '\\v';
  }
  const code = ch.codePointAt(0)!;
  if (code < 0x20 || code === 0x7f) return `\\x${code.toString(16).padStart(2, '0')}`;
  if (code >= 0x80 && code < 0xa0) return `\\u${code.toString(16).padStart(4, '0')}`;
  return ch;
}

/** Why an unquote failed; fmt.Sscanf reports a bad %q operand as this. */
export class GoSyntaxError extends Error {
  override name = 'GoSyntaxError';
}

/**
 * Reads one Go quoted string (`"..."` with escapes, or a `` `raw` `` string) starting at
 * `text[start]`, as fmt's %q verb does. Returns the bytes and the index just past the closing
 * quote, or undefined when `text[start]` does not begin a well-formed quoted string.
 */
export function scanGoQuoted(text: string, start: number): { value: Buffer; end: number } | undefined {
  const open = text[start];
  if (open === '`') {
    const close = text.indexOf('`', start + 1);
    if (close < 0) return undefined;
    return { value: Buffer.from(text.slice(start + 1, close), 'utf8'), end: close + 1 };
  }
  if (open !== '"') return undefined;
  const bytes: number[] = [];
  let i = start + 1;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"') return { value: Buffer.from(bytes), end: i + 1 };
    if (ch === '\n') return undefined;
    if (ch !== '\\') {
      const cp = text.codePointAt(i)!;
      const s = String.fromCodePoint(cp);
      for (const b of Buffer.from(s, 'utf8')) bytes.push(b);
      i += s.length;
      continue;
    }
    const esc = text[i + 1];
    i += 2;
    switch (esc) {
      case 'a': bytes.push(7); break;
      case 'b': bytes.push(8); break;
      case 'f': bytes.push(12); break;
      case 'n': bytes.push(10); break;
      case 'r': bytes.push(13); break;
      case 't': bytes.push(9); break;
      case 'v': bytes.push(11); break;
      case '\\': bytes.push(92); break;
      case '"': bytes.push(34); break;
      case 'x': {
        const hex = text.slice(i, i + 2);
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
        bytes.push(parseInt(hex, 16));
        i += 2;
        break;
      }
      case 'u':
      case 'U': {
        const n = esc === 'u' ? 4 : 8;
        const hex = text.slice(i, i + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) return undefined;
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) return undefined;
        for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) bytes.push(b);
        i += n;
        break;
      }
      default: {
        if (esc !== undefined && esc >= '0' && esc <= '7') {
          const oct = text.slice(i - 1, i + 2);
          if (!/^[0-7]{3}$/.test(oct) || parseInt(oct, 8) > 255) return undefined;
          bytes.push(parseInt(oct, 8));
          i += 2;
          break;
        }
        return undefined;
      }
    }
  }
  return undefined;
}

/**
 * strconv.ParseInt(text, base, 64) for base 10 or 16: optional sign, digits only (no prefix,
 * no underscores). Throws GoSyntaxError with Go's exact message on failure.
 */
export function goParseInt(text: string, base: 10 | 16): bigint {
  const digits = base === 10 ? /^[+-]?[0-9]+$/ : /^[+-]?[0-9a-fA-F]+$/;
  if (!digits.test(text)) throw new GoSyntaxError(`strconv.ParseInt: parsing ${goQuote(text)}: invalid syntax`);
  const negative = text.startsWith('-');
  const body = text.replace(/^[+-]/, '');
  const magnitude = BigInt(base === 16 ? `0x${body}` : body);
  const value = negative ? -magnitude : magnitude;
  if (value > 0x7fffffffffffffffn || value < -0x8000000000000000n) {
    throw new GoSyntaxError(`strconv.ParseInt: parsing ${goQuote(text)}: value out of range`);
  }
  return value;
}

/** time.Duration.String() for a duration in nanoseconds. */
export function goDuration(nanos: bigint): string {
  if (nanos === 0n) return '0s';
  const negative = nanos < 0n;
  let n = negative ? -nanos : nanos;
  const sign = negative ? '-' : '';
  if (n < 1000n) return `${sign}${n}ns`;
  if (n < 1_000_000n) return `${sign}${fraction(n, 3)}µs`;
  if (n < 1_000_000_000n) return `${sign}${fraction(n, 6)}ms`;
  const hours = n / 3_600_000_000_000n;
  n -= hours * 3_600_000_000_000n;
  const minutes = n / 60_000_000_000n;
  n -= minutes * 60_000_000_000n;
  const seconds = `${fraction(n, 9)}s`;
  if (hours > 0n) return `${sign}${hours}h${minutes}m${seconds}`;
  if (minutes > 0n) return `${sign}${minutes}m${seconds}`;
  return `${sign}${seconds}`;
}

/** `n / 10^digits` printed with trailing zeros (and a bare point) trimmed, as Go's fmtFrac does. */
function fraction(n: bigint, digits: number): string {
  const scale = 10n ** BigInt(digits);
  const whole = n / scale;
  const frac = (n % scale).toString().padStart(digits, '0').replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : `${whole}`;
}

/**
 * time.ParseDuration, returning milliseconds (platform/go-duration.ts parses); its failures as
 * GoSyntaxError with Go's text, quoted as strconv.Quote does.
 */
export function goParseDurationMs(text: string): number {
  try {
    return parseGoDurationMs(text);
  } catch (err) {
    if (!(err instanceof GoDurationError)) throw err;
    throw new GoSyntaxError(err.kind === 'invalid' ? `time: invalid duration ${goQuote(text)}` : `time: missing unit in duration ${goQuote(text)}`);
  }
}

const HUMANIZE_SIZES = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];

/**
 * go-humanize Bytes(): SI units (base 1000), one decimal below 10. Worked example: 20480 ->
 * 20.48 -> rounded to tenths 20.5 -> "%.0f" -> "20" (Go rounds an exact half to even), "20 kB".
 */
export function humanizeBytes(size: number): string {
  if (size < 10) return `${size} B`;
  const exponent = Math.floor(Math.log(size) / Math.log(1000));
  const suffix = HUMANIZE_SIZES[exponent] ?? '?';
  const tenths = Math.floor((size / 1000 ** exponent) * 10 + 0.5);
  const value = tenths / 10;
  if (value < 10) return `${value.toFixed(1)} ${suffix}`;
  const whole = Math.floor(tenths / 10);
  const rem = tenths % 10;
  const rounded = rem > 5 || (rem === 5 && whole % 2 === 1) ? whole + 1 : whole;
  return `${rounded} ${suffix}`;
}
