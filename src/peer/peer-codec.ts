import protobuf from 'protobufjs';
import { isAbsolute, join } from 'node:path';
import { protocolDir } from '../platform/package-root.js';
import { assert } from '../platform/assert.js';
import { varintSize } from '../proto/varint.js';

/**
 * Frames of the peer protocol (protocol/peer/peer.proto) and their encoding.
 *
 * A frame is a 4-byte big-endian payload length, then one peerpb.Envelope. Worked example: a
 * RaftBatch carrying two raft messages of 3 and 0 bytes, [aa bb cc] and [], is
 *
 *   00 00 00 09            payload length 9
 *   1a 07                  Envelope field 3 (raft_batch), length-delimited, 7 bytes
 *   0a 03 aa bb cc         RaftBatch field 1 (messages), 3 bytes
 *   0a 00                  RaftBatch field 1 (messages), 0 bytes
 *
 * RaftBatch frames are the hot path, so encodeRaftBatchFrames writes that layout by hand into one
 * buffer (a test checks it against protobufjs byte for byte); every other frame, and all decoding,
 * goes through protobufjs. uint64 ids become bigint here, and only here; offsets and sizes
 * become number (asserted safe).
 */

export const PROTOCOL_VERSION = 1;
export const SUPPORTED_PROTOCOL_VERSIONS: ReadonlySet<number> = new Set([PROTOCOL_VERSION]);
export const FRAME_HEADER_BYTES = 4;

export const StreamKind = { Message: 0, Snapshot: 1 } as const;
export type StreamKind = (typeof StreamKind)[keyof typeof StreamKind];

export interface Handshake {
  clusterId: bigint;
  fromMemberId: bigint;
  toMemberId: bigint;
  protocolVersion: number;
  stream: StreamKind;
}

export interface HandshakeReply {
  accepted: boolean;
  reason: string;
  memberId: bigint;
  protocolVersion: number;
  /** The listener's cluster id (0n from a listener older than this field). */
  clusterId: bigint;
}

export interface SnapshotChunk {
  snapshotId: bigint;
  offset: number;
  data: Uint8Array;
  metadata: Uint8Array;
  last: boolean;
  totalBytes: number;
  sha256: Uint8Array;
}

export interface SnapshotAck {
  snapshotId: bigint;
  ok: boolean;
  reason: string;
}

export interface Ping {
  seq: number;
  sentAtMs: number;
}

/** One decoded frame. `none` is the empty Envelope (a zero-length frame): a no-op. */
export type Envelope =
  | { kind: 'none' }
  | { kind: 'handshake'; handshake: Handshake }
  | { kind: 'handshakeReply'; reply: HandshakeReply }
  | { kind: 'raftBatch'; messages: Uint8Array[] }
  | { kind: 'snapshotChunk'; chunk: SnapshotChunk }
  | { kind: 'snapshotAck'; ack: SnapshotAck }
  | { kind: 'ping'; ping: Ping }
  | { kind: 'pong'; pong: Ping };

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(protocolDir, target));
  root.loadSync(['peer/peer.proto'], { keepCase: true });
  root.resolveAll();
  return root;
}

const root = loadRoot();
export const EnvelopeType = root.lookupType('peerpb.Envelope');

const EMPTY = new Uint8Array(0);

function toBigInt(v: unknown): bigint {
  if (v == null) return 0n;
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'bigint') return v;
  const long = v as { high: number; low: number };
  return (BigInt(long.high >>> 0) << 32n) | BigInt(long.low >>> 0);
}

/** Decoded uint64 that must be a size or offset: refused (typed, by the caller) when unsafe. */
function toSafeNumber(v: unknown, what: string): number {
  const big = toBigInt(v);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new PeerDecodeError(`${what} ${big} is out of range`);
  return Number(big);
}

