/**
 * Moving between etcd 3.4 and keyraft with snapshots in etcd's format, against the real thing:
 *
 * - etcd -> keyraft: a seeded mix of puts (some under a lease), deletes, range deletes, txns and a
 *   compaction on etcd; `etcdctl snapshot save`; `keyraftctl snapshot restore`; a keyraft member
 *   started on the data dir serves, at every revision from the compacted one to the current one,
 *   exactly what etcd serves (keys, values, create/mod revisions, versions, lease ids), refuses
 *   the revision before the compacted one as etcd does, and keyraftctl and etcdctl print the same
 *   `snapshot status` for the file.
 * - keyraft -> etcd: `etcdctl snapshot save` and `keyraftctl snapshot save` against the running
 *   member (Maintenance.Snapshot) give the same file; `etcdctl snapshot status` (bbolt's
 *   consistency check) and `etcdctl snapshot restore` accept it, and a real etcd started on the
 *   restored dir serves the same history as the member did.
 * - bad files: a wrong trailer, a truncated file, a file that is not bbolt: a clear error, exit 1,
 *   and nothing written.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { EtcdClient } from '../../src/cli/ctl-client.js';
import { CtlError } from '../../src/cli/ctl-exit.js';
import type { KeyValue, RangeResponse } from '../../src/proto/etcd-types.js';
import { needEtcd } from '../etcd-binaries.js';
import { rng } from '../seeded-random.js';
import { freePort, httpRequest, keyraftBin, keyraftctlBin, killAll, runCommand, startKeyraft, tempDir, track, waitHealthy, spawnTracked, type ServerProcess } from '../integration/harness.js';

const etcd = needEtcd('snapshot/etcd-snapshot', ['etcd', 'etcdctl']);
const COMPACTED_MESSAGE = 'etcdserver: mvcc: required revision has been compacted';

function deadline(): { deadlineMs: number } {
  return { deadlineMs: Date.now() + 10_000 };
}

/** A seeded workload on `client`; returns the revision it compacted at. */
async function seed(client: EtcdClient, seedValue: number): Promise<number> {
  const random = rng(seedValue);
  const key = () => Buffer.from(`k/${Math.floor(random() * 40).toString().padStart(2, '0')}`);
  const value = () => {
    const v = Buffer.alloc(Math.floor(random() * 64));
    for (let i = 0; i < v.length; i++) v[i] = Math.floor(random() * 256);
    return v;
  };
  const leases: bigint[] = [];
  for (let i = 0; i < 3; i++) {
    const granted = await client.call<object, { ID: bigint }>('Lease', 'LeaseGrant', { TTL: 3600 }, deadline());
    leases.push(granted.ID);
  }
  let compactedAt = 0;
  for (let i = 0; i < 300; i++) {
    const r = random();
    if (r < 0.5) {
      const lease = random() < 0.2 ? leases[Math.floor(random() * leases.length)]! : 0n;
      await client.call('KV', 'Put', { key: key(), value: value(), lease }, deadline());
    } else if (r < 0.65) {
      await client.call('KV', 'DeleteRange', { key: key() }, deadline());
    } else if (r < 0.7) {
      const from = key();
      await client.call('KV', 'DeleteRange', { key: from, range_end: Buffer.from(`${from.toString()}9`) }, deadline());
    } else {
      // A txn writing two keys (and deleting a third) in one revision: sub revisions.
      const [a, b, c] = [key(), key(), key()];
      if (a.equals(b) || a.equals(c) || b.equals(c)) continue;
      await client.call('KV', 'Txn', {
        compare: [{ key: a, target: 0, result: 1, version: 0 }],
        success: [{ request_put: { key: a, value: value() } }, { request_put: { key: b, value: value() } }, { request_delete_range: { key: c } }],
        failure: [{ request_delete_range: { key: a } }, { request_put: { key: c, value: value() } }],
      }, deadline());
    }
    if (i === 200) {
      const now = await client.call<object, RangeResponse>('KV', 'Range', { key: Buffer.from('x') }, deadline());
      compactedAt = now.header!.revision - 50;
      await client.call('KV', 'Compact', { revision: compactedAt, physical: true }, deadline());
    }
  }
  return compactedAt;
}

interface History {
  revision: number;
  compacted: number;
  /** Every revision from `compacted` to `revision`: the whole key space as served there. */
  at: Map<number, string>;
}

