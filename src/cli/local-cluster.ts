/**
 * `keyraft cluster`: a local multi-member cluster for development, as etcd's Procfile run by
 * goreman gives one: members infra1..N as child processes on 127.0.0.1, client ports 2379, 22379,
 * 32379, 42379, 52379 and peer ports 2380, 22380, ... by default, data dirs under --data-dir.
 *
 *   keyraft cluster [--members 3|5] [--data-dir ./keyraft-cluster]
 *                   [--client-ports 2379,22379,32379 --peer-ports 2380,22380,32380]
 *                   [-- extra member flags, e.g. --log-level warn]
 *
 * Once every member answers GET /health with {"health":"true"} it prints the endpoints and an
 * etcdctl line on stdout. The members' logs go to our stderr, each line prefixed by the member's
 * name, as goreman does: one terminal shows the whole cluster interleaved in time, and stdout
 * stays clean for the lines a script reads. SIGINT/SIGTERM stop every member by PID (SIGTERM,
 * then SIGKILL after a grace period) and we exit once all have exited. A member that dies on its
 * own is reported and the rest keep running (kill -9 one to watch a failover); when none is left
 * we exit 1. Run it again with the same --data-dir and the members resume from their data (the
 * --initial-cluster flags are ignored by a member that already has data, as in etcd).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

export interface ClusterMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
}

export const CLUSTER_USAGE = `Usage: keyraft cluster [flags] [-- member flags]

Starts a local cluster of keyraft members on 127.0.0.1 (infra1..N, as etcd's Procfile) and stops
them all on Ctrl-C or SIGTERM. Flags after "--" are passed to every member (e.g. --log-level warn).

  --members 3                      number of members (1 to 9)
  --data-dir './keyraft-cluster'   folder of the members' data dirs (<data-dir>/infra1 ...); reused on restart
  --client-ports 2379,22379,...    client port of each member (default as etcd's Procfile: 2379, 22379, 32379, ...)
  --peer-ports 2380,22380,...      peer port of each member (default 2380, 22380, 32380, ...)
  --ready-timeout 60               seconds to wait for every member to be healthy
  -h, --help                       print this help and exit
`;

/** Grace period between SIGTERM and SIGKILL when stopping a member. */
const STOP_GRACE_MS = 10_000;
const HEALTH_POLL_MS = 100;
const MEMBERS_MAX = 9;
/** procfilePort stays under 65536 up to this many members (62379/62380). */
const PROCFILE_MEMBERS_MAX = 6;

/** etcd's Procfile ports: infra1 2379/2380, infra<i> i*10000+2379 / i*10000+2380 for i >= 2. */
export function procfilePort(index: number, peer: boolean): number {
  return (index === 0 ? 0 : (index + 1) * 10_000) + (peer ? 2380 : 2379);
}

/**
 * One member's flags: etcd's own flag names, so the same list starts an etcd member (the cluster
 * benchmark runs etcd 3.4 with it). `token` is --initial-cluster-token.
 */
export function clusterMemberArgs(members: ClusterMember[], index: number, token: string): string[] {
  const m = members[index]!;
  const peerUrl = (p: ClusterMember) => `http://127.0.0.1:${p.peerPort}`;
  return [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', `http://127.0.0.1:${m.clientPort}`,
    '--advertise-client-urls', `http://127.0.0.1:${m.clientPort}`,
    '--listen-peer-urls', peerUrl(m),
    '--initial-advertise-peer-urls', peerUrl(m),
    '--initial-cluster', members.map((p) => `${p.name}=${peerUrl(p)}`).join(','),
    '--initial-cluster-token', token,
    '--initial-cluster-state', 'new',
  ];
}

