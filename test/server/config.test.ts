/** The member's flags as etcd checks them: timeouts, the initial cluster, peer TLS. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Limits } from '../../src/platform/limits.js';
import { ConfigError, parseConfig, type MemberConfig } from '../../src/server/config.js';

function run(args: string[]): MemberConfig {
  const parsed = parseConfig(args, {});
  if (parsed.kind !== 'run') throw new Error(`expected a run command, got ${parsed.kind}`);
  return parsed.config;
}

function refusal(args: string[]): string {
  try {
    parseConfig(args, {});
  } catch (err) {
    assert.instance(err, ConfigError);
    return (err as Error).message;
  }
  throw new Error(`accepted: ${args.join(' ')}`);
}

test('heartbeat and election timeouts: etcd defaults and checks', () => {
  const c = run([]);
  assert.is(c.heartbeatIntervalMs, 100);
  assert.is(c.electionTimeoutMs, 1000);
  assert.is(c.snapshotCount, 100_000);
  assert.is(refusal(['--heartbeat-interval', '300']), '--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]');
  assert.is(refusal(['--election-timeout', '60000']), '--election-timeout[60000ms] is too long, and should be set less than 50 seconds');
  assert.match(refusal(['--snapshot-count', '0']), '--snapshot-count');
  assert.is(run(['--heartbeat-interval', '50', '--election-timeout', '250']).electionTimeoutMs, 250);
});

test('a multi-member --initial-cluster must list this member with its advertised peer URLs', () => {
  const ic = 'a=http://127.0.0.1:2380,b=http://127.0.0.1:2381,c=http://127.0.0.1:2382';
  const c = run(['--name', 'b', '--initial-cluster', ic, '--initial-advertise-peer-urls', 'http://127.0.0.1:2381']);
  assert.equal([...c.initialCluster.keys()], ['a', 'b', 'c']);
  assert.match(refusal(['--name', 'd', '--initial-cluster', ic]), 'has no entry for this member');
  assert.is(refusal(['--name', 'b', '--initial-cluster', ic, '--initial-advertise-peer-urls', 'http://127.0.0.1:2399']),
    '--initial-cluster has b=http://127.0.0.1:2381 but missing from --initial-advertise-peer-urls=http://127.0.0.1:2399');
  // Joining: the advertised URL need not match (etcd checks it against the cluster instead).
  assert.is(run(['--name', 'b', '--initial-cluster', ic, '--initial-cluster-state', 'existing', '--initial-advertise-peer-urls', 'http://127.0.0.1:2381']).initialClusterState, 'existing');
});

test('peer TLS: cert and key together, https peer URLs with them and only with them', () => {
  const tls = ['--peer-cert-file', '/c.crt', '--peer-key-file', '/c.key', '--peer-trusted-ca-file', '/ca.crt', '--peer-client-cert-auth'];
  const https = ['--listen-peer-urls', 'https://127.0.0.1:2380', '--initial-advertise-peer-urls', 'https://127.0.0.1:2380', '--initial-cluster', 'default=https://127.0.0.1:2380'];
  assert.equal(run([...tls, ...https]).peerTls, { certFile: '/c.crt', keyFile: '/c.key', trustedCaFile: '/ca.crt', clientCertAuth: true });
  assert.is(refusal([...https]), 'https peer URLs need --peer-cert-file and --peer-key-file');
  assert.is(refusal([...tls]), '--peer-cert-file is set: peer URLs must be https');
  assert.is(refusal(['--peer-cert-file', '/c.crt', ...https]), '--peer-cert-file and --peer-key-file must be given together');
  // Client URLs stay plain until client TLS exists.
  assert.match(refusal(['--listen-client-urls', 'https://127.0.0.1:2379']), 'client TLS');
});

test('--grpc-keepalive-*: Go durations, etcd defaults; 0 or less falls back to grpc-go defaults, as etcd then sets no option', () => {
  const c = run([]);
  assert.is(c.grpcKeepaliveMinTimeMs, 5000);
  assert.is(c.grpcKeepaliveIntervalMs, 2 * 3600 * 1000);
  assert.is(c.grpcKeepaliveTimeoutMs, 20_000);
  const set = run(['--grpc-keepalive-min-time', '1m30s', '--grpc-keepalive-interval', '1.5s', '--grpc-keepalive-timeout', '250ms']);
  assert.is(set.grpcKeepaliveMinTimeMs, 90_000);
  assert.is(set.grpcKeepaliveIntervalMs, 1500);
  assert.is(set.grpcKeepaliveTimeoutMs, 250);
  // grpc-go's EnforcementPolicy MinTime default is 5 min; Time/Timeout 2 h and 20 s, both or neither.
  assert.is(run(['--grpc-keepalive-min-time', '0']).grpcKeepaliveMinTimeMs, 5 * 60 * 1000);
  const half = run(['--grpc-keepalive-interval', '10s', '--grpc-keepalive-timeout', '0s']);
  assert.is(half.grpcKeepaliveIntervalMs, 2 * 3600 * 1000);
  assert.is(half.grpcKeepaliveTimeoutMs, 20_000);
  assert.is(parseConfigEnv({ ETCD_GRPC_KEEPALIVE_TIMEOUT: '3s' }).grpcKeepaliveTimeoutMs, 3000);
  assert.is(refusal(['--grpc-keepalive-min-time', '5']), '--grpc-keepalive-min-time: time: missing unit in duration "5"');
  assert.is(refusal(['--grpc-keepalive-interval', 'soon']), '--grpc-keepalive-interval: time: invalid duration "soon"');
});

test('--max-client-connections: keyraft-only cap, Limits by default, above 0', () => {
  assert.is(run([]).maxClientConnections, Limits.clientConnectionsMax);
  assert.is(run(['--max-client-connections', '100']).maxClientConnections, 100);
  assert.match(refusal(['--max-client-connections', '0']), '--max-client-connections');
});

function parseConfigEnv(env: NodeJS.ProcessEnv): MemberConfig {
  const parsed = parseConfig([], env);
  if (parsed.kind !== 'run') throw new Error(parsed.kind);
  return parsed.config;
}

test.run();
