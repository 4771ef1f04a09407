import { closeSync, fdatasyncSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { setPriority } from 'node:os';
import { dirname } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { ClassicLevel } from 'classic-level';
import { RecordPacker, type PackedChunk } from '../src/storage/backend-scan-protocol.js';
import { encodeBucketImageHeader, encodeChunkHeader, encodeEnd } from '../src/storage/bucket-image.js';

/**
 * Writes a bucket image (src/storage/bucket-image.ts) in its own thread while the member goes on
 * serving: opens the backend the main thread holds (classic-level's `multithreading`), reads
 * [gte, lt) through one iterator (an implicit LevelDB snapshot: writes meanwhile are not seen),
 * packs it as the start-up scan does and writes the file under a temporary name, fdatasync,
 * rename, directory fsync. Posts { records, bytes } once the image is in place.
 *
 * The thread lowers its own scheduling priority first (on Linux setpriority applies to the
 * calling thread only): the image is background work and must not take a core from the main
 * thread's requests and heartbeats.
 */

export interface BucketImageWriterData {
  location: string;
  bucket: number;
  gte: Uint8Array;
  lt: Uint8Array;
  tag: Uint8Array;
  path: string;
  chunkBytes: number;
  headBytes: number;
}

const BATCH_ENTRIES = 1000;
const BATCH_BYTES = 1024 * 1024;
const data = workerData as BucketImageWriterData;
/** Set by a 'stop' from the backend closing: the image is abandoned (its temporary file stays, the next write replaces it). */
let stopped = false;
parentPort!.on('message', () => { stopped = true; });
// The port must not keep the thread alive once main() is done.
parentPort!.unref();

async function main(): Promise<{ records: number; bytes: number }> {
  try {
    setPriority(19);
  } catch {
    // Not permitted here: the image is written at normal priority.
  }
  const db = new ClassicLevel<Buffer, Buffer>(data.location, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open({ createIfMissing: false, multithreading: true });
  const temp = `${data.path}.tmp`;
  const fd = openSync(temp, 'w');
  let bytes = 0;
  let records = 0;
  let chunks = 0;
  const write = (buffer: Buffer): void => {
    for (let done = 0; done < buffer.length;) done += writeSync(fd, buffer, done, buffer.length - done);
    bytes += buffer.length;
  };
  const writeChunk = (chunk: PackedChunk): void => {
    write(encodeChunkHeader(chunk));
    write(chunk.records.subarray(0, chunk.recordsBytes));
    write(chunk.tails);
    chunks++;
  };
  try {
    write(encodeBucketImageHeader({ bucket: data.bucket, lt: Buffer.from(data.lt), tag: Buffer.from(data.tag) }));
    const iterator = db.iterator({ gte: Buffer.from(data.gte), lt: Buffer.from(data.lt), highWaterMarkBytes: BATCH_BYTES, fillCache: false });
    try {
      const packer = new RecordPacker(data.chunkBytes, data.headBytes);
      let next = iterator.nextv(BATCH_ENTRIES);
      for (;;) {
        const entries = await next;
        if (stopped) throw new Error('stopped: the backend is closing');
        if (entries.length === 0) break;
        next = iterator.nextv(BATCH_ENTRIES);
        for (const [key, value] of entries) packer.add(key, value);
        records += entries.length;
        for (const chunk of packer.full.splice(0)) writeChunk(chunk);
      }
      packer.close();
      for (const chunk of packer.full.splice(0)) writeChunk(chunk);
    } finally {
      await iterator.close();
    }
    write(encodeEnd(chunks, records));
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
    await db.close();
  }
  renameSync(temp, data.path);
  const dir = openSync(dirname(data.path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
  return { records, bytes };
}

main().then(
  (result) => parentPort!.postMessage({ kind: 'done', ...result }),
  (err: unknown) => parentPort!.postMessage({ kind: 'failed', message: err instanceof Error ? err.message : String(err) }),
);