function kvText(kvs: readonly KeyValue[] | undefined): string {
  return JSON.stringify((kvs ?? []).map((kv) => [
    Buffer.from(kv.key).toString('hex'), Buffer.from(kv.value ?? []).toString('hex'),
    kv.create_revision, kv.mod_revision, kv.version, String(kv.lease ?? 0n),
  ]));
}

/** What a server serves: every revision from `compacted` on, and that the one before is refused. */
async function history(port: number, compacted: number): Promise<History> {
  const client = new EtcdClient([`127.0.0.1:${port}`]);
  try {
    const all = { key: Buffer.from([0]), range_end: Buffer.from([0]) };
    const now = await client.call<object, RangeResponse>('KV', 'Range', all, deadline());
    const revision = now.header!.revision;
    const at = new Map<number, string>();
    for (let rev = compacted; rev <= revision; rev++) {
      const r = await client.call<object, RangeResponse>('KV', 'Range', { ...all, revision: rev }, deadline());
      at.set(rev, kvText(r.kvs));
    }
    const before = await client.call('KV', 'Range', { ...all, revision: compacted - 1 }, deadline()).then(() => 'served', (err: unknown) => (err instanceof CtlError ? err.message : String(err)));
    assert.is(before, COMPACTED_MESSAGE, `revision ${compacted - 1} (before the compacted one) on port ${port}`);
    return { revision, compacted, at };
  } finally {
    client.close();
  }
}

function assertSameHistory(got: History, want: History, what: string): void {
  assert.is(got.revision, want.revision, `${what}: current revision`);
  for (const [rev, text] of want.at) {
    if (got.at.get(rev) !== text) assert.fixture(got.at.get(rev) ?? '(missing)', text, `${what}: key space at revision ${rev}`);
  }
}

async function startEtcdOn(dataDir: string, name: string, peerPort: number): Promise<ServerProcess> {
  const clientPort = await freePort();
  const child = spawnTracked(etcd.path('etcd'), [
    '--name', name, '--data-dir', dataDir,
    '--listen-client-urls', `http://127.0.0.1:${clientPort}`, '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-cluster', `${name}=http://127.0.0.1:${peerPort}`, '--log-level', 'error', '--logger', 'zap',
  ]);
  const server = track(child, clientPort, peerPort, dataDir);
  await waitHealthy(server, 'etcd');
  return server;
}

function keyraftctl(args: string[]) {
  return runCommand(process.execPath, [keyraftctlBin, ...args], { timeoutMs: 60_000 });
}

