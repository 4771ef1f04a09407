/**
 * Socket reads into one shared buffer, for connections with many small reads (HTTP/2 clients).
 *
 * Why: for each read, node's default path mallocs a 64 KiB buffer, reallocs it down to the bytes
 * read and hands it to JS as an ArrayBuffer with its own external backing store (counted against
 * the heap's external memory: more GC). With 500 grpc-go clients of one call each (`etcdctl check
 * perf --load=l`) there are two reads per put (the client's WINDOW_UPDATE + PING after reading a
 * reply, then its next request), each of ~100 B. net.Socket's `onread` option (node >= 12) reads
 * into a buffer of the caller's instead; node offers it only to sockets it creates for `connect`,
 * not to accepted ones, so it is installed here the way the Socket constructor does it: the
 * socket's kBuffer/kBufferCb slots and its handle's useUserBuffer. Where those are missing (another
 * node, a test's stand-in socket), reads stay on 'data'.
 *
 * One buffer serves every socket: reads are delivered one at a time on the main thread, and each
 * read's bytes are copied out before the next read can land (Buffer.allocUnsafe: small reads come
 * from node's shared pool, no malloc), so what the consumer keeps is its own, as with 'data'.
 * Pause/resume keep working: for a socket with kBuffer, net.Socket's pause() stops the handle's
 * reads and resume() starts them again. End of stream and errors take node's usual path.
 */
import type { Socket } from 'node:net';
import { Limits } from '../platform/limits.js';

let shared: Buffer | undefined;

/** The socket's symbol-keyed slot named `description`, if it has one (net.Socket sets them all in its constructor). */
function slot(socket: Socket, description: string): symbol | undefined {
  for (const s of Object.getOwnPropertySymbols(socket)) if (s.description === description) return s;
  return undefined;
}

/**
 * Delivers the socket's reads to `onChunk`, each chunk a fresh Buffer. Installed on a socket that is
 * paused or inside one of its own 'data' events (its reads until now went to 'data' listeners; a
 * chunk node still buffers comes out on 'data' at resume, before any read of the new path), so the
 * caller keeps `onChunk` on 'data' too. Returns whether the shared-buffer path is in use.
 */
export function readIntoSharedBuffer(socket: Socket, onChunk: (chunk: Buffer) => void): boolean {
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (buffer: Uint8Array) => void } | null })._handle;
  if (handle === undefined || handle === null || typeof handle.useUserBuffer !== 'function') return false;
  const bufferSlot = slot(socket, 'kBuffer');
  const callbackSlot = slot(socket, 'kBufferCb');
  const slots = socket as unknown as Record<symbol, unknown>;
  // Only a socket that was not given its own onread (both slots present and empty).
  if (bufferSlot === undefined || callbackSlot === undefined || slots[bufferSlot] !== null || slots[callbackSlot] !== null) return false;
  shared ??= Buffer.allocUnsafe(Limits.http2SocketReadBufferBytes);
  const buffer = shared;
  slots[bufferSlot] = buffer;
  slots[callbackSlot] = (bytes: number): void => {
    const chunk = Buffer.allocUnsafe(bytes);
    buffer.copy(chunk, 0, 0, bytes);
    onChunk(chunk);
  };
  handle.useUserBuffer(buffer);
  return true;
}
