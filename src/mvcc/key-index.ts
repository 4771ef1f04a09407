import { assert } from '../platform/assert.js';
import type { KeyValue } from '../proto/etcd-types.js';

/**
 * The history of one key: its revisions, grouped into generations, as etcd's key_index.go.
 * A generation runs from the put that creates the key to the delete (tombstone) that ends it;
 * the last generation is open (no tombstone yet) and empty right after a delete. Each revision
 * is held as the KeyValue a read at that revision returns, so reads copy nothing; a tombstone is
 * a KeyValue with create_revision 0 (etcd's deleted-kv marker) carrying only key and
 * mod_revision.
 *
 * Worked example (revisions are main revisions; "t" marks a tombstone):
 *
 *   put foo @1, put foo @2, delete foo @3, put foo @4, put foo @5, delete foo @6:
 *     generations: {1, 2, 3t} {4, 5, 6t} {}
 *     get(2) = the kv of rev 2 (version 2); get(3) = none (deleted at 3); get(5) = rev 5 (version 2)
 *
 *   compact(2): keep the latest revision at or below 2 in the generation that holds 2, drop the
 *   older ones and every older generation:
 *     {2, 3t} {4, 5, 6t} {}          (rev 1 removed from the backend)
 *
 *   compact(4): generation {2, 3t} ended at 3 <= 4, so it goes entirely (a tombstone at or below
 *   the compact revision removes the key's older life); in {4, 5, 6t} rev 4 is kept:
 *     {4, 5, 6t} {}
 *
 *   compact(6): {4, 5, 6t} trims to {6t}; a lone tombstone in a closed generation is dropped:
 *     {}                              -> the key index is empty; the store removes the key.
 *
 *   compact(5) instead of 6 would give {5, 6t} {}: a read at 5 still sees rev 5.
 *
 * Invariant: mod revisions strictly increase across all generations.
 * Invariant: every closed generation is non-empty and ends with a tombstone; the open one has none.
 */
export class KeyIndex {
  /** The user key; every KeyValue of this key shares this buffer. */
  readonly key: Buffer;
  /**
   * Generations ended by a delete, oldest first, or null when there are none (most keys): one
   * array less per key than a list of all generations (memory and GC work, per key).
   */
  private closed: KeyValue[][] | null = null;
  /** The open generation; NO_REVISIONS when empty (a put replaces it, never pushes into it). */
  private current: KeyValue[] = NO_REVISIONS;

  constructor(key: Buffer) {
    this.key = key;
  }

  /** All generations, oldest first, the open one last (a copy of the outer list; for tests). */
  get generations(): KeyValue[][] {
    return this.closed === null ? [this.current] : [...this.closed, this.current];
  }

  /** The live KeyValue at the newest revision, or undefined when the key is deleted. */
  latest(): KeyValue | undefined {
    const g = this.current;
    return g.length > 0 ? g[g.length - 1] : undefined;
  }

  /** Mod revision of the newest revision of any kind (put or tombstone), 0 if none. */
  lastModRevision(): number {
    if (this.current.length > 0) return this.current[this.current.length - 1]!.mod_revision;
    if (this.closed === null) return 0;
    const g = this.closed[this.closed.length - 1]!;
    return g[g.length - 1]!.mod_revision;
  }

  /** Appends a put; kv.mod_revision must be newer than everything held. */
  put(kv: KeyValue): void {
    // Checked without building a message closure: this is the hot path of every put.
    if (!(kv.mod_revision > this.lastModRevision() && kv.create_revision > 0)) {
      assert(false, `put at revision ${kv.mod_revision} (create ${kv.create_revision}) not after ${this.lastModRevision()}`);
    }
    // A new generation starts as a one-slot array: V8 would give `[].push(kv)` 17 slots, and most
    // keys never get a second revision before compaction (about 130 bytes per key, measured).
    if (this.current.length === 0) this.current = [kv];
    else this.current.push(kv);
  }

  /** Appends a tombstone and opens a new generation. The key must be live. */
  tombstone(kv: KeyValue): void {
    const g = this.current;
    assert(g.length > 0, 'tombstone of a key that is not live');
    assert(kv.create_revision === 0 && kv.mod_revision > g[g.length - 1]!.mod_revision, () => `bad tombstone at revision ${kv.mod_revision}`);
    g.push(kv);
    if (this.closed === null) this.closed = [g];
    else this.closed.push(g);
    this.current = NO_REVISIONS;
  }

  /**
   * Restores one record from the backend (in revision order) at start-up. Put records carry
   * their own create revision and version, which stay correct after compaction removed the
   * generation's earlier revisions.
   */
  restore(kv: KeyValue): void {
    if (kv.create_revision === 0) {
      // A tombstone whose generation was compacted away entirely has nothing to close.
      if (this.current.length > 0) this.tombstone(kv);
      return;
    }
    this.put(kv);
  }

  /** The KeyValue visible at revision `rev`, or undefined if the key did not exist then. */
  get(rev: number): KeyValue | undefined {
    const g = this.current;
    if (g.length > 0 && g[0]!.mod_revision <= rev) return g[lastAtOrBelow(g, rev)];
    const closed = this.closed;
    if (closed === null) return undefined;
    for (let gi = closed.length - 1; gi >= 0; gi--) {
      const c = closed[gi]!;
      if (c[c.length - 1]!.mod_revision <= rev) return undefined; // deleted by then
      if (c[0]!.mod_revision <= rev) return c[lastAtOrBelow(c, rev)];
    }
    return undefined;
  }

