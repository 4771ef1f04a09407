/**
 * The `etcd3` npm client's Election API against keyraft. That client runs etcd's election recipe
 * on the client (KV txns, ranges sorted by create revision, watches, its own leases), so this
 * checks that keyraft gives it what etcd does: campaign, observe (leader changes as events),
 * proclaim, resign, and failover of the elected client, its lease revoked (the next campaigner
 * wins) or left to expire after its process is killed.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Etcd3 } from 'etcd3';
import { killAll, startKeyraft, type ServerProcess } from '../integration/harness.js';
import { join } from 'node:path';
import { CtlProcess } from './ctl-process.js';
import { eventually } from './eventually.js';

const test = suite('election-etcd3');
let keyraft: ServerProcess;
let clients: Etcd3[] = [];

function newClient(): Etcd3 {
  const client = new Etcd3({ hosts: `127.0.0.1:${keyraft.clientPort}` });
  clients.push(client);
  return client;
}

test.before(async () => {
  keyraft = await startKeyraft();
});

test.after(async () => {
  for (const client of clients) client.close();
  clients = [];
  await killAll();
});

test('campaign, observe, proclaim, resign; a revoked leader hands over to the next campaigner', async () => {
  const watcherClient = newClient();
  const observer = await watcherClient.election('poll').observe();
  const changes: Array<string | undefined> = [];
  observer.on('change', (value) => changes.push(value));

  const a = newClient().election('poll', 30).campaign('alpha');
  await a.wait();
  assert.is(await watcherClient.election('poll').leader(), 'alpha');
  const b = newClient().election('poll', 30).campaign('beta');
  let bElected = false;
  b.on('elected', () => { bElected = true; });
  // The client reports its campaign's lease ending as an 'error' event: expected once beta's lease is revoked below.
  const bErrors: string[] = [];
  b.on('error', (err) => bErrors.push(err.message));
  await eventually('the observer saw alpha', async () => changes.includes('alpha'));

  await a.proclaim('alpha-2');
  await eventually('the observer saw alpha-2', async () => changes.includes('alpha-2'));
  assert.is(await watcherClient.election('poll').leader(), 'alpha-2');
  assert.is(bElected, false, 'beta waits while alpha leads');

  // Resign (the client revokes its lease): beta leads.
  await a.resign();
  await b.wait();
  assert.is(bElected, true);
  await eventually('the observer saw beta', async () => changes.includes('beta'));
  assert.is(await watcherClient.election('poll').leader(), 'beta');

  // Failover by revocation from outside: beta's lease is revoked, gamma (waiting) wins.
  const g = newClient().election('poll', 30).campaign('gamma');
  const betaKey = await b.getCampaignKey();
  // This client's campaign key is `election/<name>/<lease id in decimal>`.
  const betaLease = betaKey.slice(betaKey.lastIndexOf('/') + 1);
  await watcherClient.leaseClient.leaseRevoke({ ID: betaLease });
  await g.wait();
  await eventually('beta\'s client noticed its lease is gone', async () => bErrors.some((m) => /lease not found|expired or revoked/.test(m)));
  await eventually('the observer saw gamma', async () => changes.includes('gamma'));
  assert.equal(changes.filter((c) => c !== undefined), ['alpha', 'alpha-2', 'beta', 'gamma']);
  await g.resign();
  await eventually('no leader once gamma resigned', async () => (await watcherClient.election('poll').leader()) === undefined);
  await observer.cancel();
});

test('failover by expiry: the leader\'s process is killed (kill -9), its 2 s lease expires, the next campaigner leads', async () => {
  const leader = new CtlProcess(process.execPath, [join(__dirname, 'campaign-child.js'), String(keyraft.clientPort), 'expiry', 'first', '2']);
  assert.equal(await leader.lines(1), ['elected']);
  const watcherClient = newClient();
  assert.is(await watcherClient.election('expiry').leader(), 'first');
  const next = newClient().election('expiry', 30).campaign('second');
  let nextElected = false;
  next.on('elected', () => { nextElected = true; });
  await eventually('second queued behind first', async () => (await watcherClient.getAll().prefix('election/expiry/').keys()).length === 2);
  assert.is(nextElected, false);
  await leader.interrupt('SIGKILL');
  // Nobody keeps the dead leader's lease alive: it expires and the waiting campaigner is elected.
  await next.wait();
  assert.is(await watcherClient.election('expiry').leader(), 'second');
  await next.resign();
});

test.run();
