/**
 * Leases through etcdctl 3.4 and the JSON gateway, side by side with a real etcd 3.4: the same
 * sequence runs against both and the outputs must match once lease ids (chosen by each server),
 * member ids and ports are normalized. A remaining TTL may differ by a second (each server's
 * clock), so it is checked for range instead.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { needEtcd } from '../etcd-binaries.js';
import {
  etcdctl, killAll, normalizeIds, postJson, b64, startEtcd, startKeyraft, type CommandResult, type ServerProcess,
} from '../integration/harness.js';

const test = suite('lease-etcdctl');
let keyraft: ServerProcess;
let etcd: ServerProcess;
const needBoth = needEtcd('lease-integration/lease-etcdctl', ['etcd', 'etcdctl']);

// Each step runs on both servers; "$L" and "$M" are replaced by the lease ids that server granted.
const steps: string[][] = [
  ['lease', 'grant', '60'],
  ['lease', 'grant', '100'],
  ['put', '--lease=$L', 'foo', 'bar'],
  ['put', '--lease=$L', 'foo2', 'bar2'],
  ['put', '--lease=$M', 'zoo', 'z'],
  ['get', 'foo', '-w', 'json'],
  ['lease', 'timetolive', '$L'],
  ['lease', 'timetolive', '$L', '--keys'],
  ['lease', 'timetolive', '$L', '--keys', '-w', 'json'],
  ['lease', 'list'],
  ['lease', 'keep-alive', '--once', '$L'],
  ['lease', 'keep-alive', '--once', '$L', '-w', 'json'],
  ['put', 'foo2', 'moved', '--lease=$M'],
  ['lease', 'timetolive', '$M', '--keys'],
  ['put', 'zoo', 'kept', '--ignore-lease'],
  ['get', 'zoo', '-w', 'json'],
  ['lease', 'revoke', '$L'],
  ['get', '', '--prefix', '-w', 'json'],
  ['lease', 'revoke', '$L'],
  ['lease', 'timetolive', '$L'],
  ['lease', 'timetolive', '$L', '-w', 'json'],
  ['lease', 'keep-alive', '--once', '$L'],
  ['put', '--lease=1234', 'x', 'y'],
  ['lease', 'grant', '0'],
  ['lease', 'grant', '1'],
  ['lease', 'grant', '9000000001'],
  ['lease', 'revoke', '$M', '-w', 'json'],
  ['get', '', '--prefix'],
];

const grantedId = (r: CommandResult) => /lease ([0-9a-f]+) granted/.exec(r.stdout)?.[1];

function normalize(result: CommandResult, server: ServerProcess, ids: string[]): string {
  let text = `exit=${result.code}\n--stdout--\n${result.stdout}\n--stderr--\n${result.stderr}`;
  ids.forEach((hex, i) => {
    text = text.replaceAll(hex, `<lease${i}>`).replaceAll(BigInt(`0x${hex}`).toString(), `<lease${i}>`);
  });
  return normalizeIds(text.replace(/endpoint:\/\/client-[0-9a-f-]+\//g, 'endpoint://client-<uuid>/'))
    .replaceAll(String(server.clientPort), '<client-port>')
    .replace(/remaining\((\d+)s\)/g, 'remaining(<ttl>)')
    // etcd lists a lease's keys in Go map order (random): compare them as a set.
    .replace(/attached keys\(\[([^\]]*)\]\)/g, (_, keys: string) => `attached keys([${keys.split(' ').sort().join(' ')}])`)
    .replace(/"keys":\[([^\]]*)\]/g, (_, keys: string) => `"keys":[${keys.split(',').sort().join(',')}]`)
    .replace(/"ttl":(\d+),"granted-ttl"/g, '"ttl":<ttl>,"granted-ttl"')
    .replace(/^\{"level":"warn","ts":"[^"]+",/gm, '{"level":"warn",')
    .replace(/"caller":"[^"]+",?/g, '');
}

async function run(server: ServerProcess): Promise<{ outputs: string[]; raw: CommandResult[] }> {
  const ids: string[] = [];
  const outputs: string[] = [];
  const raw: CommandResult[] = [];
  for (const step of steps) {
    const args = step.map((a) => a.replace('$L', ids[0] ?? '').replace('$M', ids[1] ?? ''));
    const r = await etcdctl(server.clientPort, args);
    const id = args[0] === 'lease' && args[1] === 'grant' ? grantedId(r) : undefined;
    if (id !== undefined) ids.push(id);
    raw.push(r);
    outputs.push(normalize(r, server, ids));
  }
  return { outputs, raw };
}

test.before(async () => {
  if (needBoth.found) [keyraft, etcd] = await Promise.all([startKeyraft(), startEtcd()]);
});

test.after(async () => {
  await killAll();
});

needBoth.test(test, 'etcdctl lease grant|revoke|timetolive|list|keep-alive --once and put --lease: same output as etcd 3.4', async () => {
  const [fromEtcd, fromKeyraft] = [await run(etcd), await run(keyraft)];
  for (let i = 0; i < steps.length; i++) {
    assert.is(fromKeyraft.outputs[i], fromEtcd.outputs[i], `etcdctl ${steps[i]!.join(' ')}`);
  }
  // The remaining TTL a few etcdctl runs after the grant: counting down from 60, and never above it.
  const remaining = Number(/remaining\((\d+)s\)/.exec(fromKeyraft.raw[6]!.stdout)?.[1]);
  assert.ok(remaining > 30 && remaining <= 60, `remaining ${remaining}`);
});

needBoth.test(test, 'JSON gateway: /v3/lease/* and the /v3/kv/lease/* aliases answer as etcd 3.4', async () => {
  const seq = async (port: number) => {
    const out: string[] = [];
    const grant = await postJson(port, '/v3/lease/grant', { TTL: 30 });
    const id = grant.json.ID as string;
    const norm = (s: string) => normalizeIds(s.replaceAll(id, '<lease>'))
      .replace(/"TTL":"(29|30)"/, '"TTL":"<ttl>"');
    out.push(`${grant.status} ${norm(grant.raw)}`);
    const given = await postJson(port, '/v3/lease/grant', { TTL: 30, ID: '77' });
    out.push(`${given.status} ${norm(given.raw)}`);
    const again = await postJson(port, '/v3/lease/grant', { TTL: 30, ID: '77' });
    out.push(`${again.status} ${norm(again.raw)}`);
    const big = await postJson(port, '/v3/lease/grant', { TTL: '9000000001' });
    out.push(`${big.status} ${norm(big.raw)}`);
    const put = await postJson(port, '/v3/kv/put', { key: b64('gk'), value: b64('v'), lease: id });
    out.push(`${put.status} ${norm(put.raw)}`);
    for (const path of ['/v3/lease/timetolive', '/v3/kv/lease/timetolive']) {
      const ttl = await postJson(port, path, { ID: id, keys: true });
      out.push(`${ttl.status} ${norm(ttl.raw)}`);
    }
    // Other leases of the first test may still be alive on one server: check ours are listed.
    for (const path of ['/v3/lease/leases', '/v3/kv/lease/leases']) {
      const list = await postJson(port, path, {});
      const ids = (list.json.leases as Array<{ ID: string }>).map((l) => l.ID);
      out.push(`${list.status} ${normalizeIds(JSON.stringify(list.json.header))} ours listed: ${ids.includes(id) && ids.includes('77')}`);
    }
    // The keep-alive stream over HTTP: one {"result":...} line per request.
    const kept = await postJson(port, '/v3/lease/keepalive', { ID: id });
    out.push(`${kept.status} ${norm(kept.raw)}`);
    const unknown = await postJson(port, '/v3/lease/keepalive', { ID: '12345' });
    out.push(`${unknown.status} ${norm(unknown.raw)}`);
    const revoke = await postJson(port, '/v3/lease/revoke', { ID: id });
    out.push(`${revoke.status} ${norm(revoke.raw)}`);
    const revoke2 = await postJson(port, '/v3/kv/lease/revoke', { ID: id });
    out.push(`${revoke2.status} ${norm(revoke2.raw)}`);
    const gone = await postJson(port, '/v3/lease/timetolive', { ID: id });
    out.push(`${gone.status} ${norm(gone.raw)}`);
    const revoke77 = await postJson(port, '/v3/kv/lease/revoke', { ID: '77' });
    out.push(`${revoke77.status} ${norm(revoke77.raw)}`);
    return out;
  };
  const [fromEtcd, fromKeyraft] = [await seq(etcd.clientPort), await seq(keyraft.clientPort)];
  for (let i = 0; i < fromEtcd.length; i++) assert.is(fromKeyraft[i], fromEtcd[i], `gateway step ${i}`);
});

test.run();
