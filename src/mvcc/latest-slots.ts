import { assert } from '../platform/assert.js';
import type { KeyValue } from '../proto/etcd-types.js';
import type { RecordArena } from './record-arena.js';

/**
 * The latest KeyValues of keys with a single revision that nobody has read yet, held as numbers
 * in typed arrays until a read or a write first needs them as objects (key-index.ts, the slot
 * form): keys rebuilt at start-up, and keys a put has just created (kv-store.ts putAt).
 *
 * Why: a key held as objects costs about seven heap objects (its KeyIndex, key string, key Buffer,
 * value Buffer, frozen KeyValue, and the revision array with its backing store), about 400 bytes
 * of heap per key, every one of them surviving: at 1M keys the young-generation GC copied each
 * twice and took a third of the main thread's rebuild, and a member loaded with 1M new keys held
 * 480 MiB of old space against 166 MiB for the same store after a restart. Most keys of a large
 * store have one revision (written once, or history compacted away), and most are not read soon
 * after they are written. Such a key costs its key string (the B+tree's) and one slot here: 36
 * bytes in typed arrays, outside the GC's reach; its index entry is the slot's number, no
 * KeyIndex. KeyIndex.fromSlot makes its KeyIndex, KeyValue and key Buffer from the slot on first
 * use, and the slot is released (and reused); reads after that are exactly as before.
 *
 * A slot: mod revision, create revision, version (f64: revisions are safe integers), and where the
 * value lies: a chunk (one of the backend scan's `tails` buffers at start-up, kv-store.ts recover;
 * the store arena's memory a put's value was copied into, afterwards), an offset and a length
 * (u32). Leases are bigints: the few keys with one keep it in a map.
 *
 * Memory: a chunk is referenced from here while any slot in it is unreleased; a KeyValue built
 * from a slot holds its own view of the chunk, so it lives as long as some value does (as before).
 * Released slots and chunk numbers are reused; once every slot is released after start-up, the
 * arrays shrink back to their first size.
 *
 * Invariant: liveSlots === the number of slots added and not released; liveInChunk[c] likewise per chunk.
 * Invariant: a slot below `slots` is either live or in freeSlots (chunkOf NO_CHUNK).
 */
const NO_CHUNK = 0xffff_ffff;
const INITIAL_SLOTS = 1024;

export class LatestSlots {
  private modRevisions: Float64Array = new Float64Array(INITIAL_SLOTS);
  private createRevisions: Float64Array = new Float64Array(INITIAL_SLOTS);
  private versions: Float64Array = new Float64Array(INITIAL_SLOTS);
  private chunkOf: Uint32Array = new Uint32Array(INITIAL_SLOTS);
  private startOf: Uint32Array = new Uint32Array(INITIAL_SLOTS);
  private lengthOf: Uint32Array = new Uint32Array(INITIAL_SLOTS);
  private readonly leases = new Map<number, bigint>();
  private readonly chunks: Buffer[] = [];
  private readonly liveInChunk: number[] = [];
  /** Chunk numbers of the memory registered by chunkForMemory (not the start-up scan's chunks), by that memory. */
  private readonly chunkNumbers = new Map<ArrayBufferLike, number>();
  private readonly freeChunks: number[] = [];
  private readonly freeSlots: number[] = [];
  private slots = 0;
  private liveSlots = 0;
  /** Start-up is done adding slots: the arrays may go once every slot is released. */
  private sealed = false;
  private readonly arena: RecordArena;

  constructor(arena: RecordArena) {
    this.arena = arena;
  }

  /** Unreleased slots. */
  get live(): number {
    return this.liveSlots;
  }

  /** Slots made so far, released ones included (they are reused first). */
  get made(): number {
    return this.slots;
  }

  /** Chunks this table keeps in memory. */
  get chunksHeld(): number {
    return this.chunks.length - this.freeChunks.length;
  }

  /** Registers a buffer values will be views of; returns its chunk number for add(). */
  addChunk(buffer: Buffer): number {
    assert(!this.sealed, 'recovered chunk added after start-up');
    this.chunks.push(buffer);
    this.liveInChunk.push(0);
    return this.chunks.length - 1;
  }

  /** A new slot for a put whose value is chunk[start, start + length) (start-up). */
  add(modRevision: number, createRevision: number, version: number, lease: bigint, chunk: number, start: number, length: number): number {
    assert(!this.sealed, 'recovered slot added after start-up');
    return this.fill(modRevision, createRevision, version, lease, chunk, start, length);
  }

  /**
   * A new slot for a put whose value is `value` (a view of memory the store keeps: the arena's,
   * record-arena.ts), at any time. The slot keeps that memory, not the view.
   */
  addValue(modRevision: number, createRevision: number, version: number, lease: bigint, value: Buffer): number {
    return this.fill(modRevision, createRevision, version, lease, this.chunkForMemory(value.buffer), value.byteOffset, value.length);
  }

  /** The chunk number of `memory`, registered on first use (released with its last slot). */
  private chunkForMemory(memory: ArrayBufferLike): number {
    let chunk = this.chunkNumbers.get(memory);
    if (chunk !== undefined) return chunk;
    const whole = Buffer.from(memory, 0, memory.byteLength);
    chunk = this.freeChunks.pop();
    if (chunk === undefined) {
      chunk = this.chunks.length;
      this.chunks.push(whole);
      this.liveInChunk.push(0);
    } else {
      this.chunks[chunk] = whole;
    }
    this.chunkNumbers.set(memory, chunk);
    return chunk;
  }

