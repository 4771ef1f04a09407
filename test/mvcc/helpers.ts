import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/platform/logger.js';
import { Applier, type ApplierOptions } from '../../src/server/applier.js';
import type { KeyValue } from '../../src/proto/etcd-types.js';

/** Test helpers shared by the mvcc and applier tests. */

export const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A fresh temp directory, removed after `fn`. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-mvcc-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function openApplier(dir: string, options: Omit<ApplierOptions, 'logger'> = {}): Promise<Applier> {
  return Applier.open(join(dir, 'db'), { logger: silentLogger, ...options });
}

/** An applier on a temp dir, with leases `leases` granted (60 s), closed and removed after `fn`. */
export async function withApplier<T>(fn: (applier: Applier, dir: string) => Promise<T> | T, leases: bigint[] = []): Promise<T> {
  return withTempDir(async (dir) => {
    const applier = await openApplier(dir);
    try {
      for (const id of leases) applier.apply({ id: 0, lease_grant: { ID: id, TTL: 60 } });
      return await fn(applier, dir);
    } finally {
      await applier.close();
    }
  });
}

/** A KeyValue as a plain comparable object. */
export function plain(kv: KeyValue | undefined): object | undefined {
  if (kv === undefined) return undefined;
  return {
    key: kv.key.toString('latin1'),
    create_revision: kv.create_revision,
    mod_revision: kv.mod_revision,
    version: kv.version,
    value: kv.value.toString('latin1'),
    lease: kv.lease.toString(),
  };
}

/** Seeded PRNG (mulberry32): the same seed gives the same inputs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

/** Asserts fn throws a KeyraftError with this code. */
export function throwsCode(fn: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  if (!thrown || (thrown as { code?: string }).code !== code) {
    throw new Error(`expected KeyraftError ${code}, got ${thrown === undefined ? 'no error' : String((thrown as Error).stack ?? thrown)}`);
  }
}
