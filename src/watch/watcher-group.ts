import { RangeIndex } from './range-index.js';
import type { Watcher } from './watcher.js';

/**
 * A set of watchers indexed for matching events (etcd's watcherGroup): single-key watchers in a
 * map by key, range watchers in a RangeIndex by their range (identical ranges share a set).
 * Matching one event costs a map lookup plus O(log ranges + matches), not O(watchers).
 */
export class WatcherGroup {
  private readonly byKey = new Map<string, Set<Watcher>>();
  private readonly ranges = new RangeIndex<Set<Watcher>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(w: Watcher): void {
    let set: Set<Watcher> | undefined;
    if (!w.isRange) {
      set = this.byKey.get(w.keyString);
      if (set === undefined) this.byKey.set(w.keyString, (set = new Set()));
    } else {
      set = this.ranges.get(w.keyString, w.endString);
      if (set === undefined) this.ranges.set(w.keyString, w.endString, (set = new Set()));
    }
    const before = set.size;
    set.add(w);
    if (set.size > before) this.count++;
  }

  delete(w: Watcher): boolean {
    const set = !w.isRange ? this.byKey.get(w.keyString) : this.ranges.get(w.keyString, w.endString);
    if (set === undefined || !set.delete(w)) return false;
    this.count--;
    if (set.size === 0) {
      if (!w.isRange) this.byKey.delete(w.keyString);
      else this.ranges.delete(w.keyString, w.endString);
    }
    return true;
  }

  /** Calls `visit` for every watcher whose key or range holds `key` (latin1). */
  forEachWatching(key: string, visit: (w: Watcher) => void): void {
    const set = this.byKey.get(key);
    if (set !== undefined) for (const w of set) visit(w);
    this.ranges.forEachHolding(key, (s) => { for (const w of s) visit(w); });
  }
}
