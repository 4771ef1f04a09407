import { parseArgs } from 'node:util';
import { GoDurationError, parseGoDurationMs } from '../platform/go-duration.js';
import { Limits } from '../platform/limits.js';
import { parseGoDuration, parseRetention, type AutoCompactionMode } from './auto-compactor.js';

/**
 * The member's configuration, from etcd's flag names and defaults and the matching ETCD_*
 * environment variables (flag `--max-txn-ops` <-> `ETCD_MAX_TXN_OPS`). A flag given on the
 * command line wins over the environment, as in etcd. Anything unknown or malformed is a
 * ConfigError with a message naming the flag; the CLI prints it and exits 2.
 */
export interface MemberConfig {
  name: string;
  dataDir: string;
  listenClientUrls: URL[];
  advertiseClientUrls: URL[];
  listenPeerUrls: URL[];
  initialAdvertisePeerUrls: URL[];
  /** name -> peer URLs, from --initial-cluster "a=http://h:2380,b=http://h2:2380". */
  initialCluster: Map<string, string[]>;
  initialClusterState: 'new' | 'existing';
  initialClusterToken: string;
  maxRequestBytes: number;
  maxTxnOps: number;
  quotaBackendBytes: number;
  /** --heartbeat-interval, ms: one Raft tick. */
  heartbeatIntervalMs: number;
  /** --election-timeout, ms: a follower campaigns after this (randomized up to twice it) without a leader. */
  electionTimeoutMs: number;
  /** --snapshot-count: applied entries between two snapshots (log compaction and WAL release). */
  snapshotCount: number;
  /** --lease-revoke-rate: expired leases the leader revokes per second at most (etcd's leaseRevokeRate). */
  leaseRevokeRate: number;
  /**
   * --lease-checkpoint-interval, ms: how often the leader checkpoints the remaining TTL of leases
   * longer than this through the log (etcd's --experimental-lease-checkpoint-interval; on here by
   * default). 0 turns checkpoints off.
   */
  leaseCheckpointIntervalMs: number;
  /** Peer TLS (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth); absent = plain TCP. */
  peerTls?: { certFile: string; keyFile: string; trustedCaFile?: string; clientCertAuth: boolean };
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';
  /**
   * --grpc-keepalive-min-time, ms: a client pinging more often (with a call open; once per 2 h
   * without) gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings". 0 or less: grpc-go's own 5 min, as
   * etcd then sets no enforcement policy.
   */
  grpcKeepaliveMinTimeMs: number;
  /**
   * --grpc-keepalive-interval and --grpc-keepalive-timeout, ms: the server pings a connection idle
   * this long and closes it if the ping is unanswered that long. Either 0 or less: grpc-go's own
   * 2 h and 20 s, as etcd then sets no keepalive parameters.
   */
  grpcKeepaliveIntervalMs: number;
  grpcKeepaliveTimeoutMs: number;
  /** --max-client-connections (keyraft's own; etcd has no cap): connections past it are closed at accept. */
  maxClientConnections: number;
  /**
   * --history-cache-bytes (keyraft's own): old revisions' values read back from the backend kept
   * for the next read (history lives on disk; mvcc/history-values.ts). Optional for callers that
   * build a config by hand: Limits.historyCacheBytes.
   */
  historyCacheBytes?: number;
  /**
   * --history-image-records (keyraft's own): records written (or, after a compaction, held) that
   * the mvcc history image does not cover before a new one is written in the background, which a
   * restart then reads instead of scanning LevelDB (mvcc/history-image.ts); 0 = never write one.
   * Optional for callers that build a config by hand: Limits.bucketImageRecordsMin.
   */
  historyImageRecords?: number;
  /** --auto-compaction-mode and --auto-compaction-retention (ms for periodic, revisions for revision; 0 = off). */
  autoCompactionMode: AutoCompactionMode;
  autoCompactionRetention: number;
  /** --experimental-initial-corrupt-check (default true here; etcd's is false). */
  initialCorruptCheck: boolean;
  /** --experimental-corrupt-check-time in ms (default 5 min here; 0 = off, etcd's default). */
  corruptCheckTimeMs: number;
  /** --experimental-watch-progress-notify-interval, ms: progress responses to idle watchers that asked (etcd: 10m). */
  watchProgressNotifyIntervalMs?: number;
}

