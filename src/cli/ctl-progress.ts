/**
 * A one-line progress bar for long keyraftctl commands (snapshot save and restore), drawn only
 * when the stream is a terminal (etcdctl 3.5 draws one on save; scripts and pipes get nothing
 * extra), redrawn at most every REDRAW_MS, and erased when done so the command's own output
 * follows on a clean line.
 */
import { humanizeBytes } from './ctl-go-text.js';

const REDRAW_MS = 100;
const BAR_WIDTH = 30;

export class ProgressBar {
  private lastDraw = 0;
  private drawn = false;

  constructor(private readonly stream: NodeJS.WriteStream, private readonly label: string) {}

  /** A bar on process.stdout when it is a terminal, else null. */
  static forStdout(label: string): ProgressBar | null {
    return process.stdout.isTTY === true ? new ProgressBar(process.stdout, label) : null;
  }

  update(doneBytes: number, totalBytes: number): void {
    const now = Date.now();
    if (now - this.lastDraw < REDRAW_MS && doneBytes < totalBytes) return;
    this.lastDraw = now;
    const fraction = totalBytes > 0 ? Math.min(1, doneBytes / totalBytes) : 0;
    const filled = Math.round(fraction * BAR_WIDTH);
    const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? '>' : '') + ' '.repeat(BAR_WIDTH - filled);
    this.stream.write(`\r${this.label} [${bar}] ${Math.floor(fraction * 100)}% ${humanizeBytes(doneBytes)} / ${humanizeBytes(totalBytes)}`);
    this.drawn = true;
  }

  finish(): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
  }
}
