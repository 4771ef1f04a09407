import type { ReadView } from '../mvcc/kv.js';
import { CompareResult, CompareTarget, type Compare, type KeyValue } from '../proto/etcd-types.js';

/**
 * Txn compares, as etcd 3.4's applyCompare/compareKV:
 * - A compare reads [key, range_end) (etcd's range forms) and holds only if it holds for every
 *   key in the range.
 * - When no key exists, VERSION/CREATE/MOD/LEASE compare against 0 (a missing key has version,
 *   create and mod revision 0 and no lease), and a VALUE compare is always false: gRPC cannot
 *   tell an empty value from a missing one.
 * - The operand is the oneof field matching `target`; an unset one counts as 0 / empty.
 * Example: compare(version("k") = 0) holds exactly when "k" does not exist;
 * compare(create("a".."c") > 0) holds when "a" and "b" both exist and is false when none do.
 */

const EMPTY = Buffer.alloc(0);

const MISSING: KeyValue = { key: EMPTY, create_revision: 0, mod_revision: 0, version: 0, value: EMPTY, lease: 0n };

export function applyCompares(view: ReadView, compares: readonly Compare[] | undefined): boolean {
  if (compares === undefined) return true;
  for (const c of compares) {
    if (!applyCompare(view, c)) return false;
  }
  return true;
}

export function applyCompare(view: ReadView, c: Compare): boolean {
  const { kvs } = view.range(c.key ?? EMPTY, c.range_end);
  if (kvs.length === 0) {
    if ((c.target ?? CompareTarget.VERSION) === CompareTarget.VALUE) return false;
    return compareKV(c, MISSING);
  }
  for (const kv of kvs) {
    if (!compareKV(c, kv)) return false;
  }
  return true;
}

export function compareKV(c: Compare, kv: KeyValue): boolean {
  let result: number;
  switch (c.target ?? CompareTarget.VERSION) {
    case CompareTarget.VALUE:
      result = Buffer.compare(kv.value, c.value ?? EMPTY);
      break;
    case CompareTarget.CREATE:
      result = sign(kv.create_revision - (c.create_revision ?? 0));
      break;
    case CompareTarget.MOD:
      result = sign(kv.mod_revision - (c.mod_revision ?? 0));
      break;
    case CompareTarget.VERSION:
      result = sign(kv.version - (c.version ?? 0));
      break;
    case CompareTarget.LEASE: {
      const lease = c.lease ?? 0n;
      result = kv.lease === lease ? 0 : kv.lease > lease ? 1 : -1;
      break;
    }
    default:
      // etcd leaves result 0 for an unknown target.
      result = 0;
  }
  switch (c.result ?? CompareResult.EQUAL) {
    case CompareResult.EQUAL: return result === 0;
    case CompareResult.NOT_EQUAL: return result !== 0;
    case CompareResult.GREATER: return result > 0;
    case CompareResult.LESS: return result < 0;
    default: return true; // etcd: an unknown result holds
  }
}

function sign(n: number): number {
  return n > 0 ? 1 : n < 0 ? -1 : 0;
}
