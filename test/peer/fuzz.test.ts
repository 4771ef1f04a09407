/**
 * Fuzz: 10,000 connections to a listening transport, each feeding it hostile bytes: pure noise,
 * plausible lengths with noise, a valid handshake followed by noise or by bit-flipped valid
 * frames, on message and snapshot streams, split into random TCP writes. The transport must not
 * crash, must close or keep each connection without leaking it, must not grow memory without
 * bound, and must still serve a real peer afterwards. Seeded: a failure names its seed and case.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  encodeHandshakeFrame, encodePingFrame, encodeRaftBatchFrames, encodeSnapshotChunkFrame, PROTOCOL_VERSION, StreamKind,
} from '../../src/peer/peer-codec.js';
import { CLUSTER, Inbox, metricValue, randomBytesSeeded, seededRandom, startTransport, waitFor } from './peer-test-helpers.js';

const CASES = Number(process.env.KEYRAFT_PEER_FUZZ_CASES ?? 10_000);
const CONCURRENCY = 64;
const SEED = Number(process.env.KEYRAFT_PEER_FUZZ_SEED ?? 20261122);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function handshake(stream: number, random: () => number): Buffer {
  // Mostly valid; sometimes a wrong cluster, member or version, to fuzz the refusal path too.
  const r = random();
  return encodeHandshakeFrame({
    clusterId: r < 0.05 ? 99n : CLUSTER,
    fromMemberId: r > 0.95 ? 77n : 1n,
    toMemberId: 2n,
    protocolVersion: r > 0.9 && r <= 0.95 ? 3 : PROTOCOL_VERSION,
    stream: stream === 0 ? StreamKind.Message : StreamKind.Snapshot,
  });
}

function validFrames(random: () => number, snapshot: boolean): Buffer {
  if (snapshot) {
    return Buffer.concat(Array.from({ length: 1 + Math.floor(random() * 3) }, (_, i) => encodeSnapshotChunkFrame({
      snapshotId: 1n, offset: i * 8, data: randomBytesSeeded(random, 8), metadata: new Uint8Array(0),
      last: random() < 0.3, totalBytes: Math.floor(random() * 32), sha256: randomBytesSeeded(random, 32),
    })));
  }
  const batch = Array.from({ length: 1 + Math.floor(random() * 5) }, () => randomBytesSeeded(random, Math.floor(random() * 40)));
  return Buffer.concat([encodeRaftBatchFrames(batch, 0, batch.length, 1 << 20), encodePingFrame({ seq: 1, sentAtMs: 1 })]);
}

function flipBits(buf: Buffer, random: () => number): Buffer {
  const out = Buffer.from(buf);
  const flips = 1 + Math.floor(random() * 4);
  for (let i = 0; i < flips && out.length > 0; i++) {
    const at = Math.floor(random() * out.length);
    out[at] = out[at]! ^ (1 << Math.floor(random() * 8));
  }
  return out;
}

/** The bytes of one case, and how they are cut into writes. */
function makeCase(random: () => number): Buffer[] {
  const kind = Math.floor(random() * 6);
  let bytes: Buffer;
  switch (kind) {
    case 0: bytes = randomBytesSeeded(random, Math.floor(random() * 200)); break;
    case 1: {
      const len = random() < 0.5 ? Math.floor(random() * 64) : Math.floor(random() * 0xffffffff);
      const header = Buffer.alloc(4);
      header.writeUInt32BE(len >>> 0);
      bytes = Buffer.concat([header, randomBytesSeeded(random, Math.floor(random() * 80))]);
      break;
    }
    case 2: bytes = Buffer.concat([handshake(0, random), randomBytesSeeded(random, Math.floor(random() * 200))]); break;
    case 3: bytes = Buffer.concat([handshake(1, random), randomBytesSeeded(random, Math.floor(random() * 200))]); break;
    case 4: bytes = Buffer.concat([handshake(0, random), flipBits(validFrames(random, false), random)]); break;
    default: bytes = Buffer.concat([handshake(1, random), flipBits(validFrames(random, true), random)]); break;
  }
  const writes: Buffer[] = [];
  for (let pos = 0; pos < bytes.length;) {
    const next = Math.min(bytes.length, pos + 1 + Math.floor(random() * 64));
    writes.push(bytes.subarray(pos, next));
    pos = next;
  }
  return writes;
}

function runCase(port: number, writes: Buffer[]): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => {}); // resets from the transport are expected
    socket.on('close', () => resolve());
    socket.on('data', () => {}); // replies (refusals, pongs, acks) are read and discarded
    socket.once('connect', () => {
      for (const w of writes) socket.write(w);
      socket.end();
    });
  });
}

test(`fuzz: ${CASES} hostile connections do not crash, leak or bloat the transport`, async () => {
  const inbox = new Inbox();
  let handedUp = 0;
  const t2 = await startTransport(2n, inbox, {
    handler: {
      onMessages: (_from, messages) => { handedUp += messages.length; },
      onSnapshot: () => { handedUp++; },
    },
    limits: { handshakeTimeoutMs: 2_000, frameBytesMax: 64 * 1024 },
  });
  try {
    t2.addPeer(1n, '127.0.0.1:1');
    const random = seededRandom(SEED);
    const cases = Array.from({ length: CASES }, () => makeCase(random));
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    let next = 0;
    const workers = Array.from({ length: CONCURRENCY }, async () => {
      while (next < cases.length) {
        const i = next++;
        await runCase(t2.address.port, cases[i]!);
      }
    });
    await Promise.all(workers);
    await waitFor(() => t2.inboundConnections === 0, `all ${CASES} inbound connections released (left: ${t2.inboundConnections})`);
    cases.length = 0;
    gc();
    const grownBytes = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grownBytes < 32 * 1024 * 1024, `heap grew by ${grownBytes} bytes over ${CASES} cases (seed ${SEED})`);
    const frameErrors = await metricValue(t2, 'keyraft_peer_frame_errors_total');
    const refusals = await metricValue(t2, 'keyraft_peer_handshake_refusals_total');
    console.log(`  fuzz seed ${SEED}: ${CASES} cases, ${frameErrors} frame errors, ${refusals} refusals, ${handedUp} messages/snapshots handed up, heap +${(grownBytes / 1048576).toFixed(1)} MiB`);
    assert.ok(frameErrors > CASES / 10, `frame errors ${frameErrors}`);
    assert.ok(refusals > CASES / 10, `refusals ${refusals}`);

    // Still a working member: a real peer connects and its messages are delivered.
    const inbox1 = new Inbox();
    const t1 = await startTransport(1n, inbox1);
    try {
      t1.addPeer(2n, `127.0.0.1:${t2.address.port}`);
      const before = handedUp;
      t1.send(2n, [Buffer.from('still'), Buffer.from('alive')]);
      await waitFor(() => handedUp === before + 2, 'real peer delivered after the fuzz');
    } finally {
      await t1.close();
    }
  } finally {
    await t2.close();
  }
});

test.run();
