import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../platform/logger.js';
import { STATE_IMAGE_CHUNK_BYTES, writeStateImage, type WriteStateImageOptions, type WrittenStateImage } from '../storage/state-image.js';
import type { Backend } from '../storage/backend.js';

/**
 * The member's state image files, in data-dir/member/snap (format: storage/state-image.ts):
 *
 *   <index, 16 hex digits>.krimg   a complete image at that applied index (written here or received)
 *   *.tmp, incoming-*.part         being written or received; removed at start-up
 *
 * A leader writes an image when a follower is behind its compacted log, and reuses the newest one
 * as long as it is not older than the snapshot the Raft core asks for (an image is never older
 * than the compaction point it was taken after, so a follower that installs it continues with
 * appends). A follower keeps the image it received under its index until a newer one is
 * installed: if it crashes between the WAL's snapshot marker and the end of the install, it
 * re-installs from that file at start-up (member.ts). Older images are removed once a newer one
 * is sent or installed.
 */
export class StateImages {
  /** The image being written, shared by every follower that asks meanwhile. */
  private writing: Promise<WrittenStateImage & { path: string }> | null = null;
  /** The newest complete image written or accepted here. */
  private newest: { index: number; path: string } | null = null;

  constructor(readonly dir: string, private readonly logger: Logger) {}

  /** Creates the directory, drops leftovers of interrupted writes and transfers, finds the newest image. */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const name of await readdir(this.dir)) {
      if (name.endsWith('.tmp') || name.endsWith('.part')) {
        await rm(join(this.dir, name), { force: true });
        continue;
      }
      const index = indexOf(name);
      if (index !== null && (this.newest === null || index > this.newest.index)) this.newest = { index, path: join(this.dir, name) };
    }
  }

  pathFor(index: number): string {
    return join(this.dir, `${index.toString(16).padStart(16, '0')}.krimg`);
  }

  /** The path of the image at exactly `index`, if this member holds it. */
  async find(index: number): Promise<string | null> {
    const name = this.pathFor(index);
    for (const n of await readdir(this.dir)) if (join(this.dir, n) === name) return name;
    return null;
  }

  /**
   * An image at `minIndex` or later: the newest one if it is recent enough, else a new one of
   * `backend` (one write at a time; concurrent callers share it).
   */
  async forSend(minIndex: number, backend: Backend, options: WriteStateImageOptions): Promise<{ index: number; path: string }> {
    if (this.newest !== null && this.newest.index >= minIndex) return this.newest;
    if (this.writing === null) {
      this.writing = this.write(backend, options).finally(() => { this.writing = null; });
    }
    const written = await this.writing;
    if (written.header.index < minIndex) {
      throw new Error(`state image at ${written.header.index} is older than the snapshot at ${minIndex} the follower needs`);
    }
    return { index: written.header.index, path: written.path };
  }

  /** Takes a received image file (handed over by the transport) under its index. */
  async accept(received: string, index: number): Promise<string> {
    const path = this.pathFor(index);
    await rename(received, path);
    if (this.newest === null || index >= this.newest.index) this.newest = { index, path };
    return path;
  }

  /** The file's bytes in chunks, for the peer transport. */
  read(path: string): AsyncIterable<Uint8Array> {
    return createReadStream(path, { highWaterMark: STATE_IMAGE_CHUNK_BYTES });
  }

  /** Removes images older than `index` (a newer one was installed or written). */
  async removeOlderThan(index: number): Promise<void> {
    if (this.newest !== null && this.newest.index < index) this.newest = null;
    for (const name of await readdir(this.dir)) {
      const i = indexOf(name);
      if (i !== null && i < index) await rm(join(this.dir, name), { force: true });
    }
  }

  /** Removes a file the transport handed over that will not be used. */
  async discard(path: string): Promise<void> {
    await rm(path, { force: true });
  }

  private async write(backend: Backend, options: WriteStateImageOptions): Promise<WrittenStateImage & { path: string }> {
    const temp = join(this.dir, `image-${process.pid}-${Date.now()}.tmp`);
    const started = performance.now();
    let written: WrittenStateImage;
    try {
      written = await writeStateImage(backend, temp, options);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    const path = this.pathFor(written.header.index);
    await rename(temp, path);
    this.newest = { index: written.header.index, path };
    this.logger.info({
      index: written.header.index, term: written.header.term, records: written.records, sizeBytes: written.sizeBytes,
      ms: Math.round(performance.now() - started),
    }, 'wrote state image');
    // Followers already streaming an older image keep their open file; new sends use this one.
    await this.removeOlderThan(written.header.index);
    return { ...written, path };
  }
}

function indexOf(name: string): number | null {
  const m = /^([0-9a-f]{16})\.krimg$/.exec(name);
  return m ? parseInt(m[1]!, 16) : null;
}
