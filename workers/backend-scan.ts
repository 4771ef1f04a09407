import { workerData, type MessagePort } from 'node:worker_threads';
import { ClassicLevel } from 'classic-level';
import { assert } from '../src/platform/assert.js';
import { RecordPacker, type FromScanWorker, type ScanWorkerData, type ToScanWorker } from '../src/storage/backend-scan-protocol.js';

/**
 * The scan worker (backend-scan-protocol.ts): opens the backend the main thread already holds
 * (classic-level's `multithreading`: one shared LevelDB handle, no second lock), walks one bucket
 * in key order and sends its records packed into transferred chunks, at most chunksInFlightMax
 * unacknowledged. Reads only; the main thread writes nothing while it scans (start-up).
 */

const data = workerData as ScanWorkerData;
const port: MessagePort = data.port;

/** Entries per nextv call, and the bytes classic-level may buffer for it (as Backend.scan). */
const BATCH_ENTRIES = 1000;
const BATCH_BYTES = 1024 * 1024;

let inFlight = 0;
let stopped = false;
let wake: (() => void) | null = null;
port.on('message', (message: ToScanWorker) => {
  if (message.kind === 'ack') inFlight--;
  else stopped = true;
  const w = wake;
  wake = null;
  w?.();
});

function post(message: FromScanWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

async function main(): Promise<void> {
  const db = new ClassicLevel<Buffer, Buffer>(data.location, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open({ createIfMissing: false, multithreading: true });
  let records = 0;
  try {
    const iterator = db.iterator({ gte: Buffer.from(data.gte), lt: Buffer.from(data.lt), highWaterMarkBytes: BATCH_BYTES, fillCache: false });
    try {
      const packer = new RecordPacker(data.chunkBytes, data.headBytes);
      const sendFull = async (): Promise<void> => {
        for (const chunk of packer.full.splice(0)) {
          while (inFlight >= data.chunksInFlightMax && !stopped) await new Promise<void>((resolve) => { wake = resolve; });
          if (stopped) return;
          inFlight++;
          // Both in memory of their own (allocUnsafeSlow): transferred whole, not copied.
          assert(chunk.records.byteOffset === 0 && chunk.tails.byteOffset === 0 && chunk.tails.length === chunk.tails.buffer.byteLength, 'packed chunk shares its memory');
          const records = chunk.records.buffer as ArrayBuffer;
          const tails = chunk.tails.buffer as ArrayBuffer;
          post({ kind: 'chunk', records, recordsBytes: chunk.recordsBytes, tails, count: chunk.count }, [records, tails]);
        }
      };
      let next = iterator.nextv(BATCH_ENTRIES);
      for (;;) {
        const entries = await next;
        if (entries.length === 0 || stopped) break;
        next = iterator.nextv(BATCH_ENTRIES);
        for (const [key, value] of entries) packer.add(key, value);
        records += entries.length;
        await sendFull();
      }
      packer.close();
      await sendFull();
      // The last nextv may still be running when a stop cut the loop short.
      await next.catch(() => undefined);
    } finally {
      await iterator.close();
    }
  } finally {
    await db.close();
  }
  post({ kind: 'done', records });
}

main().then(
  () => port.close(),
  (err: unknown) => {
    post({ kind: 'failed', message: err instanceof Error ? `${err.message}${(err as { code?: string }).code ? ` (${(err as { code?: string }).code})` : ''}` : String(err) });
    port.close();
  },
);
