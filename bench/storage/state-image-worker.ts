/**
 * The piscina side of the state image bench (state-image-bench.ts): encodes batches of records as
 * state-image.ts does and keeps the running SHA-256. One thread, so the hash state is module-level
 * and tasks run in order; the encoded chunk goes back transferred, not copied.
 */
import { createHash, type Hash } from 'node:crypto';
import Piscina from 'piscina';

let hash: Hash = createHash('sha256');

export default function task(input: { keys?: Uint8Array[]; values?: Uint8Array[]; finish?: boolean }): unknown {
  if (input.finish) {
    const digest = hash.digest();
    hash = createHash('sha256');
    return digest;
  }
  const keys = input.keys!;
  const values = input.values!;
  let size = 0;
  for (let i = 0; i < keys.length; i++) size += 9 + keys[i]!.length - 1 + values[i]!.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const v = values[i]!;
    out[at] = k[0]!;
    out.writeUInt32BE(k.length - 1, at + 1);
    at += 5;
    out.set(k.subarray(1), at);
    at += k.length - 1;
    out.writeUInt32BE(v.length, at);
    at += 4;
    out.set(v, at);
    at += v.length;
  }
  hash.update(out);
  const ab = out.buffer.slice(out.byteOffset, out.byteOffset + out.length);
  return Piscina.move(ab);
}
