import type { CommandSpec, ParsedFlags } from './ctl-args.js';
import type { EtcdClient } from './ctl-client.js';
import type { ExitCode } from './ctl-exit.js';
import type { Output, Printer } from './ctl-printer.js';
import type { StdinReader } from './ctl-stdin.js';

/**
 * What a keyraftctl command runs with, and what a command is: the shapes the command table
 * (ctl-commands.ts) and the command files (ctl-lease.ts, ctl-snapshot.ts, ctl-watch.ts) share, in
 * a file of their own so that the table imports the command files and not the other way round.
 */
export interface CommandContext {
  args: string[];
  /** Where `--` stood among args (watch's `-- command`). */
  separatorAt?: number;
  flags: ParsedFlags;
  out: Output;
  printer: Printer;
  stdin: StdinReader;
  /** The client for --endpoints, created on first use and closed by the entry point. */
  client(): EtcdClient;
  /** A client for one endpoint (endpoint status and health ask each endpoint itself). */
  clientFor(endpoint: string): EtcdClient;
  /** Absolute deadline for one RPC: now + --command-timeout. */
  deadline(): number;
  version: string;
}

export interface Command {
  spec: CommandSpec;
  /** Whether the command prints through --write-out (and so validates it first). */
  usesPrinter: boolean;
  /** Prints as it goes (watch) instead of once at the end. */
  streamsOutput?: boolean;
  run(ctx: CommandContext): Promise<ExitCode>;
}
