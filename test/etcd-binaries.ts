/**
 * The one place that finds etcd and etcdctl for tests and benchmarks, and decides what a test
 * that needs them does when they are missing.
 *
 * Lookup: `ETCD_BIN` / `ETCDCTL_BIN` when set (a path, or a bare name looked up on PATH; a set
 * variable that names nothing is "missing", never a silent fall-back to PATH), else PATH.
 *
 * Missing: the test is not run but registered with uvu's `skip` (so uvu's "Skipped:" counts it)
 * and one line is printed for it, which test/run.mjs collects into its skip list:
 *
 *   [skip] cli/ctl-compat > compaction: needs etcd and etcdctl: etcdctl not found (ETCDCTL_BIN or PATH); on Debian/Ubuntu: apt-get install etcd-client etcd-server
 *
 * (test names hold colons; run.mjs splits the line at ": needs ").
 *
 * Under KEYRAFT_REQUIRE_ETCD=1 (CI sets it) a missing tool is a failure instead: the test is
 * registered with a body that throws the same explanation, so the run cannot pass with the
 * comparisons off.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { Test } from 'uvu';

export type EtcdTool = 'etcd' | 'etcdctl';

export const etcdInstallHint = 'apt-get install etcd-client etcd-server';
export const requireEtcdVariable = 'KEYRAFT_REQUIRE_ETCD';
/** The prefix test/run.mjs looks for. */
export const skipMarker = '[skip]';

const variableOf: Record<EtcdTool, string> = { etcd: 'ETCD_BIN', etcdctl: 'ETCDCTL_BIN' };

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function searchPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    // An empty PATH entry means the current directory to a shell; we do not look there.
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** The absolute path of `tool`, or undefined when it is not found (see the lookup above). */
export function findBinary(tool: EtcdTool, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const override = env[variableOf[tool]];
  if (override !== undefined && override !== '') {
    if (!override.includes('/')) return searchPath(override, env);
    const path = isAbsolute(override) ? override : resolve(override);
    return isExecutableFile(path) ? path : undefined;
  }
  return searchPath(tool, env);
}

/** The path of `tool`; throws the install hint when it is missing (for callers that checked first or must have it). */
export function binaryOrThrow(tool: EtcdTool, env: NodeJS.ProcessEnv = process.env): string {
  const path = findBinary(tool, env);
  if (path === undefined) throw new Error(missingReason([tool], env));
  return path;
}

export function etcdRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[requireEtcdVariable] === '1';
}

/** Why the tools are missing and how to get them, one line. */
export function missingReason(missing: readonly EtcdTool[], env: NodeJS.ProcessEnv = process.env): string {
  const where = missing.map((tool) => {
    const override = env[variableOf[tool]];
    return override ? `${variableOf[tool]}=${override}` : `${variableOf[tool]} or PATH`;
  });
  return `${missing.join(' and ')} not found (${where.join('; ')}); on Debian/Ubuntu: ${etcdInstallHint}`;
}

export interface EtcdNeed {
  /** Every tool the caller needs was found. */
  readonly found: boolean;
  readonly missing: readonly EtcdTool[];
  /** Path of a needed tool; throws when it is missing (only call it where `found` holds). */
  path(tool: EtcdTool): string;
  /**
   * Registers `name` on `s` when the tools were found. Otherwise prints the skip line and
   * registers it as skipped, or, under KEYRAFT_REQUIRE_ETCD=1, registers it failing.
   */
  test(s: Test, name: string, fn: () => void | Promise<void>): void;
}

/**
 * What `where` (a test file's name, e.g. "cli/ctl-compat") needs. Looked up once, at load time;
 * `print` is where skip lines go (stdout, which test/run.mjs reads).
 */
export function needEtcd(
  where: string,
  tools: readonly EtcdTool[],
  env: NodeJS.ProcessEnv = process.env,
  print: (line: string) => void = (line) => console.log(line),
): EtcdNeed {
  const paths = new Map<EtcdTool, string>();
  const missing: EtcdTool[] = [];
  for (const tool of tools) {
    const path = findBinary(tool, env);
    if (path === undefined) missing.push(tool);
    else paths.set(tool, path);
  }
  const found = missing.length === 0;
  const reason = found ? '' : missingReason(missing, env);
  return {
    found,
    missing,
    path(tool) {
      const path = paths.get(tool);
      if (path === undefined) throw new Error(`${where}: ${tool} ${tools.includes(tool) ? 'is missing' : 'was not asked for'}: ${reason}`);
      return path;
    },
    test(s, name, fn) {
      if (found) {
        s(name, fn);
      } else if (etcdRequired(env)) {
        s(name, () => {
          throw new Error(`${requireEtcdVariable}=1 and ${reason}`);
        });
      } else {
        print(`${skipMarker} ${where} > ${name}: needs ${tools.join(' and ')}: ${reason}`);
        s.skip(name, fn);
      }
    },
  };
}
