#!/usr/bin/env node
/**
 * keyraftctl: the etcdctl-compatible command-line client. It speaks the etcd v3 gRPC API, so it
 * works against keyraft and against etcd alike, and prints what etcdctl 3.4 prints (same
 * commands, flags, output formats, error texts and exit codes), so scripts can swap one for the
 * other.
 *
 * This file is the composition root: it parses the command line (ctl-args.ts), builds the output
 * printer, the clients and stdin, runs one command (ctl-commands.ts) and turns a CtlError into
 * "Error: <message>" on stderr and etcdctl's exit code. Output is collected and written when the
 * command ends, stdout before stderr.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packageRoot } from '../platform/package-root.js';
import { formatUsage, parseCommandLine } from './ctl-args.js';
import { EtcdClient } from './ctl-client.js';
import { COMMANDS, GLOBAL_FLAGS } from './ctl-commands.js';
import type { CommandContext } from './ctl-context.js';
import { CtlError, ExitCode, UsageError } from './ctl-exit.js';
import { isOutputFormat, Printer, type Output } from './ctl-printer.js';
import { StdinReader } from './ctl-stdin.js';

const PROGRAM = 'keyraftctl';

async function packageVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs keyraftctl with `argv` (arguments after the script) and returns the exit code. */
export async function runKeyraftctl(argv: readonly string[], collected: Output, stdin: StdinReader, env: NodeJS.ProcessEnv, live: Output = collected): Promise<number> {
  let out = collected;
  const specs = COMMANDS.map((c) => c.spec);
  const clients: EtcdClient[] = [];
  try {
    const parsed = parseCommandLine(argv, specs, GLOBAL_FLAGS, env, PROGRAM);
    const command = COMMANDS.find((c) => c.spec === parsed.command);
    if (parsed.help || !command) {
      const groupSpecs = parsed.group ? specs.filter((s) => s.path[0] === parsed.group) : specs;
      out.stdout(formatUsage(PROGRAM, parsed.command, groupSpecs, GLOBAL_FLAGS));
      return ExitCode.Success;
    }
    // A command that prints as it goes (watch) writes straight through.
    if (command.streamsOutput) out = live;
    const format = parsed.flags.string('write-out');
    if (command.usesPrinter && !isOutputFormat(format)) throw new CtlError(ExitCode.BadFeature, 'unsupported output format');
    const endpoints = parsed.flags.stringSlice('endpoints');
    const commandTimeoutMs = parsed.flags.durationMs('command-timeout');
    let shared: EtcdClient | undefined;
    const ctx: CommandContext = {
      args: parsed.args,
      separatorAt: parsed.separatorAt,
      flags: parsed.flags,
      out,
      printer: new Printer(isOutputFormat(format) ? format : 'simple', out, parsed.flags.bool('hex')),
      stdin,
      client: () => {
        if (!shared) {
          shared = new EtcdClient(endpoints);
          clients.push(shared);
        }
        return shared;
      },
      clientFor: (endpoint) => {
        const client = new EtcdClient([endpoint]);
        clients.push(client);
        return client;
      },
      deadline: () => Date.now() + commandTimeoutMs,
      version: await packageVersion(),
    };
    return await command.run(ctx);
  } catch (err) {
    if (!(err instanceof CtlError)) throw err;
    out.stderr(`Error: ${err.message}\n`);
    if (err instanceof UsageError) {
      if (err.message.startsWith('unknown command')) out.stderr(`Run '${err.commandPath} --help' for usage.\n`);
      else {
        const spec = specs.find((s) => [PROGRAM, ...s.path].join(' ') === err.commandPath);
        out.stdout(formatUsage(PROGRAM, spec, specs, GLOBAL_FLAGS));
      }
    }
    return err.exitCode;
  } finally {
    for (const client of clients) client.close();
    stdin.close();
  }
}

async function main(): Promise<void> {
  const stdoutChunks: (string | Buffer)[] = [];
  const stderrChunks: (string | Buffer)[] = [];
  const out: Output = { stdout: (c) => stdoutChunks.push(c), stderr: (c) => stderrChunks.push(c) };
  // Interactive txn prompts must appear before the input they ask for: write them at once.
  const interactive = process.stdin.isTTY === true;
  const direct: Output = {
    stdout: (c) => process.stdout.write(c),
    stderr: (c) => process.stderr.write(c),
    flush: () => new Promise<void>((resolve) => process.stdout.write('', () => process.stderr.write('', () => resolve()))),
  };
  const code = await runKeyraftctl(process.argv.slice(2), interactive ? direct : out, new StdinReader(process.stdin), process.env, direct);
  for (const chunk of stdoutChunks) process.stdout.write(chunk);
  for (const chunk of stderrChunks) process.stderr.write(chunk);
  process.exitCode = code;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    // A bug, not an expected failure: show it whole.
    process.stderr.write(`keyraftctl: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 2;
  });
}
