/**
 * A long-running client command (etcdctl or keyraftctl `elect` / `lock`) as the tests drive it:
 * spawned through the harness (killed by PID in killAll), its output collected, waited on by line
 * count (never by time), interrupted with a signal by PID, and its exit code read.
 */
import type { ChildProcess } from 'node:child_process';
import { spawnTracked } from '../integration/harness.js';

export class CtlProcess {
  private stdoutText = '';
  private stderrText = '';
  private readonly child: ChildProcess;
  private readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];

  constructor(command: string, args: string[]) {
    this.child = spawnTracked(command, args, { env: { ETCDCTL_API: '3' } });
    this.child.stdout!.on('data', (d) => { this.stdoutText += d; this.wake(); });
    this.child.stderr!.on('data', (d) => { this.stderrText += d; this.wake(); });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => { this.wake(); resolve(code); }));
  }

  get stdout(): string {
    return this.stdoutText;
  }

  get stderr(): string {
    return this.stderrText;
  }

  /** Resolves once stdout holds `count` lines; rejects if the process exits first. */
  async lines(count: number): Promise<string[]> {
    for (;;) {
      const lines = this.stdoutText.split('\n');
      if (lines.length - 1 >= count) return lines.slice(0, count);
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`exited (${this.child.exitCode}) after ${lines.length - 1} of ${count} lines: ${this.stdoutText} ${this.stderrText}`);
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Sends `signal` by PID and returns the exit code. */
  async interrupt(signal: NodeJS.Signals = 'SIGINT'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) process.kill(this.child.pid!, signal);
    return this.exited;
  }

  exit(): Promise<number | null> {
    return this.exited;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
