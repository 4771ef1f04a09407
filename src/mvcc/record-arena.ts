/**
 * Where the store's long-lived bytes live: every revision record (and the value view into it) and
 * every key the index keeps. Small ones are carved from 8 KiB chunks of our own; large ones get
 * an allocation each.
 *
 * Why not Buffer.allocUnsafe: it carves from Node's shared 8 KiB pool, which every transient
 * small buffer of the process also uses (request frames, encodings, backend keys). A pool slab
 * stays alive while any slice of it does, so each slab that held a record also kept the garbage
 * that shared it. Chunks holding only store bytes keep only store bytes. Measured on a member
 * loaded with keys of 256 B: external memory 541 -> 354 B per key (gRPC puts), RSS at 1M keys
 * 1225 -> 909 MiB (gateway puts, `npm run bench -- --rss-keys 1000000`).
 *
 * Retention is the pool's, no worse: a chunk is freed once no record or key in it is reachable
 * (compaction drops revisions; a chunk whose every revision was compacted away goes with them).
 */
const CHUNK_BYTES = 8192;
/** From half a chunk up, an allocation gets its own memory, as Node's pool does. */
const DIRECT_BYTES_MIN = CHUNK_BYTES >>> 1;

export class RecordArena {
  private chunk: Buffer = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private used = 0;

  /** `bytes` uninitialized bytes that live as long as the returned Buffer is reachable. */
  alloc(bytes: number): Buffer {
    if (bytes >= DIRECT_BYTES_MIN) return Buffer.allocUnsafeSlow(bytes);
    if (this.used + bytes > CHUNK_BYTES) {
      this.chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
      this.used = 0;
    }
    const out = this.chunk.subarray(this.used, this.used + bytes);
    this.used += (bytes + 7) & ~7; // 8-byte aligned, as Node's pool
    return out;
  }

  /** A copy of `bytes` in the arena. */
  copy(bytes: Buffer): Buffer {
    const out = this.alloc(bytes.length);
    bytes.copy(out);
    return out;
  }
}
