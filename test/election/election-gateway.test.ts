/**
 * The Election service on the JSON gateway (/v3/election/*), side by side with etcd 3.4's
 * grpc-gateway: the same requests, and the replies (HTTP status and JSON, stream lines for
 * /v3/election/observe) must match once lease ids and member/cluster ids are replaced. Also: a
 * Campaign whose HTTP client goes away while it waits resigns (its key is deleted), as etcd's does
 * when Go's net/http cancels the request context.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { request as httpRequestRaw, type ClientRequest } from 'node:http';
import { needEtcd } from '../etcd-binaries.js';
import { b64, killAll, postJson, startEtcd, startKeyraft, type ServerProcess } from '../integration/harness.js';
import { eventually } from './eventually.js';

const test = suite('election-gateway');
let keyraft: ServerProcess;
let etcd: ServerProcess;
const needBoth = needEtcd('election/election-gateway', ['etcd']);

/** A POST whose reply body is read as it streams; `abort` drops the connection. */
function streamingPost(port: number, path: string, body: unknown): { text: () => string; status: Promise<number>; abort(): void } {
  let text = '';
  let req: ClientRequest;
  const status = new Promise<number>((resolve, reject) => {
    req = httpRequestRaw({ host: '127.0.0.1', port, path, method: 'POST' }, (res) => {
      resolve(res.statusCode ?? 0);
      res.on('data', (d) => { text += d; });
      res.on('error', () => undefined);
    });
    req.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err);
    });
    req.end(JSON.stringify(body));
  });
  return { text: () => text, status, abort: () => req.destroy() };
}

/** Replaces lease ids (decimal, and in hex inside base64 keys) and member/cluster ids. */
function normalizer(leases: string[]): (raw: string) => string {
  const walk = (value: unknown, field: string): unknown => {
    if (Array.isArray(value)) return value.map((v) => walk(v, field));
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, k)]));
    }
    if (typeof value !== 'string') return value;
    if (field === 'cluster_id' || field === 'member_id') return '<id>';
    if (field === 'lease' || field === 'ID') {
      const i = leases.indexOf(value);
      return i >= 0 ? `<lease${i}>` : `<other lease>`;
    }
    if (field === 'key' || field === 'name' || field === 'value') {
      let text = Buffer.from(value, 'base64').toString();
      for (const [i, lease] of leases.entries()) text = text.replaceAll(BigInt(lease).toString(16), `<hex${i}>`);
      return `b64(${text})`;
    }
    return value;
  };
  return (raw) => raw.split('\n').filter((l) => l.trim() !== '').map((line) => {
    try {
      return JSON.stringify(walk(JSON.parse(line), ''));
    } catch {
      return line;
    }
  }).join('\n');
}

async function keyCount(port: number, prefix: string): Promise<number> {
  const end = Buffer.from(prefix);
  end[end.length - 1]!++;
  const r = await postJson(port, '/v3/kv/range', { key: b64(prefix), range_end: end.toString('base64'), count_only: true });
  return Number(r.json.count ?? 0);
}

async function run(port: number): Promise<string[]> {
  const out: string[] = [];
  const leases: string[] = [];
  const norm = normalizer(leases);
  const post = async (what: string, path: string, body: unknown) => {
    const r = await postJson(port, path, body);
    out.push(`${what}: ${r.status} ${norm(r.raw)}`);
    return r.json;
  };
  for (let i = 0; i < 3; i++) leases.push((await postJson(port, '/v3/lease/grant', { TTL: 60 })).json.ID as string);
  const [a, b, c] = leases as [string, string, string];
  await post('leader of nothing', '/v3/election/leader', { name: b64('g') });
  // grpc-gateway writes the stream's status line with its first message: read it at the end.
  const observer = streamingPost(port, '/v3/election/observe', { name: b64('g') });
  const elected = await post('campaign a', '/v3/election/campaign', { name: b64('g'), lease: a, value: b64('a1') });
  const waiting = streamingPost(port, '/v3/election/campaign', { name: b64('g'), lease: b, value: b64('b1') });
  await eventually('b waits', async () => (await keyCount(port, 'g/')) === 2);
  await post('proclaim a2', '/v3/election/proclaim', { leader: elected.leader, value: b64('a2') });
  // Each write waits for the observer to see the one before: the header of a watch response that
  // catches up carries the revision current when it is sent (etcd's unsynced watchers), so a
  // later write would show through in it.
  await eventually('observer saw a2', async () => observer.text().split('\n').filter((l) => l !== '').length >= 2);
  await post('proclaim, not leader', '/v3/election/proclaim', { leader: { ...elected.leader, rev: '999' }, value: b64('x') });
  await post('proclaim, no leader field', '/v3/election/proclaim', { value: b64('x') });
  await post('proclaim, empty key', '/v3/election/proclaim', { leader: {}, value: b64('x') });
  await post('leader', '/v3/election/leader', { name: b64('g') });
  await post('resign, not held', '/v3/election/resign', { leader: { ...elected.leader, key: b64('g/nobody') } });
  await post('resign, no leader field', '/v3/election/resign', {});
  await post('campaign, unknown lease', '/v3/election/campaign', { name: b64('g'), lease: '12345', value: b64('x') });
  await post('leader, bad json', '/v3/election/leader', 'not json');
  // A third campaigner whose HTTP client goes away while it waits: its key goes.
  const gone = streamingPost(port, '/v3/election/campaign', { name: b64('g'), lease: c, value: b64('c1') });
  await eventually('c waits', async () => (await keyCount(port, 'g/')) === 3);
  gone.abort();
  await eventually('the abandoned campaign resigned', async () => (await keyCount(port, 'g/')) === 2);
  out.push('abandoned campaign resigned');
  await post('revoke a', '/v3/lease/revoke', { ID: a });
  out.push(`waiting campaign answered: ${await waiting.status} ${norm(await eventuallyText(waiting))}`);
  await eventually('observer saw b1', async () => observer.text().split('\n').filter((l) => l !== '').length >= 3);
  await post('resign b', '/v3/election/resign', { leader: JSON.parse(waiting.text()).leader });
  await post('leader after resign', '/v3/election/leader', { name: b64('g') });
  observer.abort();
  out.push(`observed: ${await observer.status}\n${norm(observer.text())}`);
  for (const lease of [b, c]) await postJson(port, '/v3/lease/revoke', { ID: lease });
  return out;
}

async function eventuallyText(call: { text: () => string }): Promise<string> {
  await eventually('a reply body', async () => call.text().endsWith('}'));
  return call.text();
}

test.before(async () => {
  if (needBoth.found) [keyraft, etcd] = await Promise.all([startKeyraft(), startEtcd()]);
});

test.after(async () => {
  await killAll();
});

needBoth.test(test, '/v3/election/* replies and the observe stream: the same as etcd 3.4 gateway; an abandoned campaign resigns', async () => {
  const fromEtcd = await run(etcd.clientPort);
  const fromKeyraft = await run(keyraft.clientPort);
  for (let i = 0; i < fromEtcd.length; i++) assert.is(fromKeyraft[i], fromEtcd[i], `step ${i}`);
  assert.is(fromKeyraft.length, fromEtcd.length);
  assert.ok(fromKeyraft.some((l) => l.startsWith('proclaim, not leader: 500 {"error":"election: not leader"')), fromKeyraft.join('\n'));
  assert.match(fromKeyraft.at(-1)!, /b64\(g\/<hex0>\).*b64\(a1\)[^]*b64\(a2\)[^]*b64\(g\/<hex1>\).*b64\(b1\)/);
});

test.run();
