import { open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ClassicLevel } from 'classic-level';
import { RecordPacker } from './backend-scan-protocol.js';
import {
  BUCKET_IMAGE_DATA_START, BUCKET_IMAGE_SLOT_BYTES, encodeBucketImageSlot, encodeChunkHeader, readBucketImageSlot,
} from './bucket-image.js';

/**
 * Writes a bucket image (bucket-image.ts) while the member goes on serving: reads [gte, lt)
 * through one iterator of the backend's own LevelDB handle (an implicit LevelDB snapshot: writes
 * meanwhile are not seen), packs it as the start-up scan does and writes the file under a
 * temporary name, fdatasync, rename, directory fsync.
 *
 * Appending (`append`): the image in place ends where this one's range starts; it is extended in
 * place (its format says how a crash midway leaves the previous image whole), with only the
 * records after it read from LevelDB, so keeping the image current costs what was written since,
 * not the whole bucket.
 *
 * Why on the main thread, not a worker: the reads (LevelDB's nextv) and the file I/O already run
 * in libuv's thread pool; what is left here is packing, one copy of each record into a chunk
 * buffer, in turns of BATCH_ENTRIES records between which requests are served. A worker thread
 * per image (the earlier design) cost more: RssAnon after 500,000 puts to one key (a scratch
 * script, runs alternating) 97-123 MiB with a worker per image, 96-103 MiB from the main thread,
 * 85-92 MiB with no images; the main thread's share of the work is ~3.4% of its busy time in a
 * CPU profile of that load (packing, 0.7 us a record).
 */

export interface BucketImageWrite {
  bucket: number;
  gte: Buffer;
  lt: Buffer;
  tag: Buffer;
  path: string;
  /** Extend the image at `path`, whose end key must be `gte`, instead of writing one from the bucket's start. */
  append: boolean;
  chunkBytes: number;
  headBytes: number;
  /**
   * Checked between batches: true abandons the image (a new one's temporary file stays, the next
   * write replaces it; an extension's chunks after the data end stay unnamed until the next one).
   */
  stopped: () => boolean;
}

/** Records read from LevelDB per turn of the event loop. */
const BATCH_ENTRIES = 1000;
const BATCH_BYTES = 256 * 1024;

export async function writeBucketImage(db: ClassicLevel<Buffer, Buffer>, w: BucketImageWrite): Promise<{ records: number; bytes: number }> {
  const temp = `${w.path}.tmp`;
  let file: FileHandle;
  let chunks = 0;
  let records = 0;
  let position = BUCKET_IMAGE_DATA_START;
  /** The slot this image's description goes to, and its sequence. */
  let slotIndex = 0;
  let sequence = 1;
  if (w.append) {
    file = await open(w.path, 'r+');
    try {
      const current = await readBucketImageSlot(file, w.path);
      if (current.slot.bucket !== w.bucket || !current.slot.lt.equals(w.gte)) throw new Error('the image in place does not end where this one starts');
      ({ chunks, records, dataEnd: position } = current.slot);
      slotIndex = 1 - current.index;
      sequence = current.slot.sequence + 1;
    } catch (err) {
      await file.close();
      throw err;
    }
  } else {
    file = await open(temp, 'w');
  }
  const write = async (buffer: Buffer, at: number): Promise<void> => {
    for (let done = 0; done < buffer.length;) done += (await file.write(buffer, done, buffer.length - done, at + done)).bytesWritten;
  };
  try {
    // A new file's slots are zeros until the end (slot B stays so: never valid).
    if (!w.append) await write(Buffer.alloc(BUCKET_IMAGE_DATA_START), 0);
    // Without a sink the packer hands out each chunk in buffers of its own: written while the next fills.
    const packer = new RecordPacker(w.chunkBytes, w.headBytes);
    const flush = async (): Promise<void> => {
      for (const chunk of packer.full.splice(0)) {
        for (const part of [encodeChunkHeader(chunk), chunk.records.subarray(0, chunk.recordsBytes), chunk.tails]) {
          await write(part, position);
          position += part.length;
        }
        chunks++;
      }
    };
    const iterator = db.iterator({ gte: w.gte, lt: w.lt, highWaterMarkBytes: BATCH_BYTES, fillCache: false });
    try {
      for (;;) {
        const entries = await iterator.nextv(BATCH_ENTRIES);
        if (w.stopped()) throw new Error('stopped: the backend is closing');
        if (entries.length === 0) break;
        for (const [key, value] of entries) packer.add(key, value);
        records += entries.length;
        await flush();
      }
      packer.close();
      await flush();
    } finally {
      await iterator.close();
    }
    if (w.append) {
      // Bytes an abandoned extension left after the data end go; the chunks are durable before
      // the slot that names them is written. (A new file is named only by the rename, after the
      // one datasync below.)
      await file.truncate(position);
      await file.datasync();
    }
    const slot = encodeBucketImageSlot({ bucket: w.bucket, lt: w.lt, tag: w.tag, sequence, chunks, records, dataEnd: position });
    await write(slot, slotIndex * BUCKET_IMAGE_SLOT_BYTES);
    await file.datasync();
  } finally {
    await file.close();
  }
  if (!w.append) {
    await rename(temp, w.path);
    const dir = await open(dirname(w.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
  return { records, bytes: position };
}