/** etcd's default --experimental-watch-progress-notify-interval: 10 minutes. */
export const WATCH_PROGRESS_NOTIFY_INTERVAL_MS = 10 * 60 * 1000;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const FLAGS = {
  name: { type: 'string' },
  'data-dir': { type: 'string' },
  'listen-client-urls': { type: 'string' },
  'advertise-client-urls': { type: 'string' },
  'listen-peer-urls': { type: 'string' },
  'initial-advertise-peer-urls': { type: 'string' },
  'initial-cluster': { type: 'string' },
  'initial-cluster-state': { type: 'string' },
  'initial-cluster-token': { type: 'string' },
  'max-request-bytes': { type: 'string' },
  'max-txn-ops': { type: 'string' },
  'quota-backend-bytes': { type: 'string' },
  'heartbeat-interval': { type: 'string' },
  'election-timeout': { type: 'string' },
  'snapshot-count': { type: 'string' },
  'lease-revoke-rate': { type: 'string' },
  'lease-checkpoint-interval': { type: 'string' },
  'peer-cert-file': { type: 'string' },
  'peer-key-file': { type: 'string' },
  'peer-trusted-ca-file': { type: 'string' },
  'peer-client-cert-auth': { type: 'boolean' },
  'log-level': { type: 'string' },
  'grpc-keepalive-min-time': { type: 'string' },
  'grpc-keepalive-interval': { type: 'string' },
  'grpc-keepalive-timeout': { type: 'string' },
  'max-client-connections': { type: 'string' },
  'history-cache-bytes': { type: 'string' },
  'history-image-records': { type: 'string' },
  'auto-compaction-mode': { type: 'string' },
  'auto-compaction-retention': { type: 'string' },
  'experimental-initial-corrupt-check': { type: 'string' },
  'experimental-corrupt-check-time': { type: 'string' },
  'experimental-watch-progress-notify-interval': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

export type FlagName = keyof typeof FLAGS;

export const USAGE = `Usage: keyraft [flags]
       keyraft cluster [flags]   a local multi-member cluster (keyraft cluster --help)

A distributed, strongly consistent key-value store, wire-compatible with etcd's v3 API.
Every flag may also be set by its environment variable: --max-txn-ops <-> ETCD_MAX_TXN_OPS.

  --name 'default'                          human-readable name for this member
  --data-dir '\${name}.keyraft'               path to the data directory
  --listen-client-urls 'http://127.0.0.1:2379'       URLs to listen on for client traffic (gRPC and JSON)
  --advertise-client-urls 'http://127.0.0.1:2379'    client URLs advertised to the cluster
  --listen-peer-urls 'http://127.0.0.1:2380'         URLs to listen on for peer traffic
  --initial-advertise-peer-urls 'http://127.0.0.1:2380'  peer URLs advertised to the cluster
  --initial-cluster 'default=http://127.0.0.1:2380'  initial cluster configuration for bootstrapping
  --initial-cluster-state 'new'             'new' or 'existing'
  --initial-cluster-token 'etcd-cluster'    initial cluster token used to derive cluster and member ids
  --max-request-bytes 1572864               maximum client request size in bytes
  --max-txn-ops 128                         maximum number of operations in one transaction
  --quota-backend-bytes 0                   backend size quota in bytes (0 = default 2 GiB)
  --heartbeat-interval 100                  time (in milliseconds) of a heartbeat interval
  --election-timeout 1000                   time (in milliseconds) for an election to timeout
  --snapshot-count 100000                   number of committed transactions to trigger a snapshot
  --lease-revoke-rate 1000                  most expired leases revoked per second
  --lease-checkpoint-interval 300000        ms between checkpoints of remaining lease TTLs (0 = off)
  --peer-cert-file ''                       path to the peer server TLS cert file
  --peer-key-file ''                        path to the peer server TLS key file
  --peer-trusted-ca-file ''                 path to the peer server TLS trusted CA file
  --peer-client-cert-auth false             enable peer client cert authentication
  --log-level 'info'                        debug, info, warn, error, panic or fatal
  --grpc-keepalive-min-time 5s              minimum interval a client should wait before pinging the server
  --grpc-keepalive-interval 2h              frequency of server-to-client pings to check if a connection is alive (0 to disable)
  --grpc-keepalive-timeout 20s              additional wait before closing a non-responsive connection (0 to disable)
  --max-client-connections ${Limits.clientConnectionsMax}            client connections open at once; more are closed at accept (keyraft only)
  --history-cache-bytes ${Limits.historyCacheBytes}           bytes of old revisions' values kept after a read from disk (keyraft only)
  --history-image-records ${Limits.bucketImageRecordsMin}          records the history image may miss before it is rewritten (0 = never; keyraft only)
  --auto-compaction-mode 'periodic'         'periodic' (retention a duration, bare number = hours) or 'revision'
  --auto-compaction-retention '0'           auto-compaction retention (0 = off)
  --experimental-initial-corrupt-check true compare HashKV with the peers at start-up
  --experimental-corrupt-check-time 5m      period of the leader's HashKV comparison (0 = off)
  --experimental-watch-progress-notify-interval '10m0s'  duration of periodic watch progress notifications
  --version                                 print the version and exit
  -h, --help                                print this help and exit
`;

function envName(flag: string): string {
  return 'ETCD_' + flag.toUpperCase().replace(/-/g, '_');
}

function parseUrls(flag: string, value: string, allowHttps = false): URL[] {
  const urls = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (urls.length === 0) throw new ConfigError(`--${flag}: no URL given`);
  return urls.map((text) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new ConfigError(`--${flag}: "${text}" is not a valid URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:' && url.protocol !== 'unix:') {
      throw new ConfigError(`--${flag}: URL scheme must be http or https, got "${url.protocol}" in "${text}"`);
    }
    if (url.protocol === 'https:' && !allowHttps) {
      throw new ConfigError(`--${flag}: https (client TLS) is not supported yet: "${text}"`);
    }
    if (url.pathname !== '/' && url.pathname !== '') {
      throw new ConfigError(`--${flag}: URL must not have a path: "${text}"`);
    }
    if (!url.port) throw new ConfigError(`--${flag}: URL must name a port: "${text}"`);
    return url;
  });
}

function parseNonNegativeInt(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new ConfigError(`--${flag}: "${value}" is not a non-negative integer`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new ConfigError(`--${flag}: "${value}" is too large`);
  return n;
}

/** A Go duration flag (time.ParseDuration syntax: "5s", "2h", "1m30s"), in ms. */
function parseDurationMs(flag: string, value: string): number {
  try {
    return parseGoDurationMs(value);
  } catch (err) {
    if (err instanceof GoDurationError) throw new ConfigError(`--${flag}: ${err.message}`);
    throw err;
  }
}

/** grpc-go's fallbacks when etcd passes it no keepalive option (see MemberConfig). */
const GRPC_GO_KEEPALIVE_MIN_TIME_MS = 5 * 60 * 1000;
const GRPC_GO_KEEPALIVE_INTERVAL_MS = 2 * 60 * 60 * 1000;
const GRPC_GO_KEEPALIVE_TIMEOUT_MS = 20_000;

function parseInitialCluster(value: string): Map<string, string[]> {
  const cluster = new Map<string, string[]>();
  for (const part of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--initial-cluster: "${part}" is not name=url`);
    const name = part.slice(0, eq);
    const url = part.slice(eq + 1);
    parseUrls('initial-cluster', url, true);
    cluster.set(name, [...(cluster.get(name) ?? []), url]);
  }
  if (cluster.size === 0) throw new ConfigError('--initial-cluster: empty');
  return cluster;
}

export type ParsedCommand = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; config: MemberConfig };

