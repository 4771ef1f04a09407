/**
 * Splits a request body that arrives over time into the JSON values it holds, one after another,
 * as Go's json.Decoder reads them (grpc-gateway decodes a streaming request body so): values may be
 * separated by white space or nothing at all ({"a":1}{"a":2}), and a value may span any number of
 * chunks. Only the value boundaries are found here; each value is then parsed (and checked) by
 * gateway-json.ts as a whole body is.
 *
 * Worked example: chunks `{"create_request":{"key":"YQ=="}}\n{"can` and `cel_request":{}}` give
 * the first object at the end of chunk one and the second at the end of chunk two. Strings are
 * scanned with their escapes, so a brace inside "a}b" or an escaped quote "\"}" does not end a value.
 *
 * Only the boundaries are looked for, not syntax: a malformed value is refused when it completes
 * or the body ends (Go's decoder would refuse it at its first bad byte); the bound below caps
 * what that can cost.
 *
 * Bounded: a value still incomplete past `valueBytesMax` is an error (the body is refused), so a
 * client cannot make us hold an unbounded value. The scan is linear in the bytes received: the
 * state survives across chunks and no byte is scanned twice.
 */

import { GatewayDecodeError } from './gateway-json.js';

const enum Scan {
  /** Between values: skipping white space. */
  Between,
  /** Inside an object or array, outside strings. */
  Nested,
  /** Inside a string (of a nested value, or a top-level string). */
  InString,
  /** Inside a top-level literal or number (true, null, 12): ends at white space or a delimiter. */
  Bare,
}

/** A value past the bound: refused as malformed input (gateway-json.ts's error, INVALID_ARGUMENT). */
export class JsonSequenceError extends GatewayDecodeError {}

export class JsonSequenceReader {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  /** Where the value being scanned starts in the first chunk. */
  private valueStart = 0;
  private state = Scan.Between;
  private depth = 0;
  private escaped = false;
  /** The string being scanned is a whole top-level value (not inside an object or array). */
  private topLevelString = false;

  constructor(private readonly valueBytesMax: number) {}

  /** Takes one chunk; returns the complete values it finished, in order. Throws JsonSequenceError past the bound. */
  push(chunk: Buffer): Buffer[] {
    const values: Buffer[] = [];
    // Scan positions are relative to the concatenation of `chunks` (the current partial value) and `chunk`.
    let offset = this.bufferedBytes;
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      switch (this.state) {
        case Scan.Between:
          if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
          this.valueStart = offset + i;
          if (c === 0x7b || c === 0x5b) {
            this.state = Scan.Nested;
            this.depth = 1;
          } else if (c === 0x22) {
            this.state = Scan.InString;
            this.topLevelString = true;
          } else {
            this.state = Scan.Bare;
          }
          continue;
        case Scan.Nested:
          if (c === 0x22) {
            this.state = Scan.InString;
            this.topLevelString = false;
          } else if (c === 0x7b || c === 0x5b) {
            this.depth++;
          } else if (c === 0x7d || c === 0x5d) {
            if (--this.depth === 0) {
              values.push(this.take(offset + i + 1));
              offset = -(i + 1);
            }
          }
          continue;
        case Scan.InString:
          if (this.escaped) this.escaped = false;
          else if (c === 0x5c) this.escaped = true;
          else if (c === 0x22) {
            if (this.topLevelString) {
              values.push(this.take(offset + i + 1));
              offset = -(i + 1);
            } else {
              this.state = Scan.Nested;
            }
          }
          continue;
        case Scan.Bare:
          if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x7b || c === 0x5b || c === 0x22) {
            values.push(this.take(offset + i));
            offset = -i;
            // The delimiter starts the next value (or is white space): scan it again as such.
            i--;
          }
          continue;
      }
    }
    if (this.state === Scan.Between) {
      this.chunks = [];
      this.bufferedBytes = 0;
    } else if (this.bufferedBytes - this.valueStart > this.valueBytesMax) {
      throw new JsonSequenceError(`request body value larger than ${this.valueBytesMax} bytes`);
    }
    return values;
  }

  /**
   * The body ended: what is left of a value (a top-level literal or number, or one left open) is
   * the last value. An open one does not parse, and its parser gives Go's own error for it
   * ("unexpected EOF", or the syntax error the scan did not look for).
   */
  end(): Buffer[] {
    if (this.state === Scan.Between) return [];
    return [this.take(this.bufferedBytes)];
  }

  /** Cuts the value [valueStart, end) out of the buffered bytes; what follows stays buffered. */
  private take(end: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bufferedBytes);
    const value = all.subarray(this.valueStart, end);
    const rest = all.subarray(end);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.bufferedBytes = rest.length;
    this.valueStart = 0;
    this.state = Scan.Between;
    this.depth = 0;
    this.escaped = false;
    return value;
  }
}
