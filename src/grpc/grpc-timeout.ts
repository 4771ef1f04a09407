/**
 * The `grpc-timeout` request header (PROTOCOL-HTTP2.md: TimeoutValue TimeoutUnit, at most 8 ASCII
 * digits then one of H M S m u n), parsed as grpc-go's decodeTimeout does, with its error texts:
 * grpc-go answers a malformed value with INTERNAL "malformed grpc-timeout: <error>" before running
 * the call, so we do the same.
 *
 *   "100m" -> 100 ms; "5S" -> 5000 ms; "1n" -> 0.000001 ms; "" -> too short; "123456789S" -> too
 *   long; "10x" -> unit not recognized; "-5S" / "1.5S" -> strconv.ParseInt's invalid syntax.
 */
import { goQuote } from './go-quote.js';

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
/** grpc-go: "Spec allows for 8 digits plus the unit." */
const TIMEOUT_CHARS_MAX = 9;

/** The timeout in milliseconds, or the message grpc-go would send after "malformed grpc-timeout: ". */
export function parseGrpcTimeout(value: string): { ms: number } | { error: string } {
  const size = value.length;
  if (size < 2) return { error: `transport: timeout string is too short: ${goQuote(value)}` };
  if (size > TIMEOUT_CHARS_MAX) return { error: `transport: timeout string is too long: ${goQuote(value)}` };
  const unit = UNIT_MS[value[size - 1]!];
  if (unit === undefined) return { error: `transport: timeout unit is not recognized: ${goQuote(value)}` };
  const digits = value.slice(0, size - 1);
  // strconv.ParseInt accepts a sign; a negative timeout is already past (grpc-go cancels at once).
  if (!/^[+-]?[0-9]+$/.test(digits)) return { error: `strconv.ParseInt: parsing ${goQuote(digits)}: invalid syntax` };
  return { ms: Math.max(0, Number(digits) * unit) };
}