  private fill(modRevision: number, createRevision: number, version: number, lease: bigint, chunk: number, start: number, length: number): number {
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      if (this.slots === this.modRevisions.length) this.grow();
      slot = this.slots++;
    }
    this.modRevisions[slot] = modRevision;
    this.createRevisions[slot] = createRevision;
    this.versions[slot] = version;
    this.chunkOf[slot] = chunk;
    this.startOf[slot] = start;
    this.lengthOf[slot] = length;
    if (lease !== 0n) this.leases.set(slot, lease);
    this.liveInChunk[chunk]!++;
    this.liveSlots++;
    return slot;
  }

  modRevision(slot: number): number {
    return this.modRevisions[slot]!;
  }

  /** The key's bytes copied into the store's arena (the KeyIndex's key Buffer). */
  copyKey(key: string): Buffer {
    const out = this.arena.alloc(key.length);
    out.write(key, 0, 'latin1');
    return out;
  }

  /** The slot's KeyValue (frozen, value a view of its chunk); releases the slot. */
  take(slot: number, key: Buffer): KeyValue {
    const chunk = this.chunkOf[slot]!;
    if (chunk === NO_CHUNK) assert(false, `slot ${slot} taken twice`);
    const start = this.startOf[slot]!;
    const lease = this.leases.size === 0 ? 0n : this.leases.get(slot) ?? 0n;
    const kv: KeyValue = Object.freeze({
      key,
      create_revision: this.createRevisions[slot]!,
      mod_revision: this.modRevisions[slot]!,
      version: this.versions[slot]!,
      value: this.chunks[chunk]!.subarray(start, start + this.lengthOf[slot]!),
      lease,
    });
    if (lease !== 0n) this.leases.delete(slot);
    this.release(slot, chunk);
    return kv;
  }

  /**
   * Copies the values of unreleased slots whose chunk `move` names into the arena (start-up
   * empties mostly replaced scan chunks this way, kv-store.ts). Returns the bytes copied.
   */
  relocate(move: (buffer: ArrayBufferLike) => boolean): number {
    let copied = 0;
    for (let slot = 0; slot < this.slots; slot++) {
      const chunk = this.chunkOf[slot]!;
      if (chunk === NO_CHUNK || !move(this.chunks[chunk]!.buffer)) continue;
      const start = this.startOf[slot]!;
      const length = this.lengthOf[slot]!;
      const copy = this.arena.copy(this.chunks[chunk]!.subarray(start, start + length));
      const to = this.chunkForMemory(copy.buffer);
      this.chunkOf[slot] = to;
      this.startOf[slot] = copy.byteOffset;
      this.liveInChunk[to]!++;
      if (--this.liveInChunk[chunk]! === 0) this.freeChunk(chunk);
      copied += length;
    }
    return copied;
  }

  private release(slot: number, chunk: number): void {
    this.chunkOf[slot] = NO_CHUNK;
    this.freeSlots.push(slot);
    this.liveSlots--;
    // The last slot of a chunk gone: the chunk lives on only through KeyValues viewing it. A
    // start-up chunk only once start-up is over: a later record may land in the same chunk.
    if (--this.liveInChunk[chunk]! === 0) {
      const memory = this.chunks[chunk]!.buffer;
      if (this.chunkNumbers.get(memory) === chunk) {
        this.chunkNumbers.delete(memory);
        this.freeChunk(chunk);
      } else if (this.sealed) {
        this.freeChunk(chunk);
      }
    }
    if (this.liveSlots === 0 && this.sealed) this.drop();
  }

  private freeChunk(chunk: number): void {
    this.chunks[chunk] = EMPTY;
    this.freeChunks.push(chunk);
  }

  /** No more start-up slots will be added; frees everything if none is left. */
  seal(): void {
    this.sealed = true;
    for (let chunk = 0; chunk < this.chunks.length; chunk++) {
      if (this.liveInChunk[chunk] === 0 && this.chunks[chunk] !== EMPTY) this.freeChunk(chunk);
    }
    if (this.liveSlots === 0) this.drop();
  }

  /**
   * Every slot released after start-up: the arrays and chunk list go back to their first size
   * (after a restart of a large store they hold a slot per key; a store that creates and reads
   * keys one at a time keeps its small arrays instead of making them again for each key).
   */
  private drop(): void {
    if (this.modRevisions.length > INITIAL_SLOTS) {
      this.modRevisions = new Float64Array(INITIAL_SLOTS);
      this.createRevisions = new Float64Array(INITIAL_SLOTS);
      this.versions = new Float64Array(INITIAL_SLOTS);
      this.chunkOf = new Uint32Array(INITIAL_SLOTS);
      this.startOf = new Uint32Array(INITIAL_SLOTS);
      this.lengthOf = new Uint32Array(INITIAL_SLOTS);
    }
    this.chunks.length = 0;
    this.liveInChunk.length = 0;
    this.chunkNumbers.clear();
    this.freeChunks.length = 0;
    this.freeSlots.length = 0;
    this.slots = 0;
  }

  private grow(): void {
    const size = this.modRevisions.length * 2;
    const f64 = (from: Float64Array): Float64Array => { const to = new Float64Array(size); to.set(from); return to; };
    const u32 = (from: Uint32Array): Uint32Array => { const to = new Uint32Array(size); to.set(from); return to; };
    this.modRevisions = f64(this.modRevisions);
    this.createRevisions = f64(this.createRevisions);
    this.versions = f64(this.versions);
    this.chunkOf = u32(this.chunkOf);
    this.startOf = u32(this.startOf);
    this.lengthOf = u32(this.lengthOf);
  }
}

const EMPTY = Buffer.alloc(0);
