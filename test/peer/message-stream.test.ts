/** Two transports over loopback: delivery, coalescing, reconnect, bounded queues, hostile frames. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:net';
import { encodeHandshakeFrame, encodeRawEnvelopeFrame, PROTOCOL_VERSION, StreamKind } from '../../src/peer/peer-codec.js';
import type { PeerTransport } from '../../src/peer/peer-transport.js';
import { CLUSTER, Inbox, metricValue, RawPeer, startTransport, waitFor, waitForAsync } from './peer-test-helpers.js';

const msg = (s: string) => Buffer.from(s);

async function pair(limits = {}) {
  const inbox1 = new Inbox();
  const inbox2 = new Inbox();
  const t1 = await startTransport(1n, inbox1, { limits });
  const t2 = await startTransport(2n, inbox2, { limits });
  t1.addPeer(2n, `127.0.0.1:${t2.address.port}`);
  t2.addPeer(1n, `http://127.0.0.1:${t1.address.port}`);
  return { t1, t2, inbox1, inbox2 };
}

async function closeAll(...ts: (PeerTransport | undefined)[]) {
  for (const t of ts) await t?.close();
}

test('messages reach the peer in order, both directions, with etcd metrics', async () => {
  const { t1, t2, inbox1, inbox2 } = await pair();
  try {
    for (let i = 0; i < 100; i++) t1.send(2n, msg(`a${i}`));
    t2.send(1n, [msg('b0'), msg(''), msg('b2')]);
    await waitFor(() => inbox2.messages.length === 100 && inbox1.messages.length === 3, 'all messages delivered');
    assert.equal(inbox2.messages.map((m) => m.message.toString()), Array.from({ length: 100 }, (_, i) => `a${i}`));
    assert.ok(inbox2.messages.every((m) => m.from === 1n));
    assert.equal(inbox1.messages.map((m) => m.message.toString()), ['b0', '', 'b2']);
    assert.ok(await metricValue(t1, 'etcd_network_peer_sent_bytes_total', { To: '2' }) > 100 * 2);
    assert.ok(await metricValue(t2, 'etcd_network_peer_received_bytes_total', { From: '1' }) > 100 * 2);
    assert.is(await metricValue(t1, 'etcd_network_active_peers', { Local: '1', Remote: '2' }), 1);
    assert.is(await metricValue(t1, 'keyraft_peer_dropped_messages_total'), 0);
  } finally {
    await closeAll(t1, t2);
  }
});

test('all messages queued in one event-loop turn go out as one frame', async () => {
  const { t1, t2, inbox2 } = await pair();
  try {
    t1.send(2n, msg('warm-up'));
    await waitFor(() => inbox2.messages.length === 1 && t1.isConnected(2n), 'connected');
    const batchesBefore = inbox2.batches;
    // 500 separate send() calls in one synchronous run: one RaftBatch frame, one handler call.
    for (let i = 0; i < 500; i++) t1.send(2n, msg(`m${i}`));
    await waitFor(() => inbox2.messages.length === 501, 'burst delivered');
    assert.is(inbox2.batches - batchesBefore, 1);
  } finally {
    await closeAll(t1, t2);
  }
});

test('ping frames feed the round-trip histogram', async () => {
  const { t1, t2, inbox2 } = await pair({ pingIntervalMs: 20 });
  try {
    t1.send(2n, msg('x'));
    await waitFor(() => inbox2.messages.length === 1, 'delivered');
    const rtt = async () => {
      const m = await t1.registry.getSingleMetric('etcd_network_peer_round_trip_time_seconds')!.get();
      return m.values.find((v) => (v as { metricName?: string }).metricName === 'etcd_network_peer_round_trip_time_seconds_count')?.value ?? 0;
    };
    await waitForAsync(async () => (await rtt()) >= 2, 'two pongs observed');
  } finally {
    await closeAll(t1, t2);
  }
});

test('dead peer: messages are dropped and counted, the queue stays bounded, the member keeps running', async () => {
  // Reserve a port, then close it: nothing listens there.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const deadPort = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const inbox = new Inbox();
  const t1 = await startTransport(1n, inbox, { limits: { queueMessagesMax: 50, reconnectBaseMs: 10, reconnectMaxMs: 40 } });
  try {
    t1.addPeer(2n, `127.0.0.1:${deadPort}`);
    // First turn: the dial starts; only 50 of 200 fit the queue.
    const accepted = t1.send(2n, Array.from({ length: 200 }, (_, i) => msg(`m${i}`)));
    assert.is(accepted, 50);
    assert.is(t1.queuedMessages(2n), 50);
    assert.is(await metricValue(t1, 'keyraft_peer_dropped_messages_total', { reason: 'queue_full' }), 150);
    await waitFor(() => inbox.unreachable.length > 0, 'unreachable reported');
    assert.is(t1.queuedMessages(2n), 0);
    // Keep sending through several backoff rounds: nothing accumulates.
    for (let round = 0; round < 20; round++) {
      t1.send(2n, Array.from({ length: 100 }, () => msg('y'.repeat(100))));
      assert.ok(t1.queuedMessages(2n) <= 50);
      await new Promise((r) => setImmediate(r));
    }
    // Dials are lazy: once the backoff has passed, the next send dials again (and fails again).
    await waitFor(() => {
      t1.send(2n, msg('z'));
      assert.ok(t1.queuedMessages(2n) <= 50);
      return inbox.unreachable.length >= 3;
    }, 'redialed after backoff');
    const dropped = await metricValue(t1, 'keyraft_peer_dropped_messages_total');
    assert.ok(dropped >= 150 + 50, `dropped ${dropped}`);
    assert.is(await metricValue(t1, 'etcd_network_peer_sent_failures_total', { To: '2' }), dropped);
    assert.is(t1.send(99n, msg('to nobody')), 0);
  } finally {
    await t1.close();
  }
});

test('reconnects after the peer restarts on the same port', async () => {
  const { t1, t2, inbox2 } = await pair({ reconnectBaseMs: 10, reconnectMaxMs: 50 });
  let t2b: PeerTransport | undefined;
  try {
    t1.send(2n, msg('before'));
    await waitFor(() => inbox2.messages.length === 1, 'first delivery');
    const port = t2.address.port;
    await t2.close();
    await waitFor(() => !t1.isConnected(2n), 't1 noticed the loss');
    const inbox2b = new Inbox();
    t2b = await startTransport(2n, inbox2b, { listenPort: port });
    t2b.addPeer(1n, `127.0.0.1:${1}`);
    // Raft keeps sending (heartbeats); once a dial succeeds they flow again.
    await waitFor(() => {
      t1.send(2n, msg('after'));
      return inbox2b.messages.length > 0;
    }, 'delivery after restart');
    assert.is(inbox2b.messages[0]!.message.toString(), 'after');
    assert.is(await metricValue(t1, 'etcd_network_active_peers', { Remote: '2' }), 1);
  } finally {
    await closeAll(t1, t2, t2b);
  }
});

test('oversize and garbage frames from an authenticated peer close that connection; the member reconnects', async () => {
  const inbox = new Inbox();
  const t2 = await startTransport(2n, inbox, { limits: { frameBytesMax: 1024 } });
  try {
    t2.addPeer(1n, '127.0.0.1:1');
    const handshake = encodeHandshakeFrame({ clusterId: CLUSTER, fromMemberId: 1n, toMemberId: 2n, protocolVersion: PROTOCOL_VERSION, stream: StreamKind.Message });
    // Oversize: a length over frameBytesMax.
    const a = await RawPeer.connect(t2.address.port);
    a.write(Buffer.concat([handshake, Buffer.from([0, 0, 0x04, 0x01])]));
    await a.waitClosed();
    assert.is(await metricValue(t2, 'keyraft_peer_frame_errors_total', { reason: 'frame_too_large' }), 1);
    // Garbage payload of a valid length.
    const b = await RawPeer.connect(t2.address.port);
    b.write(Buffer.concat([handshake, Buffer.from([0, 0, 0, 3, 0xff, 0xff, 0xff])]));
    await b.waitClosed();
    assert.is(await metricValue(t2, 'keyraft_peer_frame_errors_total', { reason: 'undecodable' }), 1);
    // A frame kind that does not belong on a message stream.
    const c = await RawPeer.connect(t2.address.port);
    c.write(Buffer.concat([handshake, encodeRawEnvelopeFrame({ snapshot_ack: { ok: true } })]));
    await c.waitClosed();
    assert.is(await metricValue(t2, 'keyraft_peer_frame_errors_total', { reason: 'unexpected_kind' }), 1);
    // The same peer connects again and its messages are delivered: one bad connection, not a dead member.
    const d = await RawPeer.connect(t2.address.port);
    d.write(Buffer.concat([handshake, Buffer.alloc(4), encodeRawEnvelopeFrame({ raft_batch: { messages: [msg('ok')] } })]));
    await waitFor(() => inbox.messages.length === 1, 'delivery on a fresh connection');
    assert.is(inbox.messages[0]!.message.toString(), 'ok');
    assert.ok(d.frames.some((f) => f.kind === 'handshakeReply' && f.reply.accepted));
    d.socket.destroy();
  } finally {
    await t2.close();
  }
});

test('a listener answering garbage: the dialer closes with a counted frame error and redials', async () => {
  // A fake "peer" that answers every connection with an undecodable frame.
  let connections = 0;
  const fake = createServer((socket) => {
    connections++;
    socket.on('error', () => {});
    socket.write(Buffer.from([0, 0, 0, 2, 0xff, 0xff]));
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  const inbox = new Inbox();
  const t1 = await startTransport(1n, inbox, { limits: { reconnectBaseMs: 5, reconnectMaxMs: 10 } });
  try {
    t1.addPeer(2n, `127.0.0.1:${(fake.address() as { port: number }).port}`);
    await waitFor(() => {
      t1.send(2n, msg('hb'));
      return connections >= 3;
    }, 'dialer redialed after bad frames');
    assert.ok(await metricValue(t1, 'keyraft_peer_frame_errors_total', { reason: 'undecodable' }) >= 2);
    assert.ok(await metricValue(t1, 'etcd_network_peer_received_failures_total', { From: '2' }) >= 2);
    assert.not.ok(t1.isConnected(2n));
  } finally {
    await t1.close();
    // Not awaited: a dial cut short by close() can leave node's server waiting on a connection
    // that never reaches it; stop listening and move on (no handle stays open).
    fake.close();
  }
});

test('addPeer with a new address moves the stream to it at runtime', async () => {
  const { t1, t2, inbox2 } = await pair();
  const inbox3 = new Inbox();
  // Member 2 comes back elsewhere (a new process on another port).
  const t2moved = await startTransport(2n, inbox3);
  try {
    t2moved.addPeer(1n, `127.0.0.1:${t1.address.port}`);
    t1.send(2n, msg('old'));
    await waitFor(() => inbox2.messages.length === 1, 'delivered at the old address');
    t1.addPeer(2n, `127.0.0.1:${t2moved.address.port}`);
    await waitFor(() => {
      t1.send(2n, msg('new'));
      return inbox3.messages.length > 0;
    }, 'delivered at the new address');
    assert.is(inbox3.messages[0]!.message.toString(), 'new');
  } finally {
    await closeAll(t1, t2, t2moved);
  }
});

test('removePeer closes its streams and later dials from it are refused', async () => {
  const { t1, t2, inbox2 } = await pair();
  try {
    t1.send(2n, msg('x'));
    await waitFor(() => inbox2.messages.length === 1, 'delivered');
    t2.removePeer(1n);
    assert.not.ok(t2.hasPeer(1n));
    await waitFor(() => !t1.isConnected(2n), 'stream closed by the removal');
    // t1 keeps sending; its redials are refused by t2, which removed member 1 (the refusal tells it so).
    await waitForAsync(async () => {
      t1.send(2n, msg('again'));
      return (await metricValue(t2, 'keyraft_peer_handshake_refusals_total', { reason: 'removed_member' })) > 0;
    }, 'redial refused');
    await waitForAsync(async () => (await metricValue(t1, 'keyraft_peer_handshake_refusals_total', { side: 'dialer' })) > 0, 'dialer saw the refusal');
    assert.is(inbox2.messages.length, 1);
  } finally {
    await closeAll(t1, t2);
  }
});

test.run();
