/**
 * WAL segment files: data-dir/member/wal/<seq>-<firstIndex>.wal, both 16 lowercase hex digits
 * (etcd's naming), so a plain sort of the names is the write order. `seq` grows by one per
 * segment; `firstIndex` is the index the next entry was expected to have when the segment was
 * created (a Raft overwrite may later write lower indexes into it). Example: the third segment,
 * started when the log ended at index 41 999, is 0000000000000003-000000000000a410.wal.
 *
 * A segment is created whole before it gets its name: the writer zero-fills a temporary file to
 * the segment size, writes the segment's first batch (the latest hard state and snapshot marker,
 * so releasing older segments never loses them), fdatasyncs, renames it into place and fsyncs the
 * directory. Files ending in .tmp are leftovers of an interrupted creation and are removed on open.
 */

export interface SegmentName {
  seq: number;
  firstIndex: number;
  fileName: string;
}

export const segmentSuffix = '.wal';
export const temporarySuffix = '.tmp';

const segmentPattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

export function segmentFileName(seq: number, firstIndex: number): string {
  return `${seq.toString(16).padStart(16, '0')}-${firstIndex.toString(16).padStart(16, '0')}${segmentSuffix}`;
}

export function parseSegmentFileName(fileName: string): SegmentName | undefined {
  const match = segmentPattern.exec(fileName);
  if (!match) return undefined;
  const seq = Number.parseInt(match[1]!, 16);
  const firstIndex = Number.parseInt(match[2]!, 16);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return undefined;
  return { seq, firstIndex, fileName };
}

/** The segments among `fileNames`, in write order. Other files are ignored. */
export function listSegments(fileNames: readonly string[]): SegmentName[] {
  const segments: SegmentName[] = [];
  for (const name of fileNames) {
    const parsed = parseSegmentFileName(name);
    if (parsed) segments.push(parsed);
  }
  return segments.sort((a, b) => a.seq - b.seq);
}