etcd.test(test, 'etcd -> keyraft -> etcd: every revision since the compaction, the leases on the keys, the status numbers', async () => {
  try {
    const dir = tempDir('etcd-snapshot');
    const source = await startEtcdOn(join(dir, 'source.etcd'), 'source', await freePort());
    const client = new EtcdClient([`127.0.0.1:${source.clientPort}`]);
    let compacted: number;
    try {
      compacted = await seed(client, 42);
    } finally {
      client.close();
    }
    const want = await history(source.clientPort, compacted);
    const leasesOf = async (port: number): Promise<string[]> => {
      const c = new EtcdClient([`127.0.0.1:${port}`]);
      try {
        const r = await c.call<object, { leases?: Array<{ ID: bigint }> }>('Lease', 'LeaseLeases', {}, deadline());
        return (r.leases ?? []).map((l) => String(l.ID)).sort();
      } finally {
        c.close();
      }
    };
    const wantLeases = await leasesOf(source.clientPort);
    assert.is(wantLeases.length, 3);
    assert.ok(want.revision > compacted + 50, `the workload wrote ${want.revision} revisions`);
    assert.ok([...want.at.values()].some((t) => /"[1-9][0-9]*"\]/.test(t)), 'some key carries a lease');
    const snap = join(dir, 'from-etcd.db');
    const saved = await runCommand(etcd.path('etcdctl'), [`--endpoints=127.0.0.1:${source.clientPort}`, 'snapshot', 'save', snap]);
    assert.is(saved.code, 0, saved.stderr);
    await source.kill9();

    // The same four numbers from both tools.
    const theirs = await runCommand(etcd.path('etcdctl'), ['snapshot', 'status', snap, '-w', 'json']);
    const ours = await keyraftctl(['snapshot', 'status', snap, '-w', 'json']);
    assert.is(ours.code, 0, ours.stderr);
    assert.is(ours.stdout, theirs.stdout);

    // etcd -> keyraft
    const peer = `http://127.0.0.1:${await freePort()}`;
    const dataDir = join(dir, 'restored.keyraft');
    const restored = await keyraftctl(['snapshot', 'restore', snap, '--data-dir', dataDir, '--name', 'r1', '--initial-cluster', `r1=${peer}`, '--initial-advertise-peer-urls', peer, '--initial-cluster-token', 'moved']);
    assert.is(restored.code, 0, restored.stderr);
    const member = await startKeyraft({ dataDir });
    assertSameHistory(await history(member.clientPort, compacted), want, 'keyraft restored from etcd');
    // The leases came along, live: the lessor serves them with their granted TTL.
    assert.equal(await leasesOf(member.clientPort), wantLeases);
    // The member goes on from there: the next write takes the next revision.
    const after = new EtcdClient([`127.0.0.1:${member.clientPort}`]);
    try {
      const ttl = await after.call<object, { grantedTTL: number; TTL: number }>('Lease', 'LeaseTimeToLive', { ID: BigInt(wantLeases[0]!) }, deadline());
      assert.is(Number(ttl.grantedTTL), 3600);
      assert.ok(Number(ttl.TTL) > 3000, `remaining TTL ${ttl.TTL}`);
      const put = await after.call<object, { header: { revision: number } }>('KV', 'Put', { key: Buffer.from('after'), value: Buffer.from('1') }, deadline());
      assert.is(put.header.revision, want.revision + 1);
      await after.call('KV', 'DeleteRange', { key: Buffer.from('after') }, deadline());
    } finally {
      after.close();
    }
    const keyraftHistory = await history(member.clientPort, compacted);

    // keyraft -> etcd: Maintenance.Snapshot, saved by etcdctl and by keyraftctl.
    const back = join(dir, 'from-keyraft.db');
    const savedBack = await runCommand(etcd.path('etcdctl'), [`--endpoints=127.0.0.1:${member.clientPort}`, 'snapshot', 'save', back]);
    assert.is(savedBack.code, 0, savedBack.stderr);
    const status = await runCommand(etcd.path('etcdctl'), ['snapshot', 'status', back, '-w', 'json']);
    assert.is(status.code, 0, status.stderr);
    assert.is(JSON.parse(status.stdout).revision, want.revision + 2);
    const viaKeyraftctl = join(dir, 'from-keyraft-2.db');
    const saved2 = await keyraftctl([`--endpoints=127.0.0.1:${member.clientPort}`, 'snapshot', 'save', viaKeyraftctl]);
    assert.is(saved2.code, 0, saved2.stderr);
    // The same state gives the same file: the writer is deterministic.
    assert.ok((await readFile(viaKeyraftctl)).equals(await readFile(back)), 'two snapshots of an idle member are identical');
    assert.is((await keyraftctl(['snapshot', 'status', back, '-w', 'json'])).stdout, status.stdout);
    // The temporary files the member streamed from are removed once each stream ends.
    assert.equal(await waitForNoSnapshotFiles(join(dataDir, 'member', 'snap')), []);
    assert.is(await member.stop(), 0, member.output());
    const peerPort = await freePort();
    const etcdDir = join(dir, 'restored.etcd');
    const r = await runCommand(etcd.path('etcdctl'), ['snapshot', 'restore', back, '--data-dir', etcdDir, '--name', 'back',
      '--initial-cluster', `back=http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`]);
    assert.is(r.code, 0, r.stderr);
    const target = await startEtcdOn(etcdDir, 'back', peerPort);
    assertSameHistory(await history(target.clientPort, compacted), keyraftHistory, 'etcd restored from keyraft');
    await target.kill9();
  } finally {
    await killAll();
  }
});

