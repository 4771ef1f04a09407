import { assert } from '../platform/assert.js';
import type { KeyValue } from '../proto/etcd-types.js';
import type { LatestSlots } from './latest-slots.js';

/**
 * The history of one key: its revisions, grouped into generations, as etcd's key_index.go.
 * A generation runs from the put that creates the key to the delete (tombstone) that ends it;
 * the last generation is open (no tombstone yet) and empty right after a delete.
 *
 * What is in memory, per key: the KeyValue of the latest live revision (value included: current
 * reads hand it out as it is, copy-free), and for every other revision only what a read needs to
 * find and describe it: its mod revision, 8 bytes in a number array per generation, plus per
 * generation its create revision and first version (versions inside a generation are
 * consecutive), and a lease per revision only in generations where some revision had one. A
 * revision's VALUE, once it is not the latest, lives in the backend only (kv-store.ts and
 * history-values.ts say when it may leave memory and how it is read back): history costs about
 * 8-16 bytes per revision instead of a KeyValue and its value.
 *
 * get() and collectBetween() hand out, for a revision that is not the latest, a fresh KeyValue
 * whose value is UNREAD_VALUE (isUnread): every field but the value is exact; the store fills in
 * the value from memory or the backend (HistoryValues.read) before anything leaves the store. A
 * tombstone is a KeyValue with create_revision 0 (etcd's deleted-kv marker) carrying only key and
 * mod_revision.
 *
 * Worked example (revisions are main revisions; "t" marks a tombstone):
 *
 *   put foo @1, put foo @2, delete foo @3, put foo @4, put foo @5, delete foo @6:
 *     generations: {1, 2, 3t} {4, 5, 6t} {}
 *     closed[0] = {create 1, first version 1, revs [1, 2, 3]}, closed[1] = {create 4, first
 *     version 1, revs [4, 5, 6]}, open = [], latest = none
 *     get(2) = rev 2 (version 2); get(3) = none (deleted at 3); get(5) = rev 5 (version 2)
 *
 *   compact(2): keep the latest revision at or below 2 in the generation that holds 2, drop the
 *   older ones and every older generation:
 *     {2, 3t} {4, 5, 6t} {}          (rev 1 removed from the backend; first version becomes 2)
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
 * Invariant: latest is defined exactly when the open generation is non-empty, and is its last revision.
 *
 * Slot form: a key with a single revision whose KeyValue nobody has asked for has no KeyIndex at
 * all. Its entry in the store's index is a number, its slot in the store's LatestSlots table
 * (latest-slots.ts says why): a key start-up read back with one revision, and a key a put has
 * just created (IndexEntry below). The first read or write that needs the key as objects makes
 * its KeyIndex from the slot (fromSlot()), and the key stays so. The questions a compaction,
 * HashKV, a count or a watch catching up ask of every key are answered from the slot
 * (entryLastModRevision, entryKeptAt): none of them makes a KeyIndex.
 */

/**
 * The value of a KeyValue whose value is not in memory (a revision that is not its key's latest):
 * one shared empty Buffer, recognized by identity. Never leaves the store (kv-store.ts resolves it).
 */
export const UNREAD_VALUE: Buffer = Buffer.alloc(0);

/** True for a KeyValue the index handed out without its value (see UNREAD_VALUE). */
export function isUnread(kv: KeyValue): boolean {
  return kv.value === UNREAD_VALUE;
}

const EMPTY = Buffer.alloc(0);

/**
 * An entry of the store's key index (kv-store.ts): the key's KeyIndex, or, for a key in slot
 * form (see the header), its slot in the store's LatestSlots: a key with one revision, live, and
 * no closed generation.
 */
export type IndexEntry = KeyIndex | number;

/** KeyIndex.lastModRevision of an entry, without making a KeyIndex. */
export function entryLastModRevision(entry: IndexEntry, slots: LatestSlots): number {
  return typeof entry === 'number' ? slots.modRevision(entry) : entry.lastModRevision();
}

/** KeyIndex.keptAt of an entry, without making a KeyIndex (a slot's one revision is kept from its revision on). */
export function entryKeptAt(entry: IndexEntry, slots: LatestSlots, atRev: number): number {
  if (typeof entry !== 'number') return entry.keptAt(atRev);
  const rev = slots.modRevision(entry);
  return rev <= atRev ? rev : 0;
}

