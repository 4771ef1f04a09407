/**
 * No acknowledged write is lost across kill -9: 20 cycles of (start, stream puts from many
 * concurrent clients, SIGKILL at a random moment, restart, check every acknowledged put). Each
 * put writes a distinct key whose value names the cycle, so a lost or stale write is visible.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { EtcdClient } from '../../src/cli/ctl-client.js';
import { b64, killAll, startKeyraft, tempDir, postJson, type ServerProcess } from './harness.js';

const test = suite('crash-recovery');
const cycles = Number(process.env.KEYRAFT_CRASH_CYCLES ?? 20);
const concurrency = 32;

test.after(async () => {
  await killAll();
});

/** Sends puts from `concurrency` keep-alive clients until stopped; records the acknowledged ones. */
function putStream(port: number, cycle: number, acked: Map<string, string>): { stop(): void; done: Promise<void> } {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  let stopped = false;
  let next = 0;
  const worker = async () => {
    while (!stopped) {
      const key = `crash/${cycle}/${next++}`;
      const value = `cycle-${cycle}-${key}`;
      const body = JSON.stringify({ key: b64(key), value: b64(value) });
      const ok = await new Promise<boolean>((resolve) => {
        const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v3/kv/put', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200));
          res.on('error', () => resolve(false));
        });
        req.on('error', () => resolve(false));
        req.end(body);
      });
      if (ok) acked.set(key, value);
      else return; // the server is gone
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, worker)).then(() => agent.destroy());
  return { stop: () => { stopped = true; }, done };
}

test(`every acknowledged put survives ${cycles} kill -9 cycles`, async () => {
  const dataDir = join(tempDir('crash'), 'member.keyraft');
  const acked = new Map<string, string>();
  let server: ServerProcess | undefined;
  // A seeded sequence of kill delays, so a failing run can be repeated.
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  try {
    for (let cycle = 0; cycle < cycles; cycle++) {
      server = await startKeyraft({ dataDir });
      const before = acked.size;
      const stream = putStream(server.clientPort, cycle, acked);
      // Kill after a few acknowledged puts plus a random delay, mid-stream.
      const target = before + 20;
      while (acked.size < target) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, Math.floor(random() * 150)));
      await server.kill9();
      stream.stop();
      await stream.done;
      assert.ok(acked.size > before, `cycle ${cycle}: no put was acknowledged`);
    }
    server = await startKeyraft({ dataDir });
    const all = await postJson(server.clientPort, '/v3/kv/range', { key: b64('crash/'), range_end: b64('crash0') });
    assert.is(all.status, 200, all.raw);
    const found = new Map<string, string>();
    for (const kv of all.json.kvs ?? []) {
      found.set(Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString());
    }
    const missing = [...acked.keys()].filter((k) => found.get(k) !== acked.get(k));
    assert.is(missing.length, 0, `${missing.length} of ${acked.size} acknowledged puts lost, e.g. ${missing.slice(0, 5).join(', ')}`);
    // Revisions stay dense and consistent: one revision per put, starting at 2.
    assert.ok(Number(all.json.header.revision) >= acked.size + 1, `revision ${all.json.header.revision} < ${acked.size + 1}`);
  } finally {
    await server?.kill9();
  }
});

