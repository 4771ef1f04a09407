/** Handshake refusals: wrong cluster, unknown member, wrong target, unsupported version, no handshake. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { encodeHandshakeFrame, encodeRawEnvelopeFrame, PROTOCOL_VERSION, StreamKind } from '../../src/peer/peer-codec.js';
import { checkHandshake } from '../../src/peer/handshake.js';
import { SampledWarnings } from '../../src/peer/sampled-warnings.js';
import { PeerTransport } from '../../src/peer/peer-transport.js';
import { CLUSTER, Inbox, metricValue, RawPeer, startTransport, waitFor, waitForAsync } from './peer-test-helpers.js';

/** A pino logger whose lines land in an array, to check what each side logs. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(chunk.toString())); cb(); } });
  return { logger: pino({ level: 'info' }, sink), lines };
}

const good = { clusterId: CLUSTER, fromMemberId: 1n, toMemberId: 2n, protocolVersion: PROTOCOL_VERSION, stream: StreamKind.Message };

test('checkHandshake: each mismatch gets its own reason', () => {
  const local = { clusterId: CLUSTER, memberId: 2n, isKnownPeer: (id: bigint) => id === 1n, isRemovedPeer: (id: bigint) => id === 4n };
  assert.is(checkHandshake(good, local), null);
  assert.is(checkHandshake({ ...good, clusterId: 5n }, local)?.reason, 'cluster_mismatch');
  assert.is(checkHandshake({ ...good, toMemberId: 3n }, local)?.reason, 'wrong_target');
  assert.is(checkHandshake({ ...good, fromMemberId: 7n }, local)?.reason, 'unknown_member');
  assert.is(checkHandshake({ ...good, fromMemberId: 2n }, local)?.reason, 'unknown_member');
  assert.is(checkHandshake({ ...good, protocolVersion: 2 }, local)?.reason, 'unsupported_version');
  assert.is(checkHandshake({ ...good, fromMemberId: 4n }, local)?.reason, 'removed_member');
  assert.is(checkHandshake({ ...good, fromMemberId: 4n }, local)?.message, 'the member has been permanently removed from the cluster');
  // A joining member learns the cluster id from the refusal of a handshake naming cluster 0.
  assert.is(checkHandshake({ ...good, clusterId: 0n }, local)?.reason, 'cluster_mismatch');
  assert.match(checkHandshake({ ...good, clusterId: 0xabcn }, local)!.message, 'cluster abc');
});

const refusals: [string, object, string][] = [
  ['wrong cluster', { clusterId: 0xbadn }, 'cluster_mismatch'],
  ['unknown member', { fromMemberId: 9n }, 'unknown_member'],
  ['wrong target member', { toMemberId: 3n }, 'wrong_target'],
  ['unsupported version', { protocolVersion: 99 }, 'unsupported_version'],
];

for (const [name, change, reason] of refusals) {
  test(`listener refuses ${name} with a reply naming the reason, and never uses the connection`, async () => {
    const inbox = new Inbox();
    const t2 = await startTransport(2n, inbox);
    try {
      t2.addPeer(1n, '127.0.0.1:1');
      const raw = await RawPeer.connect(t2.address.port);
      // The handshake and a raft batch in one write: the batch must not be delivered.
      raw.write(Buffer.concat([
        encodeHandshakeFrame({ ...good, ...change }),
        encodeRawEnvelopeFrame({ raft_batch: { messages: [Buffer.from('sneaky')] } }),
      ]));
      await raw.waitClosed();
      const reply = raw.frames[0];
      assert.ok(reply && reply.kind === 'handshakeReply', 'got a handshake reply');
      if (reply?.kind !== 'handshakeReply') return;
      assert.is(reply.reply.accepted, false);
      assert.ok(reply.reply.reason.length > 10, reply.reply.reason);
      assert.is(raw.frames.length, 1);
      assert.is(inbox.messages.length, 0);
      assert.is(await metricValue(t2, 'keyraft_peer_handshake_refusals_total', { side: 'listener', reason }), 1);
    } finally {
      await t2.close();
    }
  });
}

test('a first frame that is not a handshake, or no frame in time, is refused', async () => {
  const inbox = new Inbox();
  const t2 = await startTransport(2n, inbox, { limits: { handshakeTimeoutMs: 50 } });
  try {
    t2.addPeer(1n, '127.0.0.1:1');
    const a = await RawPeer.connect(t2.address.port);
    a.write(encodeRawEnvelopeFrame({ raft_batch: { messages: [Buffer.from('x')] } }));
    await a.waitClosed();
    const b = await RawPeer.connect(t2.address.port);
    await b.waitClosed();
    // A pre-handshake frame larger than the handshake cap is refused without buffering it.
    const c = await RawPeer.connect(t2.address.port);
    c.write(Buffer.from([0, 1, 0, 0]));
    await c.waitClosed();
    assert.is(await metricValue(t2, 'keyraft_peer_handshake_refusals_total', { reason: 'no_handshake' }), 1);
    assert.is(await metricValue(t2, 'keyraft_peer_handshake_refusals_total', { reason: 'timeout' }), 1);
    assert.is(await metricValue(t2, 'keyraft_peer_frame_errors_total', { reason: 'frame_too_large' }), 1);
    assert.is(inbox.messages.length, 0);
  } finally {
    await t2.close();
  }
});

test('two transports of different clusters: both sides log the refusal, no message crosses', async () => {
  const log1 = capturingLogger();
  const log2 = capturingLogger();
  const inbox1 = new Inbox();
  const inbox2 = new Inbox();
  const t1 = new PeerTransport({ clusterId: 0x1111n, memberId: 1n, handler: inbox1.handler, logger: log1.logger, limits: { reconnectBaseMs: 10, reconnectMaxMs: 20 } });
  const t2 = new PeerTransport({ clusterId: 0x2222n, memberId: 2n, handler: inbox2.handler, logger: log2.logger });
  try {
    await t1.start();
    await t2.start();
    t1.addPeer(2n, `127.0.0.1:${t2.address.port}`);
    t2.addPeer(1n, `127.0.0.1:${t1.address.port}`);
    t1.send(2n, Buffer.from('hello'));
    await waitFor(() => inbox1.unreachable.length > 0, 'dialer gave up on the refused connection');
    await waitForAsync(async () => (await metricValue(t2, 'keyraft_peer_handshake_refusals_total', { reason: 'cluster_mismatch' })) === 1, 'listener counted');
    const refusedBy2 = log2.lines.find((l) => l.msg === 'refusing peer connection');
    const refusedAt1 = log1.lines.find((l) => l.msg === 'peer refused our handshake');
    assert.ok(refusedBy2, 'listener logged the refusal');
    assert.ok(refusedAt1, 'dialer logged the refusal');
    assert.match(String(refusedBy2!.reason), 'cluster id mismatch: dialer is in cluster 1111, this member is in 2222');
    assert.match(String(refusedAt1!.reason), 'cluster id mismatch');
    assert.is(refusedAt1!.level, 50, 'dialer logs at error level');
    assert.not.ok(t1.isConnected(2n));
    assert.is(inbox2.messages.length, 0);
    assert.is(await metricValue(t1, 'etcd_network_active_peers'), 0);
  } finally {
    await t1.close();
    await t2.close();
  }
});

test('idle dialers filling the listener cannot keep a real peer out: the oldest awaiting a handshake is evicted', async () => {
  // 8 connections in all, 4 of them awaiting a handshake; a handshake deadline far beyond the test.
  const limits = { inboundConnectionsMax: 8, handshakesPendingMax: 4, handshakeTimeoutMs: 60_000 };
  const inbox2 = new Inbox();
  const t2 = await startTransport(2n, inbox2, { limits });
  const t1 = await startTransport(1n, new Inbox());
  const idle: Socket[] = [];
  try {
    t2.addPeer(1n, `127.0.0.1:${t1.address.port}`);
    for (let i = 0; i < 8; i++) {
      idle.push(await new Promise<Socket>((resolve, reject) => {
        const s = connect(t2.address.port, '127.0.0.1', () => resolve(s));
        s.on('error', () => { /* evicted or refused: expected */ });
        s.once('error', reject);
      }));
    }
    await waitForAsync(async () => (await metricValue(t2, 'keyraft_peer_handshake_refusals_total', { reason: 'evicted' })) >= 4, 'the oldest idle dialers evicted');
    // A real member dials in through the crowd and its messages arrive.
    t1.addPeer(2n, `127.0.0.1:${t2.address.port}`);
    t1.send(2n, [Buffer.from('through the crowd')]);
    await waitFor(() => inbox2.messages.length === 1, 'the real peer\'s message delivered', 10_000);
    assert.is(inbox2.messages[0]!.message.toString(), 'through the crowd');
  } finally {
    for (const s of idle) s.destroy();
    await t1.close();
    await t2.close();
  }
});

test('SampledWarnings: at most N lines per message per window, and the next window says how many were left out', () => {
  let now = 0;
  const sampled = new SampledWarnings(2, 10_000, () => now);
  const { logger, lines } = capturingLogger();
  for (const at of [0, 1, 2, 3]) {
    now = at;
    sampled.warn(logger, { n: at }, 'refusing peer connection');
  }
  sampled.warn(logger, {}, 'another message');
  now = 10_500;
  sampled.warn(logger, { n: 4 }, 'refusing peer connection');
  const refusals = lines.filter((l) => l.msg === 'refusing peer connection');
  assert.equal(refusals.map((l) => l.n), [0, 1, 4]);
  assert.is(refusals[2]!.suppressed, 2);
  assert.is(refusals[0]!.suppressed, undefined);
  assert.is(lines.filter((l) => l.msg === 'another message').length, 1);
});

test.run();
