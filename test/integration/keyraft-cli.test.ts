/** The `keyraft` server command line: flags, environment variables, bad input, clean shutdown. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { b64, keyraftBin, killAll, postJson, runCommand, startKeyraft } from './harness.js';

const test = suite('keyraft-cli');

test.after(async () => {
  await killAll();
});

test('unknown and malformed flags exit 2 with a clear message', async () => {
  const unknown = await runCommand(process.execPath, [keyraftBin, '--no-such-flag']);
  assert.is(unknown.code, 2);
  assert.match(unknown.stderr, "Unknown option '--no-such-flag'");
  const badNumber = await runCommand(process.execPath, [keyraftBin, '--max-txn-ops', 'lots']);
  assert.is(badNumber.code, 2);
  assert.match(badNumber.stderr, '--max-txn-ops: "lots" is not a non-negative integer');
  const badUrl = await runCommand(process.execPath, [keyraftBin, '--listen-client-urls', 'nonsense']);
  assert.is(badUrl.code, 2);
  assert.match(badUrl.stderr, '--listen-client-urls: "nonsense" is not a valid URL');
  const badState = await runCommand(process.execPath, [keyraftBin], { env: { ETCD_INITIAL_CLUSTER_STATE: 'sometimes' } });
  assert.is(badState.code, 2);
  assert.match(badState.stderr, '--initial-cluster-state');
});

test('--version and --help', async () => {
  const version = await runCommand(process.execPath, [keyraftBin, '--version']);
  assert.is(version.code, 0);
  assert.match(version.stdout, /keyraft Version: \d+\.\d+\.\d+/);
  assert.match(version.stdout, 'etcd API Version: 3.4.23');
  const help = await runCommand(process.execPath, [keyraftBin, '--help']);
  assert.is(help.code, 0);
  assert.match(help.stdout, '--initial-cluster-token');
});

test('ETCD_* environment variables set flags; a flag wins over its variable', async () => {
  const server = await startKeyraft({ env: { ETCD_MAX_TXN_OPS: '2', ETCD_MAX_REQUEST_BYTES: '4096' } });
  const ops = [1, 2, 3].map((i) => ({ request_put: { key: b64(`t${i}`), value: b64('v') } }));
  const tooMany = await postJson(server.clientPort, '/v3/kv/txn', { success: ops });
  assert.is(tooMany.status, 400);
  assert.is(tooMany.json.error, 'etcdserver: too many operations in txn request');
  const big = await postJson(server.clientPort, '/v3/kv/put', { key: b64('big'), value: b64('x'.repeat(8192)) });
  assert.is(big.status, 400, big.raw);
  assert.match(big.raw, 'request is too large');
  await server.stop();

  const flagWins = await startKeyraft({ env: { ETCD_MAX_TXN_OPS: '2' }, args: ['--max-txn-ops', '3'] });
  const ok = await postJson(flagWins.clientPort, '/v3/kv/txn', { success: ops });
  assert.is(ok.status, 200, ok.raw);
  await flagWins.stop();
});

test('SIGTERM shuts down cleanly and data is there after restart', async () => {
  const first = await startKeyraft();
  await postJson(first.clientPort, '/v3/kv/put', { key: b64('durable'), value: b64('yes') });
  assert.is(await first.stop(), 0);
  const second = await startKeyraft({ dataDir: first.dataDir });
  const got = await postJson(second.clientPort, '/v3/kv/range', { key: b64('durable') });
  assert.is(Buffer.from(got.json.kvs[0].value, 'base64').toString(), 'yes');
  assert.is(got.json.header.revision, '2');
  // A restart starts a new term, as an etcd member's re-election does.
  assert.is(got.json.header.raft_term, '3');
  await second.stop();
});

test.run();
