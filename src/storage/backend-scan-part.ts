import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { FromScanWorker, PackedChunk, ScanWorkerData, ToScanWorker } from './backend-scan-protocol.js';

/**
 * The main thread's end of one scan worker (workers/backend-scan.ts, protocol in
 * backend-scan-protocol.ts): the worker reads one key range and sends its records in packed
 * chunks; next() hands them out in order, and each one handed out is acknowledged to the worker
 * (flow control: at most `chunksInFlightMax` sent and not yet handed out). Backend.scanPacked
 * runs several at once over consecutive ranges and reads them one after another.
 *
 * Invariant: `queue` holds chunks received and not handed out; `waiter` is set only while it is empty.
 */
export class BackendScanPart {
  private readonly port: MessagePort;
  private readonly queue: PackedChunk[] = [];
  private waiter: (() => void) | null = null;
  private doneRecords = -1;
  private failure: Error | null = null;
  private received = 0;
  /** Resolves with the worker's exit code once it is gone (its LevelDB handle closed). */
  readonly exited: Promise<number>;
  private readonly location: string;

  constructor(workerPath: string, data: Omit<ScanWorkerData, 'port'>) {
    this.location = data.location;
    const { port1, port2 } = new MessageChannel();
    this.port = port1 as unknown as MessagePort;
    const worker = new Worker(workerPath, { workerData: { ...data, port: port2 } satisfies ScanWorkerData, transferList: [port2] });
    this.exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    port1.on('message', (message: FromScanWorker) => this.handle(message));
    worker.once('error', (err) => this.fail(new Error(`backend scan worker failed: ${err.message}`)));
    void this.exited.then((code) => {
      // Its last messages may not have been delivered yet when the exit is seen.
      for (let m = receiveMessageOnPort(port1); m !== undefined; m = receiveMessageOnPort(port1)) this.handle(m.message as FromScanWorker);
      if (this.doneRecords < 0) this.fail(new Error(`backend scan worker exited with code ${code} before it was done`));
      port1.close();
    });
  }

  /** The next chunk in key order, or null when the range is done; throws what the worker reported. */
  async next(): Promise<PackedChunk | null> {
    for (;;) {
      const chunk = this.queue.shift();
      if (chunk !== undefined) {
        this.port.postMessage({ kind: 'ack' } satisfies ToScanWorker);
        return chunk;
      }
      if (this.failure !== null) throw this.failure;
      if (this.doneRecords >= 0) {
        if (this.doneRecords !== this.received) throw new Error(`backend scan worker sent ${this.doneRecords} records, ${this.received} received`);
        return null;
      }
      await new Promise<void>((resolve) => { this.waiter = resolve; });
    }
  }

  /** Tells the worker to stop reading (it closes its handle and exits; await `exited`). */
  stop(): void {
    this.port.postMessage({ kind: 'stop' } satisfies ToScanWorker);
  }

  private handle(message: FromScanWorker): void {
    if (message.kind === 'chunk') {
      this.queue.push({ records: Buffer.from(message.records), recordsBytes: message.recordsBytes, tails: Buffer.from(message.tails), count: message.count });
      this.received += message.count;
    } else if (message.kind === 'done') {
      this.doneRecords = message.records;
    } else {
      this.fail(new Error(`backend scan of ${this.location} failed: ${message.message}`));
      return;
    }
    this.wake();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }
}

type MessagePort = import('node:worker_threads').MessagePort;
