/**
 * A client that stops reading its Watch stream: the member's memory must not grow with what it
 * cannot deliver. Two fresh members take the same writes (4,000 puts of 4 KiB, ~16 MB of
 * history, which both keep in memory); both have a reading watcher; one also has a stream with
 * 4 watchers on the same prefix whose client stops reading (HTTP/2 flow control then stops the
 * server's writes). Were the server to queue for it, that member would hold 4 x 16 MB more; it
 * may hold only a bounded amount more (RSS measured from /proc). The reading watcher meanwhile
 * gets every event before the stalled one reads again (not slowed), and once the stalled client
 * reads, each of its watchers catches up from history: every event, in revision order, no gap.
 */
import * as http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Etcd3 } from 'etcd3';
import { decode, encode, messageType } from '../../src/proto/codec.js';
import { killAll, startKeyraft, type ServerProcess } from './harness.js';

const watchRequestType = messageType('etcdserverpb.WatchRequest');
const watchResponseType = messageType('etcdserverpb.WatchResponse');

interface Resp { watch_id?: number; created?: boolean; events?: Array<{ kv?: { mod_revision?: number } }> }

/** A Watch stream whose reading the test turns off and on (pause/resume of the HTTP/2 stream). */
class Stream {
  readonly revs = new Map<number, number[]>();
  created = 0;
  private pending = Buffer.alloc(0);
  readonly session: http2.ClientHttp2Session;
  readonly stream: http2.ClientHttp2Stream;
  private waiters: Array<() => void> = [];

  constructor(port: number) {
    // The default 64 KiB windows: a client that stops reading stops the server after that much.
    this.session = http2.connect(`http://127.0.0.1:${port}`);
    this.session.on('error', () => {});
    this.stream = this.session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
    this.stream.on('error', () => {});
    this.stream.on('data', (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 5 && this.pending.length >= 5 + this.pending.readUInt32BE(1)) {
        const n = this.pending.readUInt32BE(1);
        const r = decode<Resp>(watchResponseType, this.pending.subarray(5, 5 + n));
        this.pending = this.pending.subarray(5 + n);
        if (r.created) this.created++;
        const list = this.revs.get(r.watch_id ?? 0) ?? [];
        for (const e of r.events ?? []) list.push(e.kv!.mod_revision!);
        this.revs.set(r.watch_id ?? 0, list);
      }
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  watch(n: number): void {
    for (let i = 0; i < n; i++) {
      const message = encode(watchRequestType, { create_request: { key: Buffer.from('s/'), range_end: Buffer.from('s0') } });
      const framed = Buffer.alloc(5 + message.length);
      framed.writeUInt32BE(message.length, 1);
      framed.set(message, 5);
      this.stream.write(framed);
    }
  }

  count(id: number): number {
    return this.revs.get(id)?.length ?? 0;
  }

  async until(cond: () => boolean): Promise<void> {
    while (!cond()) await new Promise<void>((r) => this.waiters.push(r));
  }

  close(): void {
    this.stream.close(http2.constants.NGHTTP2_CANCEL);
    this.session.destroy();
  }
}

function rssMiB(server: ServerProcess): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))?.[1] ?? 0);
  return kb / 1024;
}

const PUTS = 4_000;
const VALUE = Buffer.alloc(4096, 0x61);

async function load(port: number): Promise<void> {
  const client = new Etcd3({ hosts: `127.0.0.1:${port}` });
  try {
    let next = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < PUTS) {
        const i = next++;
        await client.put(`s/k${i % 500}`).value(VALUE);
      }
    }));
  } finally {
    client.close();
  }
}

test.after(async () => {
  await killAll();
});

test('a stalled watch client: memory bounded, other watchers not held up, and it catches up without a gap', async () => {
  const [stalledMember, baseline] = await Promise.all([startKeyraft(), startKeyraft()]);
  const reading = new Stream(stalledMember.clientPort);
  const readingBaseline = new Stream(baseline.clientPort);
  const stalled = new Stream(stalledMember.clientPort);
  try {
    reading.watch(1);
    readingBaseline.watch(1);
    stalled.watch(4);
    await reading.until(() => reading.created === 1);
    await readingBaseline.until(() => readingBaseline.created === 1);
    await stalled.until(() => stalled.created === 4);
    stalled.stream.pause();
    await Promise.all([load(stalledMember.clientPort), load(baseline.clientPort)]);
    // Every event reached the reading watcher while the other client read nothing.
    await reading.until(() => reading.count(0) === PUTS);
    await readingBaseline.until(() => readingBaseline.count(0) === PUTS);
    const extraMiB = rssMiB(stalledMember) - rssMiB(baseline);
    // 4 watchers x 16 MB of events were not deliverable; a bounded stall costs a few MiB.
    assert.ok(extraMiB < 40, `the member with a stalled client holds ${extraMiB.toFixed(0)} MiB more than the baseline`);
    assert.ok(stalled.count(0) < PUTS / 10, `the stalled client got ${stalled.count(0)} events while not reading`);
    stalled.stream.resume();
    await stalled.until(() => [0, 1, 2, 3].every((id) => stalled.count(id) === PUTS));
    for (const id of [0, 1, 2, 3]) {
      const revs = stalled.revs.get(id)!;
      const first = revs[0]!;
      for (let i = 0; i < revs.length; i++) assert.is(revs[i], first + i, `watcher ${id}: event ${i}`);
    }
  } finally {
    reading.close();
    readingBaseline.close();
    stalled.close();
  }
});

test.run();
