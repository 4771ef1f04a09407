/**
 * Standard input for keyraftctl, read asynchronously (never a blocking fs read): all of it, for
 * `put KEY` without a value, or line by line, for `txn`. A line counts only when its newline
 * has arrived; at end of input a trailing partial line is not a line, which is how etcdctl's
 * bufio ReadString('\n') behaves and why an unterminated txn block fails with "EOF".
 */
import type { Readable } from 'node:stream';
import type { LineSource } from './ctl-txn.js';

export class StdinReader implements LineSource {
  private buffered = Buffer.alloc(0);
  private ended = false;
  private iterator: AsyncIterator<Buffer | string> | undefined;
  private used = false;

  constructor(private readonly stream: Readable) {}

  /** Everything left on the stream, as raw bytes. */
  async readAll(): Promise<Buffer> {
    while (await this.fill());
    const all = this.buffered;
    this.buffered = Buffer.alloc(0);
    return all;
  }

  async readLine(): Promise<string | undefined> {
    for (;;) {
      const newline = this.buffered.indexOf(0x0a);
      if (newline >= 0) {
        const line = this.buffered.subarray(0, newline + 1).toString('utf8');
        this.buffered = this.buffered.subarray(newline + 1);
        return line;
      }
      if (!(await this.fill())) return undefined;
    }
  }

  /** Stops reading so an open terminal or pipe does not keep the process alive. */
  close(): void {
    if (this.used) this.stream.destroy();
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    this.used = true;
    this.iterator ??= this.stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
    const next = await this.iterator.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
    this.buffered = Buffer.concat([this.buffered, chunk]);
    return true;
  }
}
