/**
 * etcd's keepalive flags, on a real keyraft process next to a real etcd 3.4 given the same flags,
 * driven by raw HTTP/2 frames (test/api/http2-raw-client.ts):
 *
 * - --grpc-keepalive-interval / --grpc-keepalive-timeout: the server PINGs a connection idle for
 *   the interval; a client that does not answer is closed once the timeout passes, one that
 *   answers stays.
 * - --grpc-keepalive-min-time: with a call open, a client pinging every 300 ms is within a 100 ms
 *   minimum; against the default (5 s) its fourth such ping draws GOAWAY ENHANCE_YOUR_CALM
 *   "too_many_pings" (grpc-go forgives two strikes).
 *
 * Before the flags existed keyraft ignored them: it never pinged within the test and called the
 * 300 ms pings too many.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeWithoutIndexing } from '../../src/http/hpack.js';
import { needEtcd } from '../etcd-binaries.js';
import {
  ENHANCE_YOUR_CALM, FLAG_ACK, GOAWAY, PING, headersFrame, openConnections, openRaw, pingFrame, requestHeaders, type RawConnection,
} from '../api/http2-raw-client.js';
import { killAll, startEtcd, startKeyraft, type ServerProcess } from './harness.js';

const test = suite('grpc-keepalive');
const need = needEtcd('integration/grpc-keepalive', ['etcd']);
const keepaliveFlags = ['--grpc-keepalive-interval', '1s', '--grpc-keepalive-timeout', '1s', '--grpc-keepalive-min-time', '100ms'];
let servers: Array<{ name: string; fast: ServerProcess; plain: ServerProcess }> = [];

test.before(async () => {
  if (!need.found) return;
  // "fast": the flags above; "plain": defaults (the min time 5 s).
  const [kFast, kPlain, eFast, ePlain] = await Promise.all([
    startKeyraft({ args: keepaliveFlags }), startKeyraft(), startEtcd({ args: keepaliveFlags }), startEtcd(),
  ]);
  servers = [{ name: 'keyraft', fast: kFast, plain: kPlain }, { name: 'etcd', fast: eFast, plain: ePlain }];
});

test.after(async () => {
  for (const c of openConnections) c.destroy();
  await killAll();
});

test.after.each(() => {
  for (const c of openConnections) c.destroy();
  openConnections.clear();
});

/** Acks every PING the server sends, from now on. */
function answerPings(c: RawConnection): void {
  const acked = new Set<unknown>();
  c.socket.on('data', () => {
    for (const f of c.frames) {
      if (f.type === PING && (f.flags & FLAG_ACK) === 0 && !acked.has(f)) {
        acked.add(f);
        c.sendRaw(pingFrame(f.payload, FLAG_ACK));
      }
    }
  });
}

need.test(test, '--grpc-keepalive-interval/-timeout: an idle connection is pinged; unanswered, it is closed; answered, it stays', async () => {
  for (const { name, fast } of servers) {
    const silent = openRaw(fast.clientPort);
    const answering = openRaw(fast.clientPort);
    answerPings(answering);
    await silent.roundTrip();
    await answering.roundTrip();
    const ping = await silent.nextFrame((f) => f.type === PING && (f.flags & FLAG_ACK) === 0, `${name}: a keepalive PING`, 10_000);
    assert.is(ping.payload.length, 8);
    await silent.waitForClose(10_000);
    // The answering client saw at least one server PING too, and is still connected.
    await answering.nextFrame((f) => f.type === PING && (f.flags & FLAG_ACK) === 0, `${name}: a keepalive PING (answered)`, 10_000);
    assert.not.ok(answering.closed, `${name}: the answering client was closed: ${answering.transcript()}`);
  }
});

/** A call left open (its request HEADERS, no message yet): pings then count against the min time. */
function withOpenCall(port: number): RawConnection {
  const c = openRaw(port);
  c.send(headersFrame(1, encodeWithoutIndexing(requestHeaders('/etcdserverpb.KV/Put')), { endStream: false }));
  return c;
}

async function pingEvery300ms(c: RawConnection, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (c.closed) return;
    c.send(pingFrame(Buffer.alloc(8, 0x40 + i)));
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

need.test(test, '--grpc-keepalive-min-time: pings 300 ms apart are fine under 100 ms, too many under the default 5 s (GOAWAY too_many_pings)', async () => {
  for (const { name, fast, plain } of servers) {
    const allowed = withOpenCall(fast.clientPort);
    const refused = withOpenCall(plain.clientPort);
    await Promise.all([pingEvery300ms(allowed, 5), pingEvery300ms(refused, 5)]);
    const g = await refused.nextFrame((f) => f.type === GOAWAY, `${name}: GOAWAY for pings under the default min time`, 5000);
    assert.is(g.payload.readUInt32BE(4), ENHANCE_YOUR_CALM, name);
    assert.is(g.payload.subarray(8).toString('latin1'), 'too_many_pings', name);
    // The client within the min time got every PING answered and no GOAWAY.
    await allowed.waitFor(() => (allowed.frames.filter((f) => f.type === PING && (f.flags & FLAG_ACK) !== 0).length >= 5 ? true : undefined), `${name}: 5 PING ACKs`);
    assert.not.ok(allowed.frames.some((f) => f.type === GOAWAY), `${name}: ${allowed.transcript()}`);
  }
});

test.run();