test('every acknowledged put survives kill -9 cycles that restart from the history image, a compaction midway', async () => {
  const dataDir = join(tempDir('crash-image'), 'member.keyraft');
  const acked = new Map<string, string>();
  let server: ServerProcess | undefined;
  let seed = 999;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const start = () => startKeyraft({ dataDir, args: ['--history-image-records', '200'], env: { KEYRAFT_LOG_LEVEL: 'info' } });
  let restartsFromImage = 0;
  try {
    for (let cycle = 0; cycle < 8; cycle++) {
      server = await start();
      if (cycle > 0 && imageRecordsOf(server) > 0) restartsFromImage++;
      if (cycle === 4) {
        // Compacting makes the image taken before it unusable; the member writes a new one.
        const status = await postJson(server.clientPort, '/v3/kv/range', { key: b64('crash/'), count_only: true });
        const compact = await postJson(server.clientPort, '/v3/kv/compaction', { revision: String(Number(status.json.header.revision) - 100) });
        assert.is(compact.status, 200, compact.raw);
      }
      // Past the image threshold each cycle, then a kill at a random moment.
      await killMidStream(server, acked, 400, (port) => putStream(port, cycle, acked), random);
    }
    server = await start();
    if (imageRecordsOf(server) > 0) restartsFromImage++;
    const all = await postJson(server.clientPort, '/v3/kv/range', { key: b64('crash/'), range_end: b64('crash0') });
    assert.is(all.status, 200, all.raw);
    const found = new Map<string, string>();
    for (const kv of all.json.kvs ?? []) found.set(Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString());
    const missing = [...acked.keys()].filter((k) => found.get(k) !== acked.get(k));
    assert.is(missing.length, 0, `${missing.length} of ${acked.size} acknowledged puts lost, e.g. ${missing.slice(0, 5).join(', ')}`);
    assert.ok(restartsFromImage >= 4, `restarts that read an image: ${restartsFromImage} of 8`);
  } finally {
    await server?.kill9();
  }
});

/**
 * Puts to ONE key from `concurrency` clients until stopped, recording each acknowledged put's
 * revision (from the answer's header) and value: every one of them is history but the last.
 */
function historyStream(port: number, cycle: number, acked: Map<number, string>): { stop(): void; done: Promise<void> } {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  let stopped = false;
  let next = 0;
  const worker = async () => {
    while (!stopped) {
      const value = `cycle-${cycle}-put-${next++}-${'h'.repeat(200)}`;
      const body = JSON.stringify({ key: b64('history/one'), value: b64(value) });
      const revision = await new Promise<number | undefined>((resolve) => {
        const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v3/kv/put', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => { text += chunk; });
          res.on('end', () => {
            if (res.statusCode !== 200) return resolve(undefined);
            try {
              resolve(Number(JSON.parse(text).header.revision));
            } catch {
              resolve(undefined);
            }
          });
          res.on('error', () => resolve(undefined));
        });
        req.on('error', () => resolve(undefined));
        req.end(body);
      });
      if (revision === undefined) return; // the server is gone
      acked.set(revision, value);
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, worker)).then(() => agent.destroy());
  return { stop: () => { stopped = true; }, done };
}

test('every acknowledged revision of one key is still readable at its revision after kill -9 (history lives on disk)', async () => {
  const dataDir = join(tempDir('crash-history'), 'member.keyraft');
  const acked = new Map<number, string>();
  let server: ServerProcess | undefined;
  let seed = 777;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  try {
    for (let cycle = 0; cycle < 3; cycle++) {
      server = await startKeyraft({ dataDir });
      // Enough puts that most are old revisions whose values left memory, then kill mid-stream.
      await killMidStream(server, acked, 500, (port) => historyStream(port, cycle, acked), random);
    }
    server = await startKeyraft({ dataDir });
    const port = server.clientPort;
    const revisions = [...acked.keys()].sort((x, y) => x - y);
    const wrong: string[] = [];
    // Every acknowledged revision, read at that revision: 16 reads in flight.
    let at = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (at < revisions.length) {
        const rev = revisions[at++]!;
        const r = await postJson(port, '/v3/kv/range', { key: b64('history/one'), revision: String(rev) });
        const kv = r.json?.kvs?.[0];
        const got = kv === undefined ? undefined : Buffer.from(kv.value, 'base64').toString();
        if (r.status !== 200 || got !== acked.get(rev) || Number(kv.mod_revision) !== rev) wrong.push(`${rev}: ${r.status} ${got?.slice(0, 24)}`);
      }
    }));
    assert.is(wrong.length, 0, `${wrong.length} of ${revisions.length} acknowledged revisions read wrong, e.g. ${wrong.slice(0, 5).join('; ')}`);
  } finally {
    await server?.kill9();
  }
});

/** Every key (with its value and revisions) at `revision` (0: current), and the count. */
/**
 * Starts a put stream on the member, waits until `atLeast` more puts were acknowledged, then kill -9s the member
 * at a random moment within 150 ms and waits for the stream to end.
 */
