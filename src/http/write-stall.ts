/**
 * Whether a connection's queued output is moving: the write-stall deadline (Limits.clientWriteStallMs)
 * of HTTP/2 connections and HTTP/1.1 sockets alike. Sampled by a periodic sweep, never per write.
 *
 * "Moving" is any sign that bytes left us since the last sample: a write completed (node counts a
 * write done once libuv wrote all of it), libuv's queue shrank (a 13 MB reply is one write: the
 * kernel taking part of it shows only there), or, for HTTP/2, more DATA was framed out of the
 * streams' queues (the client opened its windows). Example: a reply of 50 MB written at once to a
 * client that reads 4 MB and stops: writableLength stays 50 MB, libuv's queue goes 50 -> 46 MB and
 * then stays; the first sample after the stop sees no change and starts the clock.
 */
import type { Socket } from 'node:net';

/** libuv's bytes not yet taken by the kernel. Node's own http2 reads the same field; 0 if absent. */
function libuvQueuedBytes(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: number } | null })._handle;
  return handle?.writeQueueSize ?? 0;
}

export class WriteStall {
  /** When the output was last seen moving (or began to wait), or 0 while there is no backlog. */
  private since = 0;
  private completedBytes = 0;
  private queuedBytes = 0;
  private framedBytes = 0;

  /**
   * One sample: `backlogBytes` is what the connection holds for its client (0: nothing waits),
   * `framedBytes` a counter of bytes moved out of the connection's own queues (0 if it has none).
   * True when output has waited without moving for longer than `stallMs`.
   */
  stalled(socket: Socket, backlogBytes: number, framedBytes: number, now: number, stallMs: number): boolean {
    if (backlogBytes === 0) {
      this.since = 0;
      return false;
    }
    // bytesWritten counts bytes handed to the socket, buffered ones included: less what is still
    // buffered, it only grows as writes complete.
    const completed = socket.bytesWritten - socket.writableLength;
    const queued = libuvQueuedBytes(socket);
    const moved = this.since === 0 || completed > this.completedBytes || queued < this.queuedBytes || framedBytes > this.framedBytes;
    this.completedBytes = completed;
    this.queuedBytes = queued;
    this.framedBytes = framedBytes;
    if (moved) {
      this.since = now;
      return false;
    }
    return now - this.since > stallMs;
  }
}