function toLong(v: bigint): protobuf.Long {
  assert(v >= 0n && v < 1n << 64n, () => `uint64 out of range: ${v}`);
  return new (protobuf.util.Long as any)(Number(v & 0xffffffffn) | 0, Number(v >> 32n) | 0, true);
}

/** A frame payload that is not a valid Envelope. Expected on a hostile network; closes the connection. */
export class PeerDecodeError extends Error {
  override name = 'PeerDecodeError';
}

/** Decodes one frame payload (the bytes after the length). Throws PeerDecodeError on garbage. */
export function decodeEnvelope(payload: Uint8Array): Envelope {
  if (payload.length === 0) return { kind: 'none' };
  let m: any;
  try {
    m = EnvelopeType.decode(payload);
  } catch (err) {
    throw new PeerDecodeError(`undecodable envelope: ${(err as Error).message}`);
  }
  if (m.raft_batch != null) {
    const messages: Uint8Array[] = m.raft_batch.messages ?? [];
    return { kind: 'raftBatch', messages };
  }
  if (m.ping != null) return { kind: 'ping', ping: { seq: toSafeNumber(m.ping.seq, 'ping seq'), sentAtMs: m.ping.sent_at_ms ?? 0 } };
  if (m.pong != null) return { kind: 'pong', pong: { seq: toSafeNumber(m.pong.seq, 'pong seq'), sentAtMs: m.pong.sent_at_ms ?? 0 } };
  if (m.snapshot_chunk != null) {
    const c = m.snapshot_chunk;
    return {
      kind: 'snapshotChunk',
      chunk: {
        snapshotId: toBigInt(c.snapshot_id),
        offset: toSafeNumber(c.offset, 'snapshot offset'),
        data: c.data ?? EMPTY,
        metadata: c.metadata ?? EMPTY,
        last: c.last === true,
        totalBytes: toSafeNumber(c.total_bytes, 'snapshot total_bytes'),
        sha256: c.sha256 ?? EMPTY,
      },
    };
  }
  if (m.snapshot_ack != null) {
    const a = m.snapshot_ack;
    return { kind: 'snapshotAck', ack: { snapshotId: toBigInt(a.snapshot_id), ok: a.ok === true, reason: a.reason ?? '' } };
  }
  if (m.handshake != null) {
    const h = m.handshake;
    const stream = h.stream ?? 0;
    if (stream !== StreamKind.Message && stream !== StreamKind.Snapshot) throw new PeerDecodeError(`unknown stream kind ${stream}`);
    return {
      kind: 'handshake',
      handshake: {
        clusterId: toBigInt(h.cluster_id),
        fromMemberId: toBigInt(h.from_member_id),
        toMemberId: toBigInt(h.to_member_id),
        protocolVersion: h.protocol_version ?? 0,
        stream,
      },
    };
  }
  if (m.handshake_reply != null) {
    const r = m.handshake_reply;
    return {
      kind: 'handshakeReply',
      reply: {
        accepted: r.accepted === true, reason: r.reason ?? '', memberId: toBigInt(r.member_id), protocolVersion: r.protocol_version ?? 0,
        clusterId: toBigInt(r.cluster_id),
      },
    };
  }
  // Only unknown fields: a newer peer's frame kind we do not know. Treated as garbage, since the
  // handshake already agreed on one protocol version.
  throw new PeerDecodeError('envelope carries no known frame kind');
}

