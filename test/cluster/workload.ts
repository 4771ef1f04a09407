/**
 * The client load of the cluster fault tests: concurrent clients on every member doing gRPC puts,
 * compare-and-swap txns, linearizable and serializable gets over a set of register keys (recorded
 * for the linearizability checker), plus puts of unique keys whose acknowledgement is remembered
 * (every acknowledged one must be on every member at the end).
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { HistoryRecorder, type RegisterValue } from './linearizability.js';
import type { TestCluster } from './cluster-harness.js';
import { rng as seededRng } from '../seeded-random.js';
import { b64, postJson } from '../integration/harness.js';

const CALL_TIMEOUT_MS = 2000;

export function call<T>(client: grpc.Client, method: string, request: unknown, timeoutMs = CALL_TIMEOUT_MS): Promise<T> {
  return new Promise((resolve, reject) => {
    (client as any)[method](request, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

/** Errors after which the request certainly changed nothing: refused before it was proposed. */
function isDefiniteFailure(err: unknown): boolean {
  const details = (err as { details?: string }).details ?? '';
  return details === 'etcdserver: no leader';
}

function valueOf(res: { kvs?: Array<{ value?: Uint8Array }> }): RegisterValue {
  const kv = res.kvs?.[0];
  return kv === undefined ? null : Buffer.from(kv.value ?? new Uint8Array(0)).toString();
}

export interface WorkloadResult {
  recorder: HistoryRecorder;
  /** Unique keys whose put was acknowledged, with their values. */
  ackedUnique: Map<string, string>;
  ops: { ok: number; failed: number };
}

export class Workload {
  readonly recorder = new HistoryRecorder({ isDefiniteFailure });
  readonly ackedUnique = new Map<string, string>();
  readonly ops = { ok: 0, failed: 0 };
  private running = true;
  private readonly loops: Promise<void>[] = [];

  constructor(private readonly cluster: TestCluster, options: { clients: number; keys: number; seed: number }) {
    for (let c = 0; c < options.clients; c++) this.loops.push(this.client(c, options.keys, seededRng(options.seed * 1000 + c + 1)));
  }

  /** Waits until `n` more operations have succeeded: the load made progress under whatever fault is on. */
  async progress(n: number, timeoutMs = 20_000): Promise<void> {
    const target = this.ops.ok + n;
    const deadline = Date.now() + timeoutMs;
    while (this.ops.ok < target) {
      if (Date.now() > deadline) throw new Error(`the load made ${n - (target - this.ops.ok)} of ${n} operations in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async client(id: number, keys: number, random: () => number): Promise<void> {
    const pickInt = (n: number) => Math.floor(random() * n);
    let n = 0;
    let lastSeen: RegisterValue = null;
    while (this.running) {
      const up = this.cluster.slots.map((_, i) => i).filter((i) => this.cluster.isUp(i));
      if (up.length === 0) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const member = up[pickInt(up.length)]!;
      const kv = this.cluster.kv(member);
      const key = `reg/${pickInt(keys)}`;
      const keyBytes = Buffer.from(key);
      const value = `c${id}-${n++}`;
      const pick = pickInt(10);
      try {
        if (pick < 3) {
          await this.recorder.record(id, 'put', { key, value }, () => call(kv, 'Put', { key: keyBytes, value: Buffer.from(value) }));
        } else if (pick < 6) {
          lastSeen = await this.recorder.record(id, 'get', { key }, async () => valueOf(await call(kv, 'Range', { key: keyBytes })));
        } else if (pick < 8) {
          const expected = lastSeen;
          const compare = expected === null
            ? { result: 0, target: 1, key: keyBytes, create_revision: 0 }
            : { result: 0, target: 3, key: keyBytes, value: Buffer.from(expected) };
          await this.recorder.record(id, 'cas', { key, expected, value }, async () => {
            const res = await call<{ succeeded?: boolean }>(kv, 'Txn', { compare: [compare], success: [{ request_put: { key: keyBytes, value: Buffer.from(value) } }] });
            return res.succeeded === true;
          });
        } else if (pick < 9) {
          // Serializable: may be stale by design, so not part of the linearizable history.
          await call(kv, 'Range', { key: keyBytes, serializable: true });
        } else {
          const unique = `uniq/${id}/${n}`;
          await call(kv, 'Put', { key: Buffer.from(unique), value: Buffer.from(value) });
          this.ackedUnique.set(unique, value);
        }
        this.ops.ok++;
      } catch {
        this.ops.failed++;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }
}

/**
 * Every key of member i, read serializably: a hash of (key, value, create, mod, version) and the map.
 * Read over the JSON gateway, not gRPC: the member has just answered the harness's status there.
 * A grpc-js client made while the member was down failed twice in CI with a stale ECONNREFUSED
 * right after the member served again (its log said so; waitForReady as a call option did
 * nothing: grpc-js takes it from the metadata).
 */
export async function memberState(cluster: TestCluster, i: number): Promise<{ hash: string; values: Map<string, string>; revision: number }> {
  const res = await postJson(cluster.slots[i]!.clientPort, '/v3/kv/range', { key: b64('\0'), range_end: b64('\0'), serializable: true });
  if (res.status !== 200) throw new Error(`range on member ${i}: HTTP ${res.status} ${res.raw.slice(0, 300)}`);
  const body = res.json as { kvs?: Array<{ key: string; value?: string; create_revision?: string; mod_revision?: string; version?: string }>; header?: { revision?: string } };
  const hash = createHash('sha256');
  const values = new Map<string, string>();
  for (const kv of body.kvs ?? []) {
    const key = Buffer.from(kv.key, 'base64').toString();
    const value = Buffer.from(kv.value ?? '', 'base64').toString();
    values.set(key, value);
    hash.update(`${key}\0${value}\0${Number(kv.create_revision ?? 0)}\0${Number(kv.mod_revision ?? 0)}\0${Number(kv.version ?? 0)}\n`);
  }
  return { hash: hash.digest('hex'), values, revision: Number(body.header?.revision ?? 0) };
}
