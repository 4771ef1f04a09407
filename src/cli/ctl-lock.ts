/**
 * keyraftctl lock <lockname> [exec-command arg1 arg2 ...], as etcdctl 3.4's: a session (lease of
 * --ttl seconds, kept alive), then the lock (here the server's Lock service, v3lockpb, where
 * etcdctl runs clientv3's Mutex on the client: the same recipe, server/lock-service.ts). Held:
 *
 *   - with a command: runs it with ETCD_LOCK_KEY (the held key) and ETCD_LOCK_REV (the revision
 *     the lock was taken at) in its environment, its output straight through, then unlocks; a
 *     command that fails is Go's exec error ("exit status 3"), exit code 1;
 *   - without: prints the held key as `get` does, and holds until SIGINT/SIGTERM (then unlocks,
 *     exit 0) or until the session's lease is gone ("session expired", exit 1).
 *
 * Interrupted while waiting, the Lock call is cancelled (the server gives up the waiting key) and
 * the command fails with clientv3's "context canceled".
 */
import { spawn } from 'node:child_process';
import type { LockResponse, RangeResponse } from '../proto/etcd-types.js';
import type { CommandContext } from './ctl-context.js';
import { CtlError, ExitCode } from './ctl-exit.js';
import type { FlagSpec } from './ctl-args.js';
import { interruptSignal, Session } from './ctl-session.js';

export const LOCK_FLAGS: FlagSpec[] = [
  { name: 'ttl', kind: 'int', defaultText: '10', usage: 'timeout for session' },
];

export async function runLock(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.args.length === 0) throw new CtlError(ExitCode.BadArgs, 'lock takes a lock name argument and an optional command to execute');
  const [name, ...command] = ctx.args as [string, ...string[]];
  const interrupt = interruptSignal();
  let session: Session | undefined;
  try {
    session = await Session.open(ctx, Number(ctx.flags.int('ttl')));
    const held = await ctx.client().call<object, LockResponse>('v3lockpb.Lock', 'Lock', { name: Buffer.from(name), lease: session.lease },
      { deadlineMs: ctx.deadline(), unbounded: true, signal: interrupt.signal });
    const unlock = () => ctx.client().call<object, object>('v3lockpb.Lock', 'Unlock', { key: held.key }, { deadlineMs: ctx.deadline() });
    if (command.length > 0) {
      const env = { ETCD_LOCK_KEY: held.key.toString(), ETCD_LOCK_REV: String(held.header?.revision ?? 0), ...process.env };
      await ctx.out.flush?.();
      const failure = await runCommand(command, env);
      await unlock();
      if (failure !== undefined) throw new CtlError(ExitCode.Error, failure);
      return ExitCode.Success;
    }
    const got = await ctx.client().call<object, RangeResponse>('KV', 'Range', { key: held.key }, { deadlineMs: ctx.deadline() });
    if (got.kvs.length === 0) throw new CtlError(ExitCode.Error, 'lock lost on init');
    ctx.printer.get(got);
    await ctx.out.flush?.();
    const how = await Promise.race([interrupt.interrupted.then(() => 'interrupted' as const), session.done.then(() => 'expired' as const)]);
    if (how === 'expired') throw new CtlError(ExitCode.Error, 'session expired');
    await unlock();
    return ExitCode.Success;
  } finally {
    session?.close();
    interrupt.release();
  }
}

/** Runs the command with the terminal's output; Go's exec error text if it fails, else undefined. */
export function runCommand(command: readonly string[], env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const [file, ...args] = command as [string, ...string[]];
  return new Promise((resolve) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' && !file.includes('/')) resolve(`exec: ${JSON.stringify(file)}: executable file not found in $PATH`);
      else if (err.code === 'ENOENT') resolve(`fork/exec ${file}: no such file or directory`);
      else if (err.code === 'EACCES') resolve(`fork/exec ${file}: permission denied`);
      else resolve(`fork/exec ${file}: ${err.message}`);
    });
    child.once('exit', (code, signal) => {
      if (signal !== null) resolve(`signal: ${goSignalName(signal)}`);
      else resolve(code === 0 ? undefined : `exit status ${code}`);
    });
  });
}

/** Go's names for the signals a command commonly dies of (os.Signal's String). */
function goSignalName(signal: NodeJS.Signals): string {
  const names: Partial<Record<NodeJS.Signals, string>> = {
    SIGKILL: 'killed', SIGTERM: 'terminated', SIGINT: 'interrupt', SIGSEGV: 'segmentation fault', SIGABRT: 'aborted', SIGHUP: 'hangup', SIGPIPE: 'broken pipe',
  };
  return names[signal] ?? signal;
}
