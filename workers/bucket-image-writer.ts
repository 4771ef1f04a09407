import { closeSync, copyFileSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { setPriority } from 'node:os';
import { dirname } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { ClassicLevel } from 'classic-level';
import { RecordPacker, type PackedChunk } from '../src/storage/backend-scan-protocol.js';
import {
  BUCKET_IMAGE_CHUNK_HEADER_BYTES, decodeEnd, encodeBucketImageHeader, encodeChunkHeader, encodeEnd, readBucketImageHeaderSync,
} from '../src/storage/bucket-image.js';

/**
 * Writes a bucket image (src/storage/bucket-image.ts) in its own thread while the member goes on
 * serving: opens the backend the main thread holds (classic-level's `multithreading`), reads
 * [gte, lt) through one iterator (an implicit LevelDB snapshot: writes meanwhile are not seen),
 * packs it as the start-up scan does and writes the file under a temporary name, fdatasync,
 * rename, directory fsync. Posts { records, bytes } once the image is in place.
 *
 * Appending (`append`): the image in place ends where this one's range starts; its chunks are
 * copied as they are (a file copy, in the kernel) and only the records after them are read from
 * LevelDB, so keeping the image current costs what was written since, not the whole bucket.
 *
 * The thread lowers its own scheduling priority first (on Linux setpriority applies to the
 * calling thread only): the image is background work and must not take a core from the main
 * thread's requests and heartbeats. Packing reuses two buffers (RecordPacker's sink): its memory
 * stays at two chunks whatever the bucket's size.
 */

export interface BucketImageWriterData {
  location: string;
  bucket: number;
  gte: Uint8Array;
  lt: Uint8Array;
  tag: Uint8Array;
  path: string;
  /** Extend the image at `path`, whose end key must be `gte`, instead of writing one from the bucket's start. */
  append: boolean;
  chunkBytes: number;
  headBytes: number;
}

const BATCH_ENTRIES = 1000;
const BATCH_BYTES = 256 * 1024;
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
  const header = encodeBucketImageHeader({ bucket: data.bucket, lt: Buffer.from(data.lt), tag: Buffer.from(data.tag) });
  const temp = `${data.path}.tmp`;
  let chunks = 0;
  let records = 0;
  let fd: number;
  let position: number;
  if (data.append) {
    const old = readBucketImageHeaderSync(data.path);
    if (old.bucket !== data.bucket || !old.lt.equals(Buffer.from(data.gte)) || old.headerBytes !== header.length) {
      throw new Error('the image in place does not end where this one starts');
    }
    copyFileSync(data.path, temp);
    fd = openSync(temp, 'r+');
    const size = fstatSync(fd).size;
    const endRecord = Buffer.alloc(BUCKET_IMAGE_CHUNK_HEADER_BYTES);
    readSync(fd, endRecord, 0, endRecord.length, size - endRecord.length);
    const end = decodeEnd(endRecord);
    if (end === null) {
      closeSync(fd);
      throw new Error('the image in place has no valid end record');
    }
    chunks = end.chunks;
    records = end.records;
    ftruncateSync(fd, size - endRecord.length);
    writeAll(fd, header, 0);
    position = size - endRecord.length;
  } else {
    fd = openSync(temp, 'w');
    writeAll(fd, header, 0);
    position = header.length;
  }
  const write = (buffer: Buffer): void => {
    writeAll(fd, buffer, position);
    position += buffer.length;
  };
  const db = new ClassicLevel<Buffer, Buffer>(data.location, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  try {
    await db.open({ createIfMissing: false, multithreading: true });
    const packer = new RecordPacker(data.chunkBytes, data.headBytes, (chunk: PackedChunk) => {
      write(encodeChunkHeader(chunk));
      write(chunk.records.subarray(0, chunk.recordsBytes));
      write(chunk.tails);
      chunks++;
    });
    const iterator = db.iterator({ gte: Buffer.from(data.gte), lt: Buffer.from(data.lt), highWaterMarkBytes: BATCH_BYTES, fillCache: false });
    try {
      let next = iterator.nextv(BATCH_ENTRIES);
      for (;;) {
        const entries = await next;
        if (stopped) throw new Error('stopped: the backend is closing');
        if (entries.length === 0) break;
        next = iterator.nextv(BATCH_ENTRIES);
        for (const [key, value] of entries) packer.add(key, value);
        records += entries.length;
      }
      packer.close();
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
  return { records, bytes: position };
}

function writeAll(fd: number, buffer: Buffer, position: number): void {
  for (let done = 0; done < buffer.length;) done += writeSync(fd, buffer, done, buffer.length - done, position + done);
}

main().then(
  (result) => parentPort!.postMessage({ kind: 'done', ...result }),
  (err: unknown) => parentPort!.postMessage({ kind: 'failed', message: err instanceof Error ? err.message : String(err) }),
);
