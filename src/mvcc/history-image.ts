import { Limits } from '../platform/limits.js';
import type { Logger } from '../platform/logger.js';
import { Bucket, type Backend } from '../storage/backend.js';
import type { BucketImageHeader } from '../storage/bucket-image.js';
import { RECORD_HEADER_BYTES } from './kv-record.js';
import { prefixedRevisionKey, readUint64, writeUint64 } from './revision.js';

/**
 * When the mvcc history's image is written, and whether one found at start-up still fits
 * (the file and its format: storage/bucket-image.ts; its use: kv-store.ts recover).
 *
 * The image holds the key bucket's records up to revision R (its end key is revision R + 1) as
 * LevelDB held them at some moment after R was written, and its tag says R and the compacted
 * revision C at that moment. Start-up visits the image's records, then LevelDB's from R + 1 on.
 * That rebuilds exactly what a scan of LevelDB alone would, on two conditions it checks:
 *
 *   - R <= the backend's revision (meta): the image is of this backend's past, not of another;
 *   - C == the backend's compacted revision (meta). Records are only ever added above the current
 *     revision and removed by compaction, so with no compaction since the image, LevelDB's
 *     records up to R are the image's, minus what compaction C had not yet removed when the image
 *     was taken and removed since: the image is then a state LevelDB itself passed through (a
 *     crash there is what start-up already handles, by running compaction C again). After a
 *     later compaction that argument fails (a tombstone compacted away with its key's older
 *     revisions still in the image would bring the key back), so such an image is not used.
 *
 * A backend replaced wholesale (a state image installed from the leader) takes its directory,
 * and with it the image, along: the new backend has none.
 *
 * Writing: backend.writeImage (storage/bucket-image-writer.ts) once the records not covered reach
 * Limits.bucketImageRecordsMin. While the image in place fits, it is extended in place with the
 * records after it: each record is read from LevelDB for an image once, and the image stays
 * within that many records of the store. A compaction makes every record uncovered again: the
 * next image is written whole. Counted in backend operations committed (puts, tombstones, and
 * the few meta and lease writes beside them): a cost estimate, not a contract.
 */
const EMPTY = Buffer.alloc(0);

/** When an image is due (Limits.bucketImageRecordsMin); tests write images of small stores. */
export interface HistoryImageOptions {
  /** 0: never write one (an image already there is still read while it fits). */
  recordsMin: number;
}

export class HistoryImage {
  /** Records in the image that fits now (0 when none does). */
  private imaged = 0;
  /** That image's revision R (its end key is R + 1). */
  private imageRevision = 0;
  /** The compacted revision the current image was taken at (the store's, when there is none). */
  private imageCompacted = -1;
  /** Operations committed since the records the image covers. */
  private uncovered = 0;
  /** Records the bucket holds, as counted: recovered plus committed (compaction's deletions not subtracted). */
  private total = 0;
  private writing: Promise<void> | null = null;
  private retryAt = 0;
  private closed = false;

  private readonly options: HistoryImageOptions;

  /**
   * `state()` gives the store's revision and compacted revision as of now (every record up to it
   * committed); `idle()` waits for a compaction pass in progress, so an image does not hold what
   * the pass is about to delete.
   */
  constructor(
    private readonly backend: Backend,
    private readonly state: () => { revision: number; compacted: number },
    private readonly idle: () => Promise<void>,
    private readonly logger: Logger,
    options: Partial<HistoryImageOptions> = {},
  ) {
    this.options = { recordsMin: Limits.bucketImageRecordsMin, ...options };
  }

  /** Resolves once no image is being written (for tests and benchmarks). */
  async settled(): Promise<void> {
    while (this.writing !== null) await this.writing;
  }

  /** The tag an image at `revision` with `compacted` carries. */
  static tag(revision: number, compacted: number): Buffer {
    const tag = Buffer.alloc(16);
    writeUint64(tag, revision, 0);
    writeUint64(tag, compacted + 1, 8);
    return tag;
  }

