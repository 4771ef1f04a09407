/**
 * Go's time.ParseDuration, for etcd's duration flags (--grpc-keepalive-interval=2h) and etcdctl's
 * (--command-timeout=5s): a sequence of decimal numbers, each with a unit (ns, us, µs, ms, s, m, h),
 * optionally signed; "0" alone needs no unit. Returns milliseconds (fractions kept: "1.5us" is
 * 0.0015). Worked example: "1h2m3.5s" -> 3,600,000 + 120,000 + 3,500 = 3,723,500.
 */
import { goQuote } from './go-quote.js';

const UNITS_NS: Record<string, number> = {
  ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9,
};

/** time.ParseDuration's failure, with Go's text ("time: invalid duration \"x\""). */
export class GoDurationError extends Error {
  override name = 'GoDurationError';
  constructor(readonly kind: 'invalid' | 'missing-unit', readonly text: string) {
    super(kind === 'invalid' ? `time: invalid duration ${goQuote(text)}` : `time: missing unit in duration ${goQuote(text)}`);
  }
}

export function parseGoDurationMs(text: string): number {
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest.startsWith('-')) sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw new GoDurationError('invalid', text);
  let totalNs = 0;
  const part = /^([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)/;
  while (rest.length > 0) {
    const m = part.exec(rest);
    if (!m || m[1] === '' || m[1] === '.') {
      if (!m && /^[0-9.]+$/.test(rest)) throw new GoDurationError('missing-unit', text);
      throw new GoDurationError('invalid', text);
    }
    totalNs += Number(m[1]) * UNITS_NS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return (sign * totalNs) / 1e6;
}