/** A generation ended by a delete. revs[revs.length - 1] is the tombstone. */
interface ClosedGeneration {
  readonly createRevision: number;
  /** Version of revs[0] (compaction trims the front, so not always 1). */
  firstVersion: number;
  revs: number[];
  /** Lease of each revision (index-aligned with revs; 0n at the tombstone); null when all are 0. */
  leases: bigint[] | null;
}

export class KeyIndex {
  /** The user key; every KeyValue of this key shares this buffer. */
  readonly key: Buffer;
  /**
   * Generations ended by a delete, oldest first, or null when there are none (most keys): one
   * array less per key than a list of all generations (memory and GC work, per key).
   */
  private closed: ClosedGeneration[] | null = null;
  /**
   * Mod revisions of the open generation, oldest first; NO_REVISIONS when empty (a put replaces
   * it, never pushes into it). Its create revision and versions come from `latestKv`.
   */
  private current: number[] = NO_REVISIONS;
  /** Lease of each revision of `current`, or null while every one is 0 (most keys). */
  private currentLeases: bigint[] | null = null;
  /** The KeyValue of current's last revision, value included; undefined when current is empty. */
  private latestKv: KeyValue | undefined = undefined;

  constructor(key: Buffer) {
    this.key = key;
  }

  /**
   * The KeyIndex of a key in slot form (see the header): its key copied into the table's arena
   * from `keyString` (latin1), its one revision the KeyValue of `slot`, which is released.
   */
  static fromSlot(keyString: string, table: LatestSlots, slot: number): KeyIndex {
    const ki = new KeyIndex(table.copyKey(keyString));
    const kv = table.take(slot, ki.key);
    ki.current = [kv.mod_revision];
    if (kv.lease !== 0n) ki.currentLeases = [kv.lease];
    ki.latestKv = kv;
    return ki;
  }

  /** Mod revisions of all generations, oldest first, the open one last (for tests). */
  get generations(): number[][] {
    const out: number[][] = [];
    if (this.closed !== null) for (const c of this.closed) out.push([...c.revs]);
    out.push([...this.current]);
    return out;
  }

  /** The live KeyValue at the newest revision, or undefined when the key is deleted. */
  latest(): KeyValue | undefined {
    return this.latestKv;
  }

  /** True when the key is live at the newest revision (latest() !== undefined). */
  isLive(): boolean {
    return this.latestKv !== undefined;
  }

  /** Mod revision of the newest revision of any kind (put or tombstone), 0 if none. */
  lastModRevision(): number {
    if (this.current.length > 0) return this.current[this.current.length - 1]!;
    if (this.closed === null) return 0;
    const g = this.closed[this.closed.length - 1]!.revs;
    return g[g.length - 1]!;
  }

  /**
   * Appends a put; kv.mod_revision must be newer than everything held, and inside a generation
   * create revision and version must follow the latest (the index derives them from it).
   * Returns the KeyValue it replaces as latest (its value is history from now on), if any.
   */
  put(kv: KeyValue): KeyValue | undefined {
    // Checked without building a message closure: this is the hot path of every put.
    const prev = this.latestKv;
    if (!(kv.mod_revision > this.lastModRevision() && kv.create_revision > 0 &&
      (prev === undefined || (kv.create_revision === prev.create_revision && kv.version === prev.version + 1)))) {
      assert(false, `put at revision ${kv.mod_revision} (create ${kv.create_revision}, version ${kv.version}) does not follow ${this.lastModRevision()} (create ${prev?.create_revision}, version ${prev?.version})`);
    }
    // A new generation starts as a one-slot array: V8 would give `[].push(x)` 17 slots, and most
    // keys never get a second revision before compaction.
    if (this.current.length === 0) this.current = [kv.mod_revision];
    else this.current.push(kv.mod_revision);
    if (this.currentLeases !== null) {
      this.currentLeases.push(kv.lease);
    } else if (kv.lease !== 0n) {
      const leases = new Array<bigint>(this.current.length).fill(0n);
      leases[leases.length - 1] = kv.lease;
      this.currentLeases = leases;
    }
    this.latestKv = kv;
    return prev;
  }