  /** Pushes every revision with mod_revision >= fromRevision onto `out`, oldest first. */
  collectSince(fromRevision: number, out: KeyValue[]): void {
    const gens = this.closed === null ? [this.current] : this.generations;
    let first = gens.length;
    // Find the oldest generation holding a revision >= fromRevision (generations are ordered).
    while (first > 0) {
      const g = gens[first - 1]!;
      if (g.length > 0 && g[g.length - 1]!.mod_revision < fromRevision) break;
      first--;
    }
    for (let gi = first; gi < gens.length; gi++) {
      for (const kv of gens[gi]!) if (kv.mod_revision >= fromRevision) out.push(kv);
    }
  }

  /** Pushes every revision with fromRevision <= mod_revision <= toRevision onto `out`, oldest first. */
  collectBetween(fromRevision: number, toRevision: number, out: KeyValue[]): void {
    if (this.lastModRevision() < fromRevision) return; // the common case: nothing new on this key
    const gens = this.closed === null ? [this.current] : this.generations;
    for (const g of gens) {
      if (g.length === 0 || g[g.length - 1]!.mod_revision < fromRevision) continue;
      for (const kv of g) {
        if (kv.mod_revision > toRevision) return;
        if (kv.mod_revision >= fromRevision) out.push(kv);
      }
    }
  }

  /**
   * Drops the history a read at or after `atRev` can no longer see (see the example above),
   * pushing every removed KeyValue (puts and tombstones) onto `removed`.
   */
  compact(atRev: number, removed: KeyValue[]): void {
    if (this.closed === null) {
      // Only the open generation: keep its latest revision at or below atRev and what follows.
      const g = this.current;
      if (g.length > 1 && g[0]!.mod_revision <= atRev) {
        const revIndex = lastAtOrBelow(g, atRev);
        for (let i = 0; i < revIndex; i++) removed.push(g[i]!);
        if (revIndex > 0) g.splice(0, revIndex);
      }
      return;
    }
    const gens = this.generations;
    let genIdx = 0;
    // The first generation that holds atRev or starts after it.
    while (genIdx < gens.length - 1) {
      const g = gens[genIdx]!;
      if (g[g.length - 1]!.mod_revision > atRev) break;
      genIdx++;
    }
    const g = gens[genIdx]!;
    if (g.length > 0) {
      const revIndex = g[0]!.mod_revision <= atRev ? lastAtOrBelow(g, atRev) : -1;
      if (revIndex > 0) {
        for (let i = 0; i < revIndex; i++) removed.push(g[i]!);
        g.splice(0, revIndex);
      }
      // What remains is a lone tombstone at or below atRev: the key's life ended; drop it (the
      // loop below removes it with the older generations).
      if (g.length === 1 && genIdx !== gens.length - 1) genIdx++;
    }
    for (let i = 0; i < genIdx; i++) for (const kv of gens[i]!) removed.push(kv);
    const kept = gens.slice(genIdx, gens.length - 1);
    this.closed = kept.length > 0 ? kept : null;
  }

  /**
   * etcd's keyIndex.keep: the revision of this key that a compaction at `atRev` would keep at or
   * below atRev (the latest one in the generation holding atRev), or undefined when it keeps
   * none: the key did not exist at atRev, or what it would keep is the tombstone that ended a
   * generation (a lone tombstone is dropped). Never returns a tombstone. HashKV (hash.ts) uses it
   * to pick which revisions at or below the compacted revision it hashes. Example, from the
   * header's history {1, 2, 3t} {4, 5, 6t} {}: keptAt(2) = rev 2, keptAt(3) = none (the
   * tombstone), keptAt(5) = rev 5, keptAt(9) = none.
   */
  keptAt(atRev: number): KeyValue | undefined {
    const closed = this.closed;
    let g = this.current;
    let last = true;
    if (closed !== null) {
      // The first generation that holds atRev or starts after it (the open one if none).
      for (let gi = 0; gi < closed.length; gi++) {
        const c = closed[gi]!;
        if (c[c.length - 1]!.mod_revision > atRev) {
          g = c;
          last = false;
          break;
        }
      }
    }
    if (g.length === 0 || g[0]!.mod_revision > atRev) return undefined;
    const revIndex = lastAtOrBelow(g, atRev);
    if (!last && revIndex === g.length - 1) return undefined;
    return g[revIndex];
  }

  /** True when no revision is left: the store removes the key from its index. */
  isEmpty(): boolean {
    return this.closed === null && this.current.length === 0;
  }

  /** Number of revisions held (puts and tombstones). */
  revisionCount(): number {
    let n = this.current.length;
    if (this.closed !== null) for (const g of this.closed) n += g.length;
    return n;
  }
}

/** The empty open generation, shared: a put replaces it with a fresh array, never pushes into it. */
const NO_REVISIONS: KeyValue[] = Object.freeze([]) as unknown as KeyValue[];

/** Index of the last kv in g with mod_revision <= rev; g[0].mod_revision <= rev must hold. */
function lastAtOrBelow(g: KeyValue[], rev: number): number {
  let lo = 0;
  let hi = g.length - 1;
  if (g[hi]!.mod_revision <= rev) return hi;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (g[mid]!.mod_revision <= rev) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
