import type { KeyValue } from '../proto/etcd-types.js';
import { encodeEvent } from './watch-response-encoder.js';

/**
 * Encoded events shared between watchers that catch up over the same history (watch-hub.ts
 * caughtUp). Many watchers on one prefix that fell behind together (a stream over its high-water
 * mark, or a crowd created with one old start revision) each read the same revisions; the store
 * hands out the same KeyValue objects to every read, so an event is encoded once while it is in
 * this cache instead of once per watcher. Keyed by the KeyValue object (nothing is shared when a
 * history read builds fresh objects: only a miss), with and without prev_kv apart.
 *
 * Bounded (Limits.watchEncodedEventCache*): the oldest entries go first, so memory does not grow
 * with history; a cache cleared or too small only costs encoding again.
 */
export class EncodedEventCache {
  private readonly plain = new Map<KeyValue, Uint8Array>();
  private readonly withPrev = new Map<KeyValue, Uint8Array>();
  private bytes = 0;

  constructor(
    private readonly entriesMax: number,
    private readonly bytesMax: number,
  ) {}

  get size(): number {
    return this.plain.size + this.withPrev.size;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  /** The event of `kv` (with `prev` as its prev_kv when given), encoded, from the cache or now. */
  encode(kv: KeyValue, prev: KeyValue | undefined): Uint8Array {
    const map = prev === undefined ? this.plain : this.withPrev;
    const cached = map.get(kv);
    if (cached !== undefined) return cached;
    const encoded = encodeEvent(kv, prev);
    map.set(kv, encoded);
    this.bytes += encoded.length;
    this.evict();
    return encoded;
  }

  private evict(): void {
    while (this.size > this.entriesMax || this.bytes > this.bytesMax) {
      // The oldest entry of the fuller map.
      const map = this.plain.size >= this.withPrev.size ? this.plain : this.withPrev;
      const oldest = map.entries().next().value!;
      map.delete(oldest[0]);
      this.bytes -= oldest[1].length;
    }
  }
}