function frame(envelope: object): Buffer {
  const body = EnvelopeType.encode(EnvelopeType.fromObject(envelope)).finish();
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

export function encodeHandshakeFrame(h: Handshake): Buffer {
  return frame({
    handshake: {
      cluster_id: toLong(h.clusterId), from_member_id: toLong(h.fromMemberId), to_member_id: toLong(h.toMemberId),
      protocol_version: h.protocolVersion, stream: h.stream,
    },
  });
}

export function encodeHandshakeReplyFrame(r: HandshakeReply): Buffer {
  return frame({
    handshake_reply: {
      accepted: r.accepted, reason: r.reason, member_id: toLong(r.memberId), protocol_version: r.protocolVersion, cluster_id: toLong(r.clusterId),
    },
  });
}

export function encodeSnapshotChunkFrame(c: SnapshotChunk): Buffer {
  return frame({
    snapshot_chunk: {
      snapshot_id: toLong(c.snapshotId), offset: toLong(BigInt(c.offset)), data: c.data, metadata: c.metadata,
      last: c.last, total_bytes: toLong(BigInt(c.totalBytes)), sha256: c.sha256,
    },
  });
}

export function encodeSnapshotAckFrame(a: SnapshotAck): Buffer {
  return frame({ snapshot_ack: { snapshot_id: toLong(a.snapshotId), ok: a.ok, reason: a.reason } });
}

export function encodePingFrame(p: Ping): Buffer {
  return frame({ ping: { seq: toLong(BigInt(p.seq)), sent_at_ms: p.sentAtMs } });
}

export function encodePongFrame(p: Ping): Buffer {
  return frame({ pong: { seq: toLong(BigInt(p.seq)), sent_at_ms: p.sentAtMs } });
}

/** Encodes an arbitrary Envelope-shaped object (protobufjs field names): for tests that forge frames. */
export function encodeRawEnvelopeFrame(envelope: object): Buffer {
  return frame(envelope);
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

const ENVELOPE_RAFT_BATCH_TAG = (3 << 3) | 2; // Envelope.raft_batch, length-delimited
const RAFT_BATCH_MESSAGES_TAG = (1 << 3) | 2; // RaftBatch.messages, length-delimited

/** Bytes one message adds to a RaftBatch body. */
export function raftMessageEncodedBytes(messageBytes: number): number {
  return 1 + varintSize(messageBytes) + messageBytes;
}

/** Frame bytes of a RaftBatch whose body (sum of raftMessageEncodedBytes) is bodyBytes. */
export function raftBatchFrameBytes(bodyBytes: number): number {
  return FRAME_HEADER_BYTES + 1 + varintSize(bodyBytes) + bodyBytes;
}

/**
 * Writes messages[start, end) as RaftBatch frames into one buffer, starting a new frame whenever
 * the next message would push a frame's payload over frameBytesMax. Every message must fit one
 * frame on its own (the caller drops those that do not, see raftBatchFrameBytes).
 */
export function encodeRaftBatchFrames(messages: readonly Uint8Array[], start: number, end: number, frameBytesMax: number): Buffer {
  // Pass 1: cut into frames and size the buffer.
  const cuts: number[] = [];
  const bodies: number[] = [];
  let total = 0;
  let body = 0;
  let frameStart = start;
  for (let i = start; i < end; i++) {
    const add = raftMessageEncodedBytes(messages[i]!.length);
    if (i > frameStart && raftBatchFrameBytes(body + add) - FRAME_HEADER_BYTES > frameBytesMax) {
      cuts.push(i);
      bodies.push(body);
      total += raftBatchFrameBytes(body);
      body = 0;
      frameStart = i;
    }
    body += add;
  }
  cuts.push(end);
  bodies.push(body);
  total += raftBatchFrameBytes(body);
  // Pass 2: write.
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  let i = start;
  for (let f = 0; f < cuts.length; f++) {
    const frameBody = bodies[f]!;
    out.writeUInt32BE(1 + varintSize(frameBody) + frameBody, pos);
    pos += FRAME_HEADER_BYTES;
    out[pos++] = ENVELOPE_RAFT_BATCH_TAG;
    pos = writeVarint(out, pos, frameBody);
    for (const cut = cuts[f]!; i < cut; i++) {
      const m = messages[i]!;
      out[pos++] = RAFT_BATCH_MESSAGES_TAG;
      pos = writeVarint(out, pos, m.length);
      out.set(m, pos);
      pos += m.length;
    }
  }
  assert(pos === total, () => `raft batch encode wrote ${pos} bytes, sized ${total}`);
  return out;
}
