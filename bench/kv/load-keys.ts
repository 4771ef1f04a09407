import { EtcdClient } from '../../src/cli/ctl-client.js';

/** The name of key i of a loaded store: `bench/` and i zero-padded to 8 digits (key order = i order). */
export function loadedKeyName(i: number): Buffer {
  return Buffer.from(`bench/${i.toString().padStart(8, '0')}`);
}

export interface LoadKeysOptions {
  keys: number;
  valueBytes: number;
  /** Puts per gRPC Txn. */
  txnPuts: number;
  /** Txns in flight. */
  concurrency: number;
  /** Deadline of each Txn. */
  txnTimeoutMs: number;
}

/**
 * Fills a member (keyraft or etcd) with `keys` keys named by loadedKeyName, each with the same
 * value of `valueBytes` bytes ('a'), through gRPC Txns of `txnPuts` puts, `concurrency` in flight.
 * The restart and snapshot benchmarks load their stores this way, so both measure the same data.
 */
export async function loadKeys(port: number, o: LoadKeysOptions): Promise<void> {
  const client = new EtcdClient([`127.0.0.1:${port}`]);
  const value = Buffer.alloc(o.valueBytes, 0x61);
  let next = 0;
  try {
    await Promise.all(Array.from({ length: o.concurrency }, async () => {
      while (next < o.keys) {
        const first = next;
        next = Math.min(o.keys, next + o.txnPuts);
        const success = [];
        for (let i = first; i < next; i++) success.push({ request_put: { key: loadedKeyName(i), value } });
        await client.call('KV', 'Txn', { success }, { deadlineMs: Date.now() + o.txnTimeoutMs });
      }
    }));
  } finally {
    client.close();
  }
}
