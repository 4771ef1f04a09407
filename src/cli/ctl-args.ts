/**
 * Command-line parsing with the rules of etcdctl's libraries (cobra + pflag), so the same
 * command lines work and fail the same way:
 *
 * - Flags and positionals may be interleaved: `put foo bar --prev-kv` equals `put --prev-kv foo bar`.
 * - `--name=value`, `--name value`, `-w json`, `-wjson`, `-w=json`; a bool flag takes no separate
 *   value (`--prefix`, `--prefix=false`); `--` ends flag parsing.
 * - A slice flag (--endpoints) splits on commas and accumulates when repeated.
 * - Errors are pflag's texts: `unknown flag: --bogus`, `unknown shorthand flag: 'x' in -x`,
 *   `flag needs an argument: --rev`, `invalid argument "abc" for "--rev" flag: strconv...`.
 * - A global flag not given on the command line is read from ETCDCTL_<NAME> (ETCDCTL_ENDPOINTS,
 *   ETCDCTL_WRITE_OUT, ...), as etcdctl does; giving both is an error, as in etcdctl 3.4.
 *
 * Worked example: `-w json --endpoints=a:1,b:2 get k --rev 5` selects command `get`, positionals
 * ["k"], flags {write-out: "json", endpoints: ["a:1","b:2"], rev: 5n}.
 */
import { assert } from '../platform/assert.js';
import { CtlError, ExitCode, UsageError } from './ctl-exit.js';
import { goParseDurationMs, goParseInt, goQuote, GoSyntaxError } from './ctl-go-text.js';

export type FlagKind = 'bool' | 'string' | 'int' | 'duration' | 'stringSlice';
export type FlagValue = boolean | string | bigint | number | string[];

export interface FlagSpec {
  name: string;
  short?: string;
  kind: FlagKind;
  /** Default in the flag's own syntax, as `--help` prints it ("5s", "0", "l"). */
  defaultText: string;
  usage: string;
}

export interface CommandSpec {
  /** ["get"], ["endpoint", "status"]. */
  path: string[];
  /** Usage line after the program name: "get [options] <key> [range_end]". */
  use: string;
  summary: string;
  flags: FlagSpec[];
}

export interface ParsedCommandLine {
  /** undefined when only global flags (or nothing) were given, or a group without subcommand. */
  command: CommandSpec | undefined;
  /** The group named when no subcommand followed ("endpoint", "member"). */
  group: string | undefined;
  args: string[];
  /** Where a `--` stood among `args` (the positional args after it start there), undefined without one. */
  separatorAt?: number;
  flags: ParsedFlags;
  help: boolean;
}

/** Parsed flag values with their defaults filled in; typed getters assert the kind. */
export class ParsedFlags {
  constructor(
    private readonly values: Map<string, FlagValue>,
    private readonly changed: Set<string>,
  ) {}

  isSet(name: string): boolean {
    return this.changed.has(name);
  }

  bool(name: string): boolean {
    return this.get(name, 'boolean') as boolean;
  }

  string(name: string): string {
    return this.get(name, 'string') as string;
  }

  int(name: string): bigint {
    return this.get(name, 'bigint') as bigint;
  }

  durationMs(name: string): number {
    return this.get(name, 'number') as number;
  }

  stringSlice(name: string): string[] {
    const value = this.values.get(name);
    assert(Array.isArray(value), () => `flag --${name} is not defined as a string slice`);
    return value;
  }

  private get(name: string, type: string): FlagValue {
    const value = this.values.get(name);
    assert(typeof value === type, () => `flag --${name} is not defined as ${type}`);
    return value!;
  }
}

export function parseFlagValue(spec: FlagSpec, text: string): FlagValue {
  switch (spec.kind) {
    case 'bool': {
      if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
      if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
      throw new GoSyntaxError(`strconv.ParseBool: parsing ${goQuote(text)}: invalid syntax`);
    }
    case 'string': return text;
    case 'int': return goParseInt(text, 10);
    case 'duration': return goParseDurationMs(text);
    case 'stringSlice': return text === '' ? [] : text.split(',');
  }
}

function flagDisplayName(spec: FlagSpec): string {
  return spec.short ? `-${spec.short}, --${spec.name}` : `--${spec.name}`;
}

