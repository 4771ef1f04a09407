/**
 * Sizes of protobuf varints, the one home for them (the API's request sizing, the peer frames and
 * the raftpb codec all count them). A varint carries 7 bits per byte; a negative int64 takes 10.
 */
export function varintSize(n: number): number {
  if (n < 0) return 10;
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** The same for a 64-bit value held as a bigint (two's complement for negatives, as protobuf writes them). */
export function bigVarintSize(n: bigint): number {
  let v = BigInt.asUintN(64, n);
  let size = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    size++;
  }
  return size;
}

/** Writes `n` (a non-negative safe integer) as a varint at `at` of `out`; returns the end offset. */
export function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

/** The varint bytes of a 64-bit value held as a bigint (two's complement for negatives). */
export function bigVarintBytes(n: bigint): Uint8Array {
  const out = new Uint8Array(bigVarintSize(n));
  let v = BigInt.asUintN(64, n);
  let at = 0;
  while (v >= 0x80n) {
    out[at++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  out[at] = Number(v);
  return out;
}