  /**
   * Appends a tombstone at kv.mod_revision and opens a new generation. The key must be live.
   * Returns the KeyValue that was latest (its value is history from now on).
   */
  tombstone(kv: KeyValue): KeyValue {
    const latest = this.latestKv;
    const g = this.current;
    assert(latest !== undefined && g.length > 0, 'tombstone of a key that is not live');
    assert(kv.create_revision === 0 && kv.mod_revision > g[g.length - 1]!, () => `bad tombstone at revision ${kv.mod_revision}`);
    // Versions inside a generation are consecutive, ending at the latest's.
    const firstVersion = latest.version - (g.length - 1);
    g.push(kv.mod_revision);
    const leases = this.currentLeases;
    if (leases !== null) leases.push(0n);
    const closed: ClosedGeneration = { createRevision: latest.create_revision, firstVersion, revs: g, leases };
    if (this.closed === null) this.closed = [closed];
    else this.closed.push(closed);
    this.current = NO_REVISIONS;
    this.currentLeases = null;
    this.latestKv = undefined;
    return latest;
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

  /**
   * Replaces the latest KeyValue with an equal one whose bytes live elsewhere (start-up moves
   * recovered values out of the scan's buffers). Everything but where the value lives must match.
   */
  replaceLatest(kv: KeyValue): void {
    const latest = this.latestKv;
    assert(latest !== undefined && kv.mod_revision === latest.mod_revision && kv.create_revision === latest.create_revision &&
      kv.version === latest.version && kv.lease === latest.lease && kv.key === latest.key && kv.value.length === latest.value.length,
    () => `replaceLatest at revision ${kv.mod_revision} changes more than where the value lives`);
    this.latestKv = kv;
  }

  /**
   * The KeyValue visible at revision `rev`, or undefined if the key did not exist then: the
   * latest itself, or a fresh KeyValue with UNREAD_VALUE for an older revision.
   */
  get(rev: number): KeyValue | undefined {
    const g = this.current;
    if (g.length > 0 && g[0]! <= rev) return this.openAt(lastAtOrBelow(g, rev));
    const closed = this.closed;
    if (closed === null) return undefined;
    for (let gi = closed.length - 1; gi >= 0; gi--) {
      const c = closed[gi]!;
      if (c.revs[c.revs.length - 1]! <= rev) return undefined; // deleted by then
      if (c.revs[0]! <= rev) return this.closedAt(c, lastAtOrBelow(c.revs, rev));
    }
    return undefined;
  }

  /** Pushes every revision with mod_revision >= fromRevision onto `out`, oldest first. */
  collectSince(fromRevision: number, out: KeyValue[]): void {
    this.collectBetween(fromRevision, Number.MAX_SAFE_INTEGER, out);
  }

  /**
   * Pushes every revision with fromRevision <= mod_revision <= toRevision onto `out`, oldest
   * first: tombstones whole, older puts with UNREAD_VALUE, the latest as it is.
   */
  collectBetween(fromRevision: number, toRevision: number, out: KeyValue[]): void {
    if (this.lastModRevision() < fromRevision) return; // the common case: nothing new on this key
    const closed = this.closed;
    if (closed !== null) {
      for (const c of closed) {
        const revs = c.revs;
        if (revs[revs.length - 1]! < fromRevision) continue;
        for (let i = 0; i < revs.length; i++) {
          const rev = revs[i]!;
          if (rev > toRevision) return;
          if (rev >= fromRevision) out.push(i === revs.length - 1 ? this.tombstoneAt(rev) : this.closedAt(c, i));
        }
      }
    }
    const g = this.current;
    for (let i = 0; i < g.length; i++) {
      const rev = g[i]!;
      if (rev > toRevision) return;
      if (rev >= fromRevision) out.push(this.openAt(i));
    }
  }

  /**
   * Drops the history a read at or after `atRev` can no longer see (see the example above),
   * pushing the mod revision of every removed revision (puts and tombstones) onto `removed`.
   */
  compact(atRev: number, removed: number[]): void {
    const g = this.current;
    if (this.closed === null) {
      // Only the open generation: keep its latest revision at or below atRev and what follows.
      if (g.length > 1 && g[0]! <= atRev) {
        const revIndex = lastAtOrBelow(g, atRev);
        if (revIndex > 0) {
          for (let i = 0; i < revIndex; i++) removed.push(g[i]!);
          g.splice(0, revIndex);
          this.currentLeases?.splice(0, revIndex);
        }
      }
      return;
    }
    const closed = this.closed;
    // The first closed generation that holds atRev or starts after it (closed.length: the open one).
    let genIdx = 0;
    while (genIdx < closed.length && closed[genIdx]!.revs[closed[genIdx]!.revs.length - 1]! <= atRev) genIdx++;
    if (genIdx < closed.length) {
      const c = closed[genIdx]!;
      const revIndex = c.revs[0]! <= atRev ? lastAtOrBelow(c.revs, atRev) : -1;
      if (revIndex > 0) {
        for (let i = 0; i < revIndex; i++) removed.push(c.revs[i]!);
        c.revs.splice(0, revIndex);
        c.leases?.splice(0, revIndex);
        c.firstVersion += revIndex;
      }
      // A closed generation left holding only its tombstone: the key's life ended; drop it with
      // the older ones.
      if (c.revs.length === 1) genIdx++;
    } else if (g.length > 1 && g[0]! <= atRev) {
      // atRev is in the open generation (or after it): trim it as above.
      const revIndex = lastAtOrBelow(g, atRev);
      if (revIndex > 0) {
        for (let i = 0; i < revIndex; i++) removed.push(g[i]!);
        g.splice(0, revIndex);
        this.currentLeases?.splice(0, revIndex);
      }
    }
    // Every closed generation that ended at or below atRev goes whole: its tombstone at or below
    // the compact revision ended that life (a lone tombstone left in one is dropped the same way).
    for (let i = 0; i < genIdx; i++) for (const rev of closed[i]!.revs) removed.push(rev);
    this.closed = genIdx === 0 ? closed : genIdx < closed.length ? closed.slice(genIdx) : null;
  }

  /**
   * etcd's keyIndex.keep: the mod revision of this key that a compaction at `atRev` would keep
   * at or below atRev (the latest one in the generation holding atRev), or 0 when it keeps
   * none: the key did not exist at atRev, or what it would keep is the tombstone that ended a
   * generation (a lone tombstone is dropped). Never a tombstone. HashKV (hash.ts) uses it to
   * pick which revisions at or below the compacted revision it hashes. Example, from the
   * header's history {1, 2, 3t} {4, 5, 6t} {}: keptAt(2) = 2, keptAt(3) = 0 (the tombstone),
   * keptAt(5) = 5, keptAt(9) = 0.
   */
  keptAt(atRev: number): number {
    const closed = this.closed;
    let g = this.current;
    let last = true;
    if (closed !== null) {
      // The first generation that holds atRev or starts after it (the open one if none).
      for (let gi = 0; gi < closed.length; gi++) {
        const c = closed[gi]!.revs;
        if (c[c.length - 1]! > atRev) {
          g = c;
          last = false;
          break;
        }
      }
    }
    if (g.length === 0 || g[0]! > atRev) return 0;
    const revIndex = lastAtOrBelow(g, atRev);
    if (!last && revIndex === g.length - 1) return 0;
    return g[revIndex]!;
  }

  /** True when no revision is left: the store removes the key from its index. */
  isEmpty(): boolean {
    return this.closed === null && this.current.length === 0;
  }

  /** Number of revisions held (puts and tombstones). */
  revisionCount(): number {
    let n = this.current.length;
    if (this.closed !== null) for (const c of this.closed) n += c.revs.length;
    return n;
  }

  /** The KeyValue of the open generation's revision at index i. */
  private openAt(i: number): KeyValue {
    const g = this.current;
    const latest = this.latestKv!;
    if (i === g.length - 1) return latest;
    return {
      key: this.key,
      create_revision: latest.create_revision,
      mod_revision: g[i]!,
      version: latest.version - (g.length - 1 - i),
      value: UNREAD_VALUE,
      lease: this.currentLeases === null ? 0n : this.currentLeases[i]!,
    };
  }

  /** The KeyValue of a closed generation's put at index i (i < revs.length - 1). */
  private closedAt(c: ClosedGeneration, i: number): KeyValue {
    return {
      key: this.key,
      create_revision: c.createRevision,
      mod_revision: c.revs[i]!,
      version: c.firstVersion + i,
      value: UNREAD_VALUE,
      lease: c.leases === null ? 0n : c.leases[i]!,
    };
  }

  private tombstoneAt(rev: number): KeyValue {
    return Object.freeze({ key: this.key, create_revision: 0, mod_revision: rev, version: 0, value: EMPTY, lease: 0n });
  }
}

/** The empty open generation, shared: a put replaces it with a fresh array, never pushes into it. */
const NO_REVISIONS: number[] = Object.freeze([]) as unknown as number[];

/** Index of the last revision in g at or below rev; g[0] <= rev must hold. */
function lastAtOrBelow(g: number[], rev: number): number {
  let lo = 0;
  let hi = g.length - 1;
  if (g[hi]! <= rev) return hi;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (g[mid]! <= rev) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