/** Parses argv (without node and script) and the environment into a command. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedCommand {
  let parsed;
  try {
    // Go's flag package takes a bare boolean flag as true: give the one string-typed boolean its value.
    const args = argv.map((a) => (a === '--experimental-initial-corrupt-check' ? '--experimental-initial-corrupt-check=true' : a));
    parsed = parseArgs({ args, options: FLAGS, strict: true, allowPositionals: false });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const values = parsed.values as Partial<Record<FlagName, string | boolean>>;
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };

  const get = (flag: FlagName): string | undefined => {
    const fromFlag = values[flag];
    if (typeof fromFlag === 'string') return fromFlag;
    const fromEnv = env[envName(flag)];
    return fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined;
  };

  const name = get('name') ?? 'default';
  const listenPeer = get('listen-peer-urls') ?? 'http://127.0.0.1:2380';
  const advertisePeer = get('initial-advertise-peer-urls') ?? 'http://127.0.0.1:2380';
  const listenClient = get('listen-client-urls') ?? 'http://127.0.0.1:2379';
  const clusterState = get('initial-cluster-state') ?? 'new';
  if (clusterState !== 'new' && clusterState !== 'existing') {
    throw new ConfigError(`--initial-cluster-state: must be "new" or "existing", got "${clusterState}"`);
  }
  const logLevel = get('log-level') ?? 'info';
  if (!['debug', 'info', 'warn', 'error', 'panic', 'fatal'].includes(logLevel)) {
    throw new ConfigError(`--log-level: must be debug, info, warn, error, panic or fatal, got "${logLevel}"`);
  }
  const maxRequestBytes = parseNonNegativeInt('max-request-bytes', get('max-request-bytes') ?? String(Limits.maxRequestBytes));
  if (maxRequestBytes === 0) throw new ConfigError('--max-request-bytes: must be greater than 0');
  const maxTxnOps = parseNonNegativeInt('max-txn-ops', get('max-txn-ops') ?? String(Limits.maxTxnOps));
  if (maxTxnOps === 0) throw new ConfigError('--max-txn-ops: must be greater than 0');
  const quota = parseNonNegativeInt('quota-backend-bytes', get('quota-backend-bytes') ?? '0');
  const heartbeatIntervalMs = parseNonNegativeInt('heartbeat-interval', get('heartbeat-interval') ?? '100');
  const electionTimeoutMs = parseNonNegativeInt('election-timeout', get('election-timeout') ?? '1000');
  // etcd's checks (embed/config.go): election >= 5 x heartbeat, and at most 50 s.
  if (heartbeatIntervalMs === 0) throw new ConfigError('--heartbeat-interval: must be greater than 0');
  if (5 * heartbeatIntervalMs > electionTimeoutMs) {
    throw new ConfigError(`--election-timeout[${electionTimeoutMs}ms] should be at least as 5 times as --heartbeat-interval[${heartbeatIntervalMs}ms]`);
  }
  if (electionTimeoutMs > 50_000) {
    throw new ConfigError(`--election-timeout[${electionTimeoutMs}ms] is too long, and should be set less than 50 seconds`);
  }
  const snapshotCount = parseNonNegativeInt('snapshot-count', get('snapshot-count') ?? '100000');
  if (snapshotCount === 0) throw new ConfigError('--snapshot-count: must be greater than 0');
  // etcd (embed/etcd.go) hands grpc-go a keepalive option only for values above 0; grpc-go falls
  // back to its own defaults otherwise, which differ from etcd's flag defaults for the min time.
  const minTimeMs = parseDurationMs('grpc-keepalive-min-time', get('grpc-keepalive-min-time') ?? '5s');
  const intervalMs = parseDurationMs('grpc-keepalive-interval', get('grpc-keepalive-interval') ?? '2h');
  const timeoutMs = parseDurationMs('grpc-keepalive-timeout', get('grpc-keepalive-timeout') ?? '20s');
  const keepaliveSet = intervalMs > 0 && timeoutMs > 0;
  const maxClientConnections = parseNonNegativeInt('max-client-connections', get('max-client-connections') ?? String(Limits.clientConnectionsMax));
  if (maxClientConnections === 0) throw new ConfigError('--max-client-connections: must be greater than 0');
  const historyCacheBytes = parseNonNegativeInt('history-cache-bytes', get('history-cache-bytes') ?? String(Limits.historyCacheBytes));
  const historyImageRecords = parseNonNegativeInt('history-image-records', get('history-image-records') ?? String(Limits.bucketImageRecordsMin));

  const autoCompactionMode = get('auto-compaction-mode') ?? 'periodic';
  if (autoCompactionMode !== 'periodic' && autoCompactionMode !== 'revision') {
    throw new ConfigError(`--auto-compaction-mode: unknown auto-compaction-mode "${autoCompactionMode}"`);
  }
  let autoCompactionRetention: number;
  let corruptCheckTimeMs: number;
  try {
    autoCompactionRetention = parseRetention(autoCompactionMode, get('auto-compaction-retention') ?? '0');
    corruptCheckTimeMs = parseGoDuration(get('experimental-corrupt-check-time') ?? '5m', 'experimental-corrupt-check-time');
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const initialCheckText = get('experimental-initial-corrupt-check') ?? 'true';
  if (initialCheckText !== 'true' && initialCheckText !== 'false') {
    throw new ConfigError(`--experimental-initial-corrupt-check: must be true or false, got "${initialCheckText}"`);
  }
  const leaseRevokeRate = parseNonNegativeInt('lease-revoke-rate', get('lease-revoke-rate') ?? '1000');
  if (leaseRevokeRate === 0) throw new ConfigError('--lease-revoke-rate: must be greater than 0');
  const leaseCheckpointIntervalMs = parseNonNegativeInt('lease-checkpoint-interval', get('lease-checkpoint-interval') ?? '300000');

  const config: MemberConfig = {
    name,
    dataDir: get('data-dir') ?? `${name}.keyraft`,
    listenClientUrls: parseUrls('listen-client-urls', listenClient),
    advertiseClientUrls: parseUrls('advertise-client-urls', get('advertise-client-urls') ?? listenClient),
    listenPeerUrls: parseUrls('listen-peer-urls', listenPeer, true),
    initialAdvertisePeerUrls: parseUrls('initial-advertise-peer-urls', advertisePeer, true),
    initialCluster: parseInitialCluster(get('initial-cluster') ?? `${name}=${advertisePeer}`),
    initialClusterState: clusterState,
    initialClusterToken: get('initial-cluster-token') ?? 'etcd-cluster',
    maxRequestBytes,
    maxTxnOps,
    quotaBackendBytes: quota === 0 ? Limits.quotaBackendBytes : quota,
    heartbeatIntervalMs,
    electionTimeoutMs,
    snapshotCount,
    leaseRevokeRate,
    leaseCheckpointIntervalMs,
    logLevel: logLevel as MemberConfig['logLevel'],
    grpcKeepaliveMinTimeMs: minTimeMs > 0 ? minTimeMs : GRPC_GO_KEEPALIVE_MIN_TIME_MS,
    grpcKeepaliveIntervalMs: keepaliveSet ? intervalMs : GRPC_GO_KEEPALIVE_INTERVAL_MS,
    grpcKeepaliveTimeoutMs: keepaliveSet ? timeoutMs : GRPC_GO_KEEPALIVE_TIMEOUT_MS,
    maxClientConnections,
    historyCacheBytes,
    historyImageRecords,
    autoCompactionMode,
    autoCompactionRetention,
    initialCorruptCheck: initialCheckText === 'true',
    corruptCheckTimeMs,
    watchProgressNotifyIntervalMs: parseDurationMs('experimental-watch-progress-notify-interval',
      get('experimental-watch-progress-notify-interval') ?? '10m'),
  };
  if (!config.initialCluster.has(name)) {
    throw new ConfigError(`--initial-cluster: has no entry for this member's --name "${name}"`);
  }
  const certFile = get('peer-cert-file');
  const keyFile = get('peer-key-file');
  const trustedCaFile = get('peer-trusted-ca-file');
  const clientCertAuthText = values['peer-client-cert-auth'] === true ? 'true' : env[envName('peer-client-cert-auth')];
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError('--peer-cert-file and --peer-key-file must be given together');
  }
  if (certFile !== undefined) {
    config.peerTls = { certFile, keyFile: keyFile!, trustedCaFile, clientCertAuth: clientCertAuthText === 'true' };
  }
  const peerSchemes = new Set([...config.listenPeerUrls, ...config.initialAdvertisePeerUrls].map((u) => u.protocol));
  if (peerSchemes.has('https:') && config.peerTls === undefined) {
    throw new ConfigError('https peer URLs need --peer-cert-file and --peer-key-file');
  }
  if (peerSchemes.has('http:') && config.peerTls !== undefined) {
    throw new ConfigError('--peer-cert-file is set: peer URLs must be https');
  }
  const ownUrls = [...(config.initialCluster.get(name) ?? [])].sort().join(',');
  const advertised = config.initialAdvertisePeerUrls.map((u) => u.href.replace(/\/$/, '')).sort().join(',');
  if (config.initialClusterState === 'new' && ownUrls !== advertised) {
    // etcd: "--initial-cluster has <name>=<urls> but missing from --initial-advertise-peer-urls=<urls>".
    throw new ConfigError(`--initial-cluster has ${name}=${ownUrls} but missing from --initial-advertise-peer-urls=${advertised}`);
  }
  return { kind: 'run', config };
}