etcd.test(test, 'bad snapshot files: a clear error, exit 1, nothing written', async () => {
  try {
    const dir = tempDir('etcd-snapshot-bad');
    const source = await startEtcdOn(join(dir, 'source.etcd'), 'source', await freePort());
    const client = new EtcdClient([`127.0.0.1:${source.clientPort}`]);
    try {
      for (let i = 0; i < 50; i++) await client.call('KV', 'Put', { key: Buffer.from(`k${i}`), value: Buffer.alloc(200, i) }, deadline());
    } finally {
      client.close();
    }
    const good = join(dir, 'good.db');
    assert.is((await runCommand(etcd.path('etcdctl'), [`--endpoints=127.0.0.1:${source.clientPort}`, 'snapshot', 'save', good])).code, 0);
    // keyraftctl snapshot save against etcd: the same database as etcdctl's (status numbers equal).
    const viaKeyraftctl = join(dir, 'via-keyraftctl.db');
    const saved = await keyraftctl([`--endpoints=127.0.0.1:${source.clientPort}`, 'snapshot', 'save', viaKeyraftctl]);
    assert.is(saved.code, 0, saved.stderr);
    assert.is(saved.stdout, `Snapshot saved at ${viaKeyraftctl}\n`);
    const statusOf = async (file: string) => (await runCommand(etcd.path('etcdctl'), ['snapshot', 'status', file, '-w', 'json'])).stdout;
    assert.is(await statusOf(viaKeyraftctl), await statusOf(good));
    await rm(viaKeyraftctl);
    await source.kill9();
    const bytes = await readFile(good);
    const cases: Array<{ name: string; content: Buffer; args: string[]; message: RegExp }> = [
      { name: 'wrong trailer', content: Buffer.concat([bytes.subarray(0, -1), Buffer.from([bytes[bytes.length - 1]! ^ 0xff])]), args: [], message: /expected sha256 [0-9a-f]{64} \(its trailer\), got [0-9a-f]{64}/ },
      { name: 'truncated', content: bytes.subarray(0, 8192), args: [], message: /snapshot missing hash but --skip-hash-check=false/ },
      { name: 'truncated, hash check skipped', content: bytes.subarray(0, 8192), args: ['--skip-hash-check'], message: /is truncated: its meta counts \d+ pages/ },
      { name: 'not bbolt', content: withTrailer(Buffer.alloc(16384, 0x42)), args: [], message: /is not a bbolt database: meta page 0: invalid magic/ },
    ];
    for (const c of cases) {
      const file = join(dir, `${c.name.replace(/\W+/g, '-')}.db`);
      await writeFile(file, c.content);
      const dataDir = join(dir, `${c.name.replace(/\W+/g, '-')}.keyraft`);
      const before = await readdir(dir);
      const r = await keyraftctl(['snapshot', 'restore', file, '--data-dir', dataDir, ...c.args]);
      assert.is(r.code, 1, `${c.name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, c.message, c.name);
      assert.ok(r.stderr.startsWith('Error: '), c.name);
      assert.equal(await readdir(dir), before, `${c.name}: nothing written next to the data dir`);
      assert.is(await stat(dataDir).then(() => 'exists', () => 'absent'), 'absent', c.name);
    }
    // The good file restores; a second restore into the same dir is refused as etcdctl refuses it.
    const dataDir = join(dir, 'good.keyraft');
    assert.is((await keyraftctl(['snapshot', 'restore', good, '--data-dir', dataDir])).code, 0);
    const again = await keyraftctl(['snapshot', 'restore', good, '--data-dir', dataDir]);
    assert.is(again.code, 1);
    assert.match(again.stderr, `data-dir "${dataDir}" exists`);
  } finally {
    await killAll();
  }
});

etcd.test(test, 'one etcd snapshot restored into each member of a 3-member keyraft cluster: every member serves the same history and goes on from it', async () => {
  try {
    const dir = tempDir('etcd-snapshot-cluster');
    const source = await startEtcdOn(join(dir, 'source.etcd'), 'source', await freePort());
    const client = new EtcdClient([`127.0.0.1:${source.clientPort}`]);
    let compacted: number;
    try {
      compacted = await seed(client, 7);
    } finally {
      client.close();
    }
    const want = await history(source.clientPort, compacted);
    const snap = join(dir, 'from-etcd.db');
    assert.is((await runCommand(etcd.path('etcdctl'), [`--endpoints=127.0.0.1:${source.clientPort}`, 'snapshot', 'save', snap])).code, 0);
    await source.kill9();
    const peers = [await freePort(), await freePort(), await freePort()];
    const initialCluster = peers.map((p, i) => `m${i}=http://127.0.0.1:${p}`).join(',');
    for (let i = 0; i < 3; i++) {
      const r = await keyraftctl(['snapshot', 'restore', snap, '--name', `m${i}`, '--data-dir', join(dir, `m${i}`),
        '--initial-cluster', initialCluster, '--initial-cluster-token', 'restored-3', '--initial-advertise-peer-urls', `http://127.0.0.1:${peers[i]}`]);
      assert.is(r.code, 0, r.stderr);
    }
    const members: ServerProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const clientPort = await freePort();
      const child = spawnTracked(process.execPath, [keyraftBin, '--name', `m${i}`, '--data-dir', join(dir, `m${i}`),
        '--listen-client-urls', `http://127.0.0.1:${clientPort}`, '--listen-peer-urls', `http://127.0.0.1:${peers[i]}`,
        '--heartbeat-interval', '50', '--election-timeout', '500'], { env: { KEYRAFT_LOG_LEVEL: 'warn' } });
      members.push(track(child, clientPort, peers[i]!, join(dir, `m${i}`)));
    }
    for (const m of members) await waitHealthy(m, 'keyraft');
    for (const [i, m] of members.entries()) assertSameHistory(await history(m.clientPort, compacted), want, `member m${i}`);
    const c0 = new EtcdClient([`127.0.0.1:${members[0]!.clientPort}`]);
    const c2 = new EtcdClient([`127.0.0.1:${members[2]!.clientPort}`]);
    try {
      const put = await c0.call<object, { header: { revision: number } }>('KV', 'Put', { key: Buffer.from('after'), value: Buffer.from('x') }, deadline());
      assert.is(put.header.revision, want.revision + 1);
      const got = await c2.call<object, RangeResponse>('KV', 'Range', { key: Buffer.from('after') }, deadline());
      assert.is(got.kvs?.[0]?.mod_revision, want.revision + 1);
    } finally {
      c0.close();
      c2.close();
    }
  } finally {
    await killAll();
  }
});

test('Maintenance.Snapshot: a client that leaves after the first chunk; the gateway streams the same bytes', async () => {
  try {
    const member = await startKeyraft();
    const client = new EtcdClient([`127.0.0.1:${member.clientPort}`]);
    try {
      // About 6 MB: many chunks, so the stream is still going when the client leaves.
      const value = Buffer.alloc(2000, 0x61);
      for (let i = 0; i < 30; i++) {
        const success = Array.from({ length: 100 }, (_, j) => ({ request_put: { key: Buffer.from(`k/${i}/${j}`), value } }));
        await client.call('KV', 'Txn', { success }, deadline());
      }
      let first: { remaining_bytes?: number; blob?: Buffer } | undefined;
      for await (const response of client.serverStream<object, { remaining_bytes?: number; blob?: Buffer }>('Maintenance', 'Snapshot', {}, deadline())) {
        first = response;
        break; // cancels the call
      }
      assert.is(first?.blob?.length, 32 * 1024);
      assert.ok((first?.remaining_bytes ?? 0) > 5_000_000, `remaining ${first?.remaining_bytes}`);
      assert.equal(await waitForNoSnapshotFiles(join(member.dataDir, 'member', 'snap')), [], 'the file of the abandoned stream is removed');

      // The whole stream over gRPC, and over the gateway: the same bytes, a correct trailer.
      const chunks: Buffer[] = [];
      let lastRemaining = -1;
      for await (const response of client.serverStream<object, { remaining_bytes?: number; blob?: Buffer }>('Maintenance', 'Snapshot', {}, deadline())) {
        chunks.push(Buffer.from(response.blob ?? []));
        lastRemaining = response.remaining_bytes ?? 0;
      }
      assert.is(lastRemaining, 0);
      const viaGrpc = Buffer.concat(chunks);
      assert.ok(createHash('sha256').update(viaGrpc.subarray(0, -32)).digest().equals(viaGrpc.subarray(-32)), 'trailer is the SHA-256 of the database');
      const res = await httpRequest(member.clientPort, 'POST', '/v3/maintenance/snapshot', '{}');
      assert.is(res.status, 200);
      const lines = res.body.trim().split('\n').map((l) => JSON.parse(l) as { result: { blob: string; remaining_bytes?: string } });
      assert.is(lines.at(-1)!.result.remaining_bytes, undefined);
      assert.is(lines[0]!.result.remaining_bytes, String(viaGrpc.length - 32 - 32 * 1024));
      assert.ok(Buffer.concat(lines.map((l) => Buffer.from(l.result.blob, 'base64'))).equals(viaGrpc), 'gateway and gRPC stream the same bytes');
    } finally {
      client.close();
    }
  } finally {
    await killAll();
  }
});

/** The member's temporary snapshot files, once none is left or after a bound (then the leftovers). */
async function waitForNoSnapshotFiles(snapDir: string): Promise<string[]> {
  for (let attempt = 0; ; attempt++) {
    const left = (await readdir(snapDir)).filter((n) => n.startsWith('etcd-snapshot-'));
    if (left.length === 0 || attempt === 100) return left;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function withTrailer(body: Buffer): Buffer {
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

test.run();
