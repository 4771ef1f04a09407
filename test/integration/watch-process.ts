import { spawn } from 'node:child_process';

/** A long-running client command (etcdctl watch, keyraftctl watch) read until its output says enough. */
export interface WatchRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The command exited by itself (rather than being killed once `until` held). */
  exited: boolean;
}

/**
 * Spawns `command`, feeds `input` (stdin stays open unless `closeStdin`), and kills it by PID as
 * soon as `until(stdout, stderr)` holds or it exits. A safety bound (not a timing assertion)
 * kills a command that never gets there, and the caller's assertion then fails on its output.
 */
export function runUntil(
  command: string,
  args: string[],
  options: {
    input?: string;
    closeStdin?: boolean;
    /** Lines to type once the output satisfies `when` (in order; each once). */
    script?: Array<{ when: (stdout: string) => boolean; send: string }>;
    until: (stdout: string, stderr: string) => boolean;
    env?: NodeJS.ProcessEnv;
    boundMs?: number;
  },
): Promise<WatchRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ETCDCTL_API: '3', ...options.env } });
    let stdout = '';
    let stderr = '';
    let killed = false;
    const kill = (): void => {
      if (killed || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      killed = true;
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const script = [...(options.script ?? [])];
    const check = (): void => {
      while (script.length > 0 && script[0]!.when(stdout)) child.stdin.write(script.shift()!.send);
      if (options.until(stdout, stderr)) kill();
    };
    child.stdout.on('data', (d) => { stdout += d; check(); });
    child.stderr.on('data', (d) => { stderr += d; check(); });
    const bound = setTimeout(kill, options.boundMs ?? 30_000);
    child.on('error', (err) => { clearTimeout(bound); reject(err); });
    child.on('exit', (code) => {
      clearTimeout(bound);
      resolve({ code, stdout, stderr, exited: !killed });
    });
    child.stdin.on('error', () => {});
    if (options.input !== undefined) child.stdin.write(options.input);
    if (options.closeStdin) child.stdin.end();
  });
}