  /** Null when the image found at start-up fits a backend at `revision` compacted at `compacted`, else why not (for the log). */
  static misfit(header: BucketImageHeader, revision: number, compacted: number): string | null {
    if (header.bucket !== Bucket.key || header.tag.length !== 16) return 'not an image of the mvcc history';
    const imageRevision = readUint64(header.tag, 0);
    const imageCompacted = readUint64(header.tag, 8) - 1;
    if (!header.lt.equals(HistoryImage.endKey(imageRevision))) return 'its end key is not its revision + 1';
    if (imageRevision > revision) return `taken at revision ${imageRevision}, beyond the backend's ${revision}`;
    if (imageCompacted !== compacted) return `taken with compacted revision ${imageCompacted}, the backend's is ${compacted}`;
    return null;
  }

  static revisionOf(header: BucketImageHeader): number {
    return readUint64(header.tag, 0);
  }

  /** The first backend key (with the bucket byte) above revision `revision`: an image's end, LevelDB's scan's start. */
  static endKey(revision: number): Buffer {
    return prefixedRevisionKey(Bucket.key, revision + 1, EMPTY);
  }

  /** After start-up: `imaged` records came from an image taken at `compacted`, `uncovered` from LevelDB. */
  recovered(imaged: number, imageRevision: number, compacted: number, uncovered: number): void {
    this.imaged = imaged;
    this.imageRevision = imageRevision;
    this.imageCompacted = compacted;
    this.uncovered = uncovered;
    this.total = imaged + uncovered;
  }

  /** Counts `ops` committed, and starts a new image when one is due. */
  committed(ops: number): void {
    this.uncovered += ops;
    this.total += ops;
    this.maybeWrite();
  }

  private maybeWrite(): void {
    if (this.writing !== null || this.closed || this.options.recordsMin <= 0) return;
    const { compacted } = this.state();
    if (compacted !== this.imageCompacted) {
      // The image no longer fits (see the header): every record must be imaged again.
      this.uncovered = this.total;
      this.imaged = 0;
      this.imageCompacted = compacted;
    }
    if (this.uncovered < this.options.recordsMin || Date.now() < this.retryAt) return;
    this.writing = this.write().finally(() => {
      this.writing = null;
      // A compaction, or enough writes, while this one was written: due again at once.
      this.maybeWrite();
    });
  }

  /** Stops scheduling; an image being written is abandoned by the backend's close. */
  close(): void {
    this.closed = true;
  }

  private async write(): Promise<void> {
    await this.idle();
    if (this.closed) return;
    const { revision, compacted } = this.state();
    // The image in place still fits (no compaction since): extend it with what came after it.
    const append = this.imaged > 0 && compacted === this.imageCompacted && revision > this.imageRevision;
    const uncovered = this.uncovered;
    // Operations from here on are above `revision`: not in this image.
    this.uncovered = 0;
    const started = performance.now();
    try {
      const written = await this.backend.writeImage(Bucket.key, HistoryImage.endKey(revision), HistoryImage.tag(revision, compacted), RECORD_HEADER_BYTES,
        append ? HistoryImage.endKey(this.imageRevision) : undefined);
      this.imaged = written.records;
      this.imageRevision = revision;
      this.imageCompacted = compacted;
      this.logger.info({ revision, compacted, records: written.records, bytes: written.bytes, appended: append, ms: Math.round(performance.now() - started) }, 'mvcc history image written');
    } catch (err) {
      if (this.closed) return;
      if (append) {
        // The image in place could not be extended (gone, damaged): the next one is written whole.
        this.imaged = 0;
        this.uncovered = this.total;
      } else {
        this.uncovered += uncovered;
        this.retryAt = Date.now() + Limits.bucketImageRetryMs;
      }
      this.logger.warn({ err: (err as Error).message, append, retryInMs: append ? 0 : Limits.bucketImageRetryMs }, 'writing the mvcc history image failed; start-up reads LevelDB meanwhile');
    }
  }
}