/** GET /health on a client port: true once it answers {"health":"true"}. Never throws. */
export function memberHealthy(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolveHealth) => {
    const req = request({ host: '127.0.0.1', port, path: '/health', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolveHealth(res.statusCode === 200 && /"health"\s*:\s*"true"/.test(body)));
      res.on('error', () => resolveHealth(false));
    });
    req.on('error', () => resolveHealth(false));
    req.setTimeout(timeoutMs, () => req.destroy());
    req.end();
  });
}

class UsageError extends Error {
  override name = 'UsageError';
}

interface ClusterOptions {
  members: ClusterMember[];
  memberFlags: string[];
  readyTimeoutMs: number;
}

function parsePorts(flag: string, value: string, count: number): number[] {
  const ports = value.split(',').map((s) => s.trim());
  if (ports.length !== count) throw new UsageError(`--${flag}: ${ports.length} ports for ${count} members`);
  return ports.map((p) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || n < 1 || n > 65535) throw new UsageError(`--${flag}: "${p}" is not a port`);
    return n;
  });
}

function parseClusterArgs(argv: string[]): ClusterOptions | 'help' {
  const dashes = argv.indexOf('--');
  const own = dashes < 0 ? argv : argv.slice(0, dashes);
  const memberFlags = dashes < 0 ? [] : argv.slice(dashes + 1);
  let values;
  try {
    values = parseArgs({
      args: own,
      strict: true,
      allowPositionals: false,
      options: {
        members: { type: 'string' },
        'data-dir': { type: 'string' },
        'client-ports': { type: 'string' },
        'peer-ports': { type: 'string' },
        'ready-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const count = Number(values.members ?? '3');
  if (!Number.isInteger(count) || count < 1 || count > MEMBERS_MAX) throw new UsageError(`--members: must be 1 to ${MEMBERS_MAX}, got "${values.members}"`);
  const readyTimeoutSeconds = Number(values['ready-timeout'] ?? '60');
  if (!(readyTimeoutSeconds > 0)) throw new UsageError(`--ready-timeout: must be a positive number of seconds, got "${values['ready-timeout']}"`);
  if (count > PROCFILE_MEMBERS_MAX && (values['client-ports'] === undefined || values['peer-ports'] === undefined)) {
    throw new UsageError(`--members ${count}: the default ports stop at ${PROCFILE_MEMBERS_MAX} members (${procfilePort(PROCFILE_MEMBERS_MAX - 1, false)}); give --client-ports and --peer-ports`);
  }
  const indexes = [...Array(count).keys()];
  const clientPorts = values['client-ports'] !== undefined ? parsePorts('client-ports', values['client-ports'], count) : indexes.map((i) => procfilePort(i, false));
  const peerPorts = values['peer-ports'] !== undefined ? parsePorts('peer-ports', values['peer-ports'], count) : indexes.map((i) => procfilePort(i, true));
  const all = [...clientPorts, ...peerPorts];
  if (new Set(all).size !== all.length) throw new UsageError(`ports must all differ: ${all.join(',')}`);
  const root = resolve(values['data-dir'] ?? 'keyraft-cluster');
  const members = indexes.map((i) => ({ name: `infra${i + 1}`, clientPort: clientPorts[i]!, peerPort: peerPorts[i]!, dataDir: join(root, `infra${i + 1}`) }));
  return { members, memberFlags, readyTimeoutMs: readyTimeoutSeconds * 1000 };
}

interface RunningMember {
  member: ClusterMember;
  child: ChildProcess;
  exited: Promise<void>;
}

function startMember(members: ClusterMember[], index: number, memberFlags: string[], onExit: (m: RunningMember, code: number | null, signal: string | null) => void): RunningMember {
  const member = members[index]!;
  const child = spawn(process.execPath, [join(__dirname, 'keyraft.js'), ...clusterMemberArgs(members, index, 'keyraft-cluster'), ...memberFlags], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = `${member.name.padEnd(7)}| `;
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => process.stderr.write(prefix + line + '\n'));
  }
  let running!: RunningMember;
  const exited = new Promise<void>((resolveExit) => {
    child.once('exit', (code, signal) => {
      onExit(running, code, signal);
      resolveExit();
    });
  });
  running = { member, child, exited };
  return running;
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** SIGTERM by PID, SIGKILL after the grace period; resolves once the member has exited. */
async function stopMember(m: RunningMember): Promise<void> {
  if (!alive(m.child) || m.child.pid === undefined) return m.exited;
  process.kill(m.child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (alive(m.child) && m.child.pid !== undefined) {
      process.stderr.write(`keyraft cluster: ${m.member.name} (pid ${m.child.pid}) did not stop within ${STOP_GRACE_MS} ms, sending SIGKILL\n`);
      process.kill(m.child.pid, 'SIGKILL');
    }
  }, STOP_GRACE_MS);
  await m.exited;
  clearTimeout(timer);
}

export async function runLocalCluster(argv: string[]): Promise<number> {
  let options;
  try {
    options = parseClusterArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`keyraft cluster: ${err.message}\n\n${CLUSTER_USAGE}`);
      return 2;
    }
    throw err;
  }
  if (options === 'help') {
    process.stdout.write(CLUSTER_USAGE);
    return 0;
  }
  const { members, memberFlags, readyTimeoutMs } = options;
  let stopping = false;
  let ready = false;
  const running: RunningMember[] = [];
  const onExit = (m: RunningMember, code: number | null, signal: string | null) => {
    if (stopping) return;
    process.stderr.write(`keyraft cluster: ${m.member.name} (pid ${m.child.pid}) exited (${signal ?? `code ${code}`})${ready ? '' : ' during start-up'}\n`);
  };
  for (let i = 0; i < members.length; i++) running.push(startMember(members, i, memberFlags, onExit));

  let resolveStop!: (signal: string) => void;
  const stopRequested = new Promise<string>((r) => { resolveStop = r; });
  const onSignal = (signal: string) => resolveStop(signal);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const allExited = Promise.all(running.map((m) => m.exited)).then(() => 'all members exited');
  const stopAll = async (): Promise<void> => {
    stopping = true;
    await Promise.all(running.map(stopMember));
  };

  // Start-up: every member healthy, or a stop request, or a member gone, or the deadline.
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    const exitedEarly = running.find((m) => !alive(m.child));
    if (exitedEarly) {
      await stopAll();
      process.stderr.write(`keyraft cluster: ${exitedEarly.member.name} exited during start-up; stopped the others\n`);
      return 1;
    }
    const health = await Promise.all(members.map((m) => memberHealthy(m.clientPort)));
    if (health.every(Boolean)) break;
    if (Date.now() > deadline) {
      await stopAll();
      const sick = members.filter((_, i) => !health[i]).map((m) => m.name).join(', ');
      process.stderr.write(`keyraft cluster: not healthy within ${readyTimeoutMs / 1000} s (${sick}); stopped all members\n`);
      return 1;
    }
    const early = await Promise.race([stopRequested, new Promise<undefined>((r) => setTimeout(() => r(undefined), HEALTH_POLL_MS))]);
    if (early !== undefined) {
      await stopAll();
      return 0;
    }
  }
  ready = true;
  const endpoints = members.map((m) => `http://127.0.0.1:${m.clientPort}`).join(',');
  const lines = [`keyraft cluster: ${members.length} members healthy`];
  running.forEach((r) => lines.push(`  ${r.member.name}  client http://127.0.0.1:${r.member.clientPort}  peer http://127.0.0.1:${r.member.peerPort}  pid ${r.child.pid}  data ${r.member.dataDir}`));
  lines.push(`ETCDCTL_API=3 etcdctl --endpoints=${endpoints} endpoint status -w table`);
  process.stdout.write(lines.join('\n') + '\n');

  const why = await Promise.race([stopRequested, allExited]);
  await stopAll();
  process.stderr.write(`keyraft cluster: stopped (${why})\n`);
  return why === 'all members exited' ? 1 : 0;
}
