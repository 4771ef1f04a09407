/** Snapshots on their own connection: chunked, checksummed, verified before they are handed up. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeHandshakeFrame, encodeSnapshotChunkFrame, PROTOCOL_VERSION, StreamKind } from '../../src/peer/peer-codec.js';
import { PeerError } from '../../src/peer/peer-error.js';
import { CLUSTER, Inbox, metricValue, RawPeer, randomBytesSeeded, seededRandom, startTransport, waitFor } from './peer-test-helpers.js';

async function pair(limits = {}) {
  const inbox1 = new Inbox();
  const inbox2 = new Inbox();
  const t1 = await startTransport(1n, inbox1, { limits });
  const t2 = await startTransport(2n, inbox2, { limits });
  t1.addPeer(2n, `127.0.0.1:${t2.address.port}`);
  t2.addPeer(1n, `127.0.0.1:${t1.address.port}`);
  return { t1, t2, inbox1, inbox2 };
}

test('a snapshot arrives whole, in chunks, with its metadata, and the sender learns it was taken', async () => {
  const { t1, t2, inbox2 } = await pair({ snapshotChunkBytes: 64 * 1024 });
  try {
    const data = randomBytesSeeded(seededRandom(5), 3 * 1024 * 1024 + 17);
    await t1.sendSnapshot(2n, data, Buffer.from('meta: index 42'));
    assert.is(inbox2.snapshots.length, 1);
    const { from, snapshot } = inbox2.snapshots[0]!;
    assert.is(from, 1n);
    assert.is(snapshot.sizeBytes, data.length);
    assert.ok(snapshot.chunks.length >= 49, `chunks: ${snapshot.chunks.length}`);
    assert.ok(Buffer.concat(snapshot.chunks).equals(data));
    assert.is(Buffer.from(snapshot.metadata).toString(), 'meta: index 42');
    assert.is(await metricValue(t1, 'etcd_network_snapshot_send_success', { To: '2' }), 1);
    assert.is(await metricValue(t2, 'etcd_network_snapshot_receive_success', { From: '1' }), 1);
  } finally {
    await t1.close();
    await t2.close();
  }
});

test('an async-iterable source and an empty snapshot both work', async () => {
  const { t1, t2, inbox2 } = await pair({ snapshotChunkBytes: 1000 });
  try {
    async function* pieces() {
      for (let i = 0; i < 10; i++) yield Buffer.alloc(777, i);
    }
    await t1.sendSnapshot(2n, pieces());
    await t1.sendSnapshot(2n, new Uint8Array(0), Buffer.from('empty'));
    assert.is(inbox2.snapshots.length, 2);
    const first = Buffer.concat(inbox2.snapshots[0]!.snapshot.chunks);
    assert.is(first.length, 7770);
    assert.is(first[7769], 9);
    assert.is(inbox2.snapshots[1]!.snapshot.sizeBytes, 0);
    assert.is(Buffer.from(inbox2.snapshots[1]!.snapshot.metadata).toString(), 'empty');
  } finally {
    await t1.close();
    await t2.close();
  }
});

test('message stream keeps flowing while a large snapshot is in transit', async () => {
  const { t1, t2, inbox2 } = await pair({ snapshotChunkBytes: 256 * 1024 });
  try {
    t1.send(2n, Buffer.from('warm-up'));
    await waitFor(() => inbox2.messages.length === 1, 'stream up');
    const big = Buffer.alloc(32 * 1024 * 1024, 1);
    const transfer = t1.sendSnapshot(2n, big);
    let heartbeatsDuringTransfer = 0;
    let done = false;
    void transfer.finally(() => { done = true; });
    while (!done) {
      t1.send(2n, Buffer.from('heartbeat'));
      await new Promise((r) => setTimeout(r, 1));
      if (!done) heartbeatsDuringTransfer = inbox2.messages.length - 1;
    }
    await transfer;
    assert.ok(heartbeatsDuringTransfer > 0, 'heartbeats were delivered before the snapshot finished');
    assert.is(inbox2.snapshots[0]!.snapshot.sizeBytes, big.length);
  } finally {
    await t1.close();
    await t2.close();
  }
});

async function forgedTransfer(port: number, frames: Buffer[]): Promise<RawPeer> {
  const raw = await RawPeer.connect(port);
  raw.write(Buffer.concat([
    encodeHandshakeFrame({ clusterId: CLUSTER, fromMemberId: 1n, toMemberId: 2n, protocolVersion: PROTOCOL_VERSION, stream: StreamKind.Snapshot }),
    ...frames,
  ]));
  await raw.waitClosed();
  return raw;
}

test('checksum mismatch: the snapshot is reported and not applied; the sender is told why', async () => {
  const inbox = new Inbox();
  const t2 = await startTransport(2n, inbox);
  try {
    t2.addPeer(1n, '127.0.0.1:1');
    const data = Buffer.from('the real snapshot bytes');
    const chunk = (o: object) => encodeSnapshotChunkFrame({ snapshotId: 7n, offset: 0, data: new Uint8Array(0), metadata: new Uint8Array(0), last: false, totalBytes: 0, sha256: new Uint8Array(0), ...o });
    const sha = createHash('sha256').update(data).digest();
    const corrupted = Buffer.from(data);
    corrupted[3] = corrupted[3]! ^ 1;
    const raw = await forgedTransfer(t2.address.port, [
      chunk({ data: corrupted.subarray(0, 10) }),
      chunk({ offset: 10, data: corrupted.subarray(10) }),
      chunk({ offset: data.length, last: true, totalBytes: data.length, sha256: sha }),
    ]);
    const ack = raw.frames.find((f) => f.kind === 'snapshotAck');
    assert.ok(ack && ack.kind === 'snapshotAck' && !ack.ack.ok);
    if (ack?.kind === 'snapshotAck') assert.match(ack.ack.reason, 'checksum mismatch');
    assert.is(inbox.snapshots.length, 0);
    assert.is(inbox.snapshotFailures.length, 1);
    assert.match(inbox.snapshotFailures[0]!.reason, 'checksum mismatch');
    assert.is(await metricValue(t2, 'etcd_network_snapshot_receive_failures', { From: '1' }), 1);

    // A gap in offsets, a wrong total and a cut-short transfer are failures too.
    await forgedTransfer(t2.address.port, [chunk({ data }), chunk({ offset: data.length + 1, data })]);
    await forgedTransfer(t2.address.port, [chunk({ data }), chunk({ offset: data.length, last: true, totalBytes: 999, sha256: sha })]);
    const cut = await RawPeer.connect(t2.address.port);
    cut.write(Buffer.concat([
      encodeHandshakeFrame({ clusterId: CLUSTER, fromMemberId: 1n, toMemberId: 2n, protocolVersion: PROTOCOL_VERSION, stream: StreamKind.Snapshot }),
      chunk({ data }),
    ]));
    await waitFor(() => cut.frames.length === 1, 'handshake reply');
    cut.socket.destroy();
    await waitFor(() => inbox.snapshotFailures.length === 4, 'all failures reported');
    assert.match(inbox.snapshotFailures[1]!.reason, 'offset');
    assert.match(inbox.snapshotFailures[2]!.reason, 'size mismatch');
    assert.match(inbox.snapshotFailures[3]!.reason, 'cut short');
    assert.is(inbox.snapshots.length, 0);
  } finally {
    await t2.close();
  }
});

test('a source that fails midway rejects the send; the receiver reports the broken transfer', async () => {
  const { t1, t2, inbox2 } = await pair({ snapshotChunkBytes: 1000 });
  try {
    async function* failing() {
      yield Buffer.alloc(5000, 1);
      throw new Error('disk read failed');
    }
    const err = await t1.sendSnapshot(2n, failing()).then(() => null, (e: unknown) => e);
    assert.instance(err, PeerError);
    assert.is((err as PeerError).code, 'SnapshotFailed');
    assert.match((err as Error).message, 'disk read failed');
    await waitFor(() => inbox2.snapshotFailures.length === 1, 'receiver reported');
    assert.is(inbox2.snapshots.length, 0);
    assert.is(await metricValue(t1, 'etcd_network_snapshot_send_failures', { To: '2' }), 1);
  } finally {
    await t1.close();
    await t2.close();
  }
});

test('a snapshot over the receiver limit is refused; unknown peers and closed transports reject', async () => {
  const { t1, t2, inbox2 } = await pair({ snapshotChunkBytes: 1000, snapshotBytesMax: 4000 });
  try {
    const err = await t1.sendSnapshot(2n, Buffer.alloc(5000)).then(() => null, (e: unknown) => e as PeerError);
    assert.is(err?.code, 'SnapshotFailed');
    assert.match(err!.message, 'exceeds the 4000-byte limit');
    // Much larger than the limit: the refusal arrives mid-transfer and its reason still reaches the sender.
    const big = await t1.sendSnapshot(2n, Buffer.alloc(20 * 1024 * 1024)).then(() => null, (e: unknown) => e as PeerError);
    assert.is(big?.code, 'SnapshotFailed');
    assert.match(big!.message, 'exceeds the 4000-byte limit');
    assert.is(inbox2.snapshots.length, 0);
    assert.is((await t1.sendSnapshot(9n, Buffer.alloc(1)).catch((e: PeerError) => e))?.code, 'UnknownPeer');
  } finally {
    await t1.close();
    await t2.close();
  }
  assert.is((await t1.sendSnapshot(2n, Buffer.alloc(1)).catch((e: PeerError) => e))?.code, 'Closed');
});

test('with a snapshot dir, a snapshot streams to a file as it arrives and is handed up by path', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'keyraft-snapdir-'));
  const inbox1 = new Inbox();
  const inbox2 = new Inbox();
  const t1 = await startTransport(1n, inbox1, { limits: { snapshotChunkBytes: 64 * 1024 } });
  const t2 = await startTransport(2n, inbox2, { limits: { snapshotChunkBytes: 64 * 1024 }, snapshotDir: dir });
  t1.addPeer(2n, `127.0.0.1:${t2.address.port}`);
  t2.addPeer(1n, `127.0.0.1:${t1.address.port}`);
  try {
    const data = randomBytesSeeded(seededRandom(9), 5 * 1024 * 1024 + 3);
    await t1.sendSnapshot(2n, data, Buffer.from('meta'));
    const { snapshot } = inbox2.snapshots[0]!;
    assert.is(snapshot.chunks.length, 0);
    assert.ok(snapshot.path !== null && snapshot.path.startsWith(dir));
    assert.ok((await readFile(snapshot.path!)).equals(data));
    assert.is(Buffer.from(snapshot.metadata).toString(), 'meta');
    await rm(snapshot.path!);

    // A corrupt and a cut-short transfer leave no file behind.
    const good = Buffer.from('the real snapshot bytes');
    const sha = createHash('sha256').update(good).digest();
    const chunk = (o: object) => encodeSnapshotChunkFrame({ snapshotId: 7n, offset: 0, data: new Uint8Array(0), metadata: new Uint8Array(0), last: false, totalBytes: 0, sha256: new Uint8Array(0), ...o });
    const corrupted = Buffer.from(good);
    corrupted[3] = corrupted[3]! ^ 1;
    await forgedTransfer(t2.address.port, [chunk({ data: corrupted }), chunk({ offset: good.length, last: true, totalBytes: good.length, sha256: sha })]);
    const cut = await RawPeer.connect(t2.address.port);
    cut.write(Buffer.concat([
      encodeHandshakeFrame({ clusterId: CLUSTER, fromMemberId: 1n, toMemberId: 2n, protocolVersion: PROTOCOL_VERSION, stream: StreamKind.Snapshot }),
      chunk({ data: good }),
    ]));
    await waitFor(() => cut.frames.length === 1, 'handshake reply');
    cut.socket.destroy();
    await waitFor(() => inbox2.snapshotFailures.length === 2, 'both failures reported');
    assert.match(inbox2.snapshotFailures[0]!.reason, 'checksum mismatch');
    assert.match(inbox2.snapshotFailures[1]!.reason, 'cut short');
    assert.is(inbox2.snapshots.length, 1);
    let left: string[] = [];
    for (let i = 0; i < 200; i++) {
      left = await readdir(dir);
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(left, []);
  } finally {
    await t1.close();
    await t2.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