async function killMidStream(
  server: ServerProcess, acked: Map<unknown, string>, atLeast: number,
  startStream: (port: number) => { stop(): void; done: Promise<void> }, random: () => number,
): Promise<void> {
  const before = acked.size;
  const stream = startStream(server.clientPort);
  while (acked.size < before + atLeast) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, Math.floor(random() * 150)));
  await server.kill9();
  stream.stop();
  await stream.done;
}

async function rangeAll(client: EtcdClient, revision: number): Promise<unknown> {
  const res = await client.call<object, { kvs?: unknown[]; count?: unknown; more?: unknown }>('KV', 'Range',
    { key: Buffer.from([0]), range_end: Buffer.from([0]), revision }, { deadlineMs: Date.now() + 60_000 });
  return { kvs: res.kvs ?? [], count: res.count, more: res.more };
}

/** The member's "mvcc store recovered" log line: how many records it read from the history image. */
function imageRecordsOf(server: ServerProcess): number {
  const line = server.output().split('\n').find((l) => l.includes('"mvcc store recovered"'));
  assert.ok(line !== undefined, `no "mvcc store recovered" line in:\n${server.output().slice(0, 2000)}`);
  return Number(JSON.parse(line!).imageRecords);
}

for (const image of [false, true]) test(`a restarted member answers every key and revision as before, after a graceful stop and after kill -9 (a backend large enough for the scan worker${image ? '; from the history image' : ''})`, async () => {
  const dataDir = join(tempDir('restart-reads'), 'member.keyraft');
  // With an image: one is written after every 5,000 records not covered, and start-up reads it.
  const start = () => startKeyraft({ dataDir, args: ['--history-image-records', image ? '5000' : '0'], env: { KEYRAFT_LOG_LEVEL: 'info' } });
  let server = await start();
  let client = new EtcdClient([`127.0.0.1:${server.clientPort}`]);
  // Seeded values that LevelDB cannot compress much: the backend passes the 4 MiB above which
  // start-up scans it in a worker thread (Limits.backendScanWorkerBytesMin).
  let seed = 4242;
  const randomByte = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) >>> 8) & 0xff;
  const value = (n: number) => Buffer.from(Array.from({ length: 200 }, () => randomByte()).concat([n & 0xff]));
  const keys = 4000;
  const revisions: number[] = [];
  try {
    for (let round = 0; round < 8; round++) {
      for (let first = 0; first < keys; first += 100) {
        const success = [];
        for (let k = first; k < first + 100; k++) {
          // Keys of every 16th block are deleted and re-created between rounds: several generations.
          if (round % 3 === 2 && k % 16 === 0) continue;
          success.push({ request_put: { key: Buffer.from(`restart/${k.toString().padStart(5, '0')}`), value: value(k) } });
        }
        await client.call('KV', 'Txn', { success }, { deadlineMs: Date.now() + 60_000 });
      }
      if (round % 3 === 1) {
        const res = await client.call<object, { header: { revision: unknown } }>('KV', 'DeleteRange',
          { key: Buffer.from('restart/00'), range_end: Buffer.from('restart/01') }, { deadlineMs: Date.now() + 60_000 });
        revisions.push(Number(res.header.revision));
      }
      const res = await client.call<object, { header: { revision: unknown } }>('KV', 'Range', { key: Buffer.from('restart/'), count_only: true }, { deadlineMs: Date.now() + 60_000 });
      revisions.push(Number(res.header.revision));
    }
    const before = new Map<number, unknown>();
    before.set(0, await rangeAll(client, 0));
    for (const rev of revisions) before.set(rev, await rangeAll(client, rev));
    for (const how of ['graceful', 'kill -9'] as const) {
      client.close();
      if (how === 'graceful') await server.stop();
      else await server.kill9();
      server = await start();
      client = new EtcdClient([`127.0.0.1:${server.clientPort}`]);
      const fromImage = imageRecordsOf(server);
      if (image) assert.ok(fromImage >= 20_000, `${how}: ${fromImage} records read from the image`);
      else assert.is(fromImage, 0);
      for (const [rev, expected] of before) assert.equal(await rangeAll(client, rev), expected, `${how}: range of everything at revision ${rev}`);
    }
  } finally {
    client.close();
    await server.kill9();
  }
});

test.run();
