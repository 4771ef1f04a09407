/**
 * Maintenance.Snapshot (a server-stream row of methods.ts): the member's state at one revision in
 * etcd's snapshot format (server/etcd-snapshots.ts), sent as etcd 3.4 sends it
 * (etcdserver/api/v3rpc/maintenance.go): SnapshotResponse messages of 32 KiB of the bbolt file,
 * each with remaining_bytes = database bytes not yet sent, then one message holding the SHA-256
 * trailer with remaining_bytes 0. No header, as etcd 3.4.
 *
 * Flow control: a chunk is read from the file only once the call has taken the previous one (send
 * false -> wait for onDrain), so a slow client holds one chunk in memory and a file on disk, never
 * the snapshot. A client that goes away (cancel, reset, deadline) stops the reads and the file is
 * removed.
 */
import type { ServerStreamCall, StreamHandler } from '../grpc/grpc-method.js';
import { varintSize, writeVarint } from '../proto/varint.js';
import type { MemberApi } from '../server/raft-kv.js';

export function openSnapshotStream(member: MemberApi, call: ServerStreamCall<unknown>): StreamHandler<unknown> {
  let started = false;
  let wake: (() => void) | null = null;
  const resume = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  call.onDrain(resume);
  call.onCancel(resume);
  const run = async () => {
    const snapshot = await member.snapshot();
    try {
      const dbBytes = snapshot.totalBytes - 32;
      let sent = 0;
      for (;;) {
        if (call.ended) return;
        const next = await snapshot.chunks.next();
        if (next.done) break;
        const chunk = next.value;
        // The trailer is the last chunk: it carries remaining_bytes 0, as etcd's hash message.
        sent = Math.min(dbBytes, sent + chunk.length);
        const more = call.sendEncoded(encodeSnapshotResponse(sent >= dbBytes ? 0 : dbBytes - sent, chunk));
        if (!more && !call.ended) await new Promise<void>((resolve) => { wake = resolve; });
      }
      call.end();
    } finally {
      await snapshot.close();
    }
  };
  return {
    onMessage() {
      // server-stream: exactly one request (SnapshotRequest has no fields).
      if (started) return;
      started = true;
      run().catch((err: unknown) => call.end(err));
    },
  };
}

/** SnapshotResponse {remaining_bytes = 2 (uint64), blob = 3 (bytes)}, zero fields omitted as Go does. */
export function encodeSnapshotResponse(remainingBytes: number, blob: Buffer): Uint8Array {
  const remainingSize = remainingBytes === 0 ? 0 : 1 + varintSize(remainingBytes);
  const out = Buffer.allocUnsafe(remainingSize + 1 + varintSize(blob.length) + blob.length);
  let at = 0;
  if (remainingBytes !== 0) {
    out[at++] = (2 << 3) | 0;
    at = writeVarint(out, at, remainingBytes);
  }
  out[at++] = (3 << 3) | 2;
  at = writeVarint(out, at, blob.length);
  blob.copy(out, at);
  return out;
}

/**
 * A SnapshotResponse as etcd's gateway writes it (jsonpb, original names, zero fields omitted,
 * uint64 as a string): {"remaining_bytes":"12288","blob":"<base64>"}; the last one {"blob":...}.
 */
export function snapshotResponseJson(response: { remaining_bytes?: number; blob?: Uint8Array }): string {
  const remaining = response.remaining_bytes ?? 0;
  const blob = response.blob ?? new Uint8Array(0);
  const fields: string[] = [];
  if (remaining !== 0) fields.push(`"remaining_bytes":"${remaining}"`);
  if (blob.length > 0) fields.push(`"blob":"${Buffer.from(blob.buffer, blob.byteOffset, blob.length).toString('base64')}"`);
  return `{${fields.join(',')}}`;
}