/** The environment variable etcdctl reads a global flag from: write-out -> ETCDCTL_WRITE_OUT. */
export function flagEnvName(name: string): string {
  return `ETCDCTL_${name.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * Parses argv (without node and script) against the global flags and the command table.
 * `programName` appears in "unknown command" errors.
 */
export function parseCommandLine(
  argv: readonly string[],
  commands: readonly CommandSpec[],
  globalFlags: readonly FlagSpec[],
  env: NodeJS.ProcessEnv,
  programName: string,
): ParsedCommandLine {
  const groups = new Set(commands.filter((c) => c.path.length > 1).map((c) => c.path[0]!));
  let command: CommandSpec | undefined;
  let group: string | undefined;
  const args: string[] = [];
  const values = new Map<string, FlagValue>();
  const changed = new Set<string>();
  let help = false;
  let separatorAt: number | undefined;

  const commandPath = () => [programName, ...(command?.path ?? (group ? [group] : []))].join(' ');
  const activeFlags = (): FlagSpec[] => [...globalFlags, ...(command?.flags ?? [])];
  const lookupLong = (name: string) => activeFlags().find((f) => f.name === name);
  const lookupShort = (short: string) => activeFlags().find((f) => f.short === short);

  const setFlag = (spec: FlagSpec, text: string) => {
    let value: FlagValue;
    try {
      value = parseFlagValue(spec, text);
    } catch (err) {
      if (!(err instanceof GoSyntaxError)) throw err;
      throw new UsageError(`invalid argument ${goQuote(text)} for ${goQuote(flagDisplayName(spec))} flag: ${err.message}`, commandPath());
    }
    if (spec.kind === 'stringSlice' && changed.has(spec.name)) {
      value = [...(values.get(spec.name) as string[]), ...(value as string[])];
    }
    values.set(spec.name, value);
    changed.add(spec.name);
  };

  const takePositional = (arg: string) => {
    if (command === undefined && group === undefined) {
      const match = commands.find((c) => c.path.length === 1 && c.path[0] === arg);
      if (match) { command = match; return; }
      if (groups.has(arg)) { group = arg; return; }
      throw new UsageError(`unknown command ${goQuote(arg)} for ${goQuote(programName)}`, programName);
    }
    if (command === undefined && group !== undefined) {
      const match = commands.find((c) => c.path.length === 2 && c.path[0] === group && c.path[1] === arg);
      if (!match) throw new UsageError(`unknown command ${goQuote(arg)} for ${goQuote(`${programName} ${group}`)}`, commandPath());
      command = match;
      return;
    }
    args.push(arg);
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      separatorAt = args.length;
      for (const rest of argv.slice(i + 1)) takePositional(rest);
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      if (name === 'help') { help = true; continue; }
      const spec = lookupLong(name);
      if (!spec) throw new UsageError(`unknown flag: --${name}`, commandPath());
      if (eq >= 0) setFlag(spec, arg.slice(eq + 1));
      else if (spec.kind === 'bool') setFlag(spec, 'true');
      else if (i + 1 < argv.length) setFlag(spec, argv[++i]!);
      else throw new UsageError(`flag needs an argument: --${name}`, commandPath());
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // A run of shorthands: bools may be grouped (-ab); a value flag takes the rest or the next arg.
      let j = 1;
      while (j < arg.length) {
        const short = arg[j]!;
        if (short === 'h') { help = true; j++; continue; }
        const spec = lookupShort(short);
        if (!spec) throw new UsageError(`unknown shorthand flag: '${short}' in ${arg}`, commandPath());
        const rest = arg.slice(j + 1);
        if (rest.startsWith('=')) { setFlag(spec, rest.slice(1)); break; }
        if (spec.kind === 'bool') { setFlag(spec, 'true'); j++; continue; }
        if (rest.length > 0) { setFlag(spec, rest); break; }
        if (i + 1 < argv.length) { setFlag(spec, argv[++i]!); break; }
        throw new UsageError(`flag needs an argument: '${short}' in -${short}`, commandPath());
      }
      continue;
    }
    takePositional(arg);
  }

  // Defaults, then ETCDCTL_* for global flags the command line left unset. Setting both is an
  // error in etcdctl 3.4 (pkg/flags), so a forgotten variable never silently loses to a flag.
  for (const spec of activeFlags()) {
    if (changed.has(spec.name)) {
      const envName = flagEnvName(spec.name);
      if (globalFlags.includes(spec) && env[envName] !== undefined) {
        throw new CtlError(ExitCode.Error, `conflicting environment variable ${goQuote(envName)} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)`);
      }
      continue;
    }
    const envText = globalFlags.includes(spec) ? env[flagEnvName(spec.name)] : undefined;
    if (envText !== undefined) {
      setFlag(spec, envText);
    } else {
      values.set(spec.name, parseFlagValue(spec, spec.defaultText));
    }
  }
  return { command, group, args, separatorAt, flags: new ParsedFlags(values, changed), help };
}

/** A short usage text for `--help` and usage errors: the usage line and each flag. */
export function formatUsage(programName: string, spec: CommandSpec | undefined, commands: readonly CommandSpec[], globalFlags: readonly FlagSpec[]): string {
  const lines: string[] = [];
  const flagLine = (f: FlagSpec) => {
    const head = `${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.kind === 'bool' ? `[=${f.defaultText}]` : `=${JSON.stringify(f.defaultText)}`}`;
    return `  ${head.padEnd(34)} ${f.usage}`;
  };
  if (spec) {
    lines.push('NAME:', `\t${spec.path.join(' ')} - ${spec.summary}`, '', 'USAGE:', `\t${programName} ${spec.use}`, '');
    if (spec.flags.length > 0) lines.push('OPTIONS:', ...spec.flags.map(flagLine), '');
  } else {
    lines.push('NAME:', `\t${programName} - A simple command line client for keyraft (etcd v3 API).`, '', 'USAGE:', `\t${programName} [flags] <command>`, '', 'COMMANDS:');
    for (const c of commands) lines.push(`\t${c.path.join(' ').padEnd(20)} ${c.summary}`);
    lines.push('');
  }
  lines.push('GLOBAL OPTIONS:', ...globalFlags.map(flagLine), '');
  return lines.join('\n') + '\n';
}
