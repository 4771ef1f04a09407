/**
 * bbolt's on-disk format (go.etcd.io/bbolt 1.3, the version etcd 3.4 links), as far as a writer
 * of fresh files and a reader of any file need it. Everything is little-endian (bbolt writes its
 * structs in native order; every platform etcd ships on is little-endian).
 *
 * The file is an array of pages of `pageSize` bytes (4096 here and on etcd's platforms); a page's
 * id is its index. Every page starts with a 16-byte header:
 *
 *   id u64 | flags u16 | count u16 | overflow u32
 *
 * `overflow` is how many further pages the page spans (a value too big for one page). Flags:
 * 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist.
 *
 *   page 0, 1   meta: at byte 16, magic u32 0xED0CDAED | version u32 2 | pageSize u32 | flags u32
 *               | root bucket {root pgid u64, sequence u64} | freelist pgid u64 | high-water pgid
 *               u64 (pages in use: the file holds at least this many) | txid u64 | checksum u64
 *               (FNV-1a 64 of the 56 bytes before it). The valid meta with the higher txid wins.
 *   freelist    count ids u64 of free pages (count 0xFFFF: the real count is the first u64).
 *   branch      count elements {pos u32, ksize u32, pgid u64}, then the keys; element i's key is
 *               at (element i's own offset + pos). Key i is the smallest key under child pgid.
 *   leaf        count elements {flags u32, pos u32, ksize u32, vsize u32}, then key and value
 *               bytes, key at (element offset + pos), value right after it. Element flag 0x01:
 *               the value is a nested bucket.
 *
 * A bucket is a B+tree of branch and leaf pages. Its value in the parent leaf is a 16-byte header
 * {root pgid u64, sequence u64}; root 0 means an inline bucket: a leaf page (header included, id
 * 0) follows the header inside the value itself. The meta's root bucket holds the named buckets
 * (etcd's "key", "meta", ...), each a leaf element with flag 0x01.
 *
 * Worked example: a leaf page holding "a"="1" and "bc"="22" is the header {id, 0x02, 2, 0}, then
 * element 0 {0, pos 32, 1, 1} at byte 16 (its key at 16+32 = 48, value at 49), element 1 {0, pos
 * 18, 2, 2} at byte 32 (key at 50..51, value at 52..53): 54 bytes used of the page.
 */

export const BBOLT_MAGIC = 0xed0cdaed;
export const BBOLT_VERSION = 2;
export const PAGE_HEADER_BYTES = 16;
export const BRANCH_ELEMENT_BYTES = 16;
export const LEAF_ELEMENT_BYTES = 16;
export const BUCKET_HEADER_BYTES = 16;
/** Bytes of meta before its checksum (the checksum covers them). */
export const META_CHECKSUMMED_BYTES = 56;
export const META_BYTES = 64;
/** The page size bbolt uses on etcd's platforms; the writer uses it. */
export const DEFAULT_PAGE_SIZE = 4096;
/** A freelist count of this value means the real count is in the first u64. */
export const FREELIST_COUNT_OVERFLOW = 0xffff;
/** The largest element count a page header holds. */
export const PAGE_COUNT_MAX = 0xffff;

export const PageFlag = {
  branch: 0x01,
  leaf: 0x02,
  meta: 0x04,
  freelist: 0x10,
} as const;

/** Leaf element flag: the value is a bucket header (and maybe an inline bucket). */
export const BUCKET_LEAF_FLAG = 0x01;

export interface BboltMeta {
  pageSize: number;
  flags: number;
  rootPgid: number;
  rootSequence: bigint;
  freelistPgid: number;
  /** Pages in use: ids 0 .. highWaterPgid-1. */
  highWaterPgid: number;
  txid: number;
}

export type BboltErrorCode = 'NotBbolt' | 'Truncated' | 'Malformed' | 'Unsupported';

/** A file that is not a readable bbolt database; `message` names the file and what is wrong. */
export class BboltFormatError extends Error {
  override name = 'BboltFormatError';
  constructor(readonly code: BboltErrorCode, message: string) {
    super(message);
  }
}

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const U64_MASK = 0xffffffffffffffffn;

/** FNV-1a, 64 bits (Go's hash/fnv New64a), over `bytes`: bbolt's meta checksum. */
export function fnv64a(bytes: Uint8Array): bigint {
  let h = FNV64_OFFSET;
  for (const b of bytes) {
    h ^= BigInt(b);
    h = (h * FNV64_PRIME) & U64_MASK;
  }
  return h;
}

/** Writes `meta` at byte `at` of `page` (the meta page's body, after its header), checksum included. */
export function encodeMeta(page: Buffer, at: number, meta: BboltMeta): void {
  page.writeUInt32LE(BBOLT_MAGIC, at);
  page.writeUInt32LE(BBOLT_VERSION, at + 4);
  page.writeUInt32LE(meta.pageSize, at + 8);
  page.writeUInt32LE(meta.flags, at + 12);
  writeU64(page, meta.rootPgid, at + 16);
  page.writeBigUInt64LE(meta.rootSequence, at + 24);
  writeU64(page, meta.freelistPgid, at + 32);
  writeU64(page, meta.highWaterPgid, at + 40);
  writeU64(page, meta.txid, at + 48);
  page.writeBigUInt64LE(fnv64a(page.subarray(at, at + META_CHECKSUMMED_BYTES)), at + META_CHECKSUMMED_BYTES);
}

/** The meta at byte `at`, or a reason it is not a valid one. */
export function decodeMeta(page: Buffer, at: number): BboltMeta | string {
  if (page.length < at + META_BYTES) return 'too short for a meta page';
  const magic = page.readUInt32LE(at);
  if (magic !== BBOLT_MAGIC) return `invalid magic 0x${magic.toString(16)} (bbolt's is 0x${BBOLT_MAGIC.toString(16)})`;
  const version = page.readUInt32LE(at + 4);
  if (version !== BBOLT_VERSION) return `version ${version}, expected ${BBOLT_VERSION}`;
  const checksum = page.readBigUInt64LE(at + META_CHECKSUMMED_BYTES);
  const computed = fnv64a(page.subarray(at, at + META_CHECKSUMMED_BYTES));
  if (checksum !== computed) return `meta checksum 0x${checksum.toString(16)} does not match its contents (0x${computed.toString(16)})`;
  const pageSize = page.readUInt32LE(at + 8);
  if (pageSize < 512 || pageSize > 1 << 20 || (pageSize & (pageSize - 1)) !== 0) return `page size ${pageSize} is not a power of two in 512..1 MiB`;
  const u64 = (o: number) => {
    const v = page.readBigUInt64LE(at + o);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v);
  };
  const meta: BboltMeta = {
    pageSize,
    flags: page.readUInt32LE(at + 12),
    rootPgid: u64(16),
    rootSequence: page.readBigUInt64LE(at + 24),
    freelistPgid: u64(32),
    highWaterPgid: u64(40),
    txid: u64(48),
  };
  if (meta.rootPgid < 0 || meta.highWaterPgid < 0 || meta.txid < 0) return 'meta field beyond 2^53';
  return meta;
}

export function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32LE(value >>> 0, at);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), at + 4);
}

/** A u64 that must fit a safe integer (page ids); -1 when it does not. */
export function readU64(buf: Buffer, at: number): number {
  const high = buf.readUInt32LE(at + 4);
  if (high >= 0x200000) return -1;
  return high * 0x1_0000_0000 + buf.readUInt32LE(at);
}
