/**
 * The peer port under attack (issue 9: "add the peer port to the adversarial suite once the
 * cluster is wired"). A 3-member cluster; the attacks go straight to the leader's real peer port
 * (not through the test's front proxies), as anyone who can reach that port could send them.
 *
 * Threat model, as etcd's: without peer TLS the peer port trusts a dialer that names a member of
 * the cluster (the cluster id is no secret: a refused handshake tells it, as the tests below
 * show); such a dialer can speak Raft as that member. Peer TLS with client-cert-auth is the
 * defence against impersonation. What must hold against EVERY dialer, authenticated or not: the
 * member never crashes, its event loop keeps answering (/health on the client port), its memory
 * stays bounded, the cluster keeps committing, and idle or slow dialers cannot keep real peers out.
 *
 * Each attack prints the worst /health latency on the attacked member, the puts committed
 * meanwhile, and the attacked member's RSS growth, for the report. The bounds asserted are generous (not timing tests).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { httpRequest, killAll } from '../integration/harness.js';
import {
  decodeEnvelope, encodeHandshakeFrame, encodeRaftBatchFrames, PROTOCOL_VERSION, StreamKind,
} from '../../src/peer/peer-codec.js';
import { encodeRaftMessage } from '../../src/peer/raft-codec.js';
import { MessageType, type Message } from '../../src/raft/raft-types.js';
import { TestCluster } from '../cluster/cluster-harness.js';
import { call } from '../cluster/workload.js';
import { rng } from '../seeded-random.js';

const HEALTH_BOUND_MS = 2_000;
const RSS_GROWTH_BOUND_BYTES = 256 * 2 ** 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let cluster: TestCluster;
/** The attacked member: the leader at the start, whose inbound port carries its followers' acks. */
let target = 0;
/** The two others. */
let others: [number, number] = [1, 2];

test.before(async () => {
  cluster = await TestCluster.start({ members: 3 });
  target = await cluster.waitLeader();
  others = [0, 1, 2].filter((i) => i !== target) as [number, number];
});

test.after(async () => {
  await cluster?.close();
  await killAll();
});

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  return kb === null ? 0 : Number(kb[1]) * 1024;
}

interface Observed {
  worstHealthMs: number;
  putsCommitted: number;
  rssGrowthBytes: number;
}

/**
 * Runs `attack` while /health is asked on the attacked member's client port (one request at a
 * time), puts go to the leader, and the attacked member's RSS is sampled. Returns what was seen,
 * and checks the bounds.
 */
async function underAttack(name: string, attack: () => Promise<void>): Promise<Observed> {
  const member = cluster.slots[target]!;
  const pid = member.process!.child.pid!;
  const rssBefore = rssOf(pid);
  let rssPeak = rssBefore;
  let worstHealthMs = 0;
  let putsCommitted = 0;
  let done = false;
  const prober = (async () => {
    while (!done) {
      const start = performance.now();
      const reply = await httpRequest(member.clientPort, 'GET', '/health');
      worstHealthMs = Math.max(worstHealthMs, performance.now() - start);
      assert.is(reply.status, 200, `/health on the attacked member answered ${reply.status}: ${reply.body}`);
      rssPeak = Math.max(rssPeak, rssOf(pid));
      await sleep(10);
    }
  })();
  const writer = (async () => {
    let n = 0;
    while (!done) {
      const leader = await cluster.waitLeader();
      try {
        await call(cluster.kv(leader), 'Put', { key: Buffer.from(`hostile-peers/${n++}`), value: Buffer.from('v') });
        putsCommitted++;
      } catch {
        await sleep(50);
      }
    }
  })();
  try {
    await attack();
  } finally {
    done = true;
    await Promise.all([prober, writer]);
  }
  const seen = { worstHealthMs, putsCommitted, rssGrowthBytes: rssPeak - rssBefore };
  console.log(`[hostile-peers] ${name}: worst /health ${worstHealthMs.toFixed(0)} ms, ${putsCommitted} puts committed, RSS +${(seen.rssGrowthBytes / 2 ** 20).toFixed(0)} MiB`);
  assert.ok(worstHealthMs < HEALTH_BOUND_MS, `/health took ${worstHealthMs.toFixed(0)} ms during "${name}"`);
  assert.ok(putsCommitted > 0, `no put committed during "${name}"`);
  assert.ok(seen.rssGrowthBytes < RSS_GROWTH_BOUND_BYTES, `the attacked member grew by ${seen.rssGrowthBytes} bytes during "${name}"`);
  assert.ok(member.process!.child.exitCode === null, `the attacked member exited during "${name}":\n${member.process!.output().slice(-3000)}`);
  return seen;
}

/** A socket to the attacked member's real peer port; resolves once connected. Records when the server closes it. */
function dial(): Promise<{ socket: Socket; closedByServer: Promise<void>; received: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const socket = connect(cluster.slots[target]!.peerPort, '127.0.0.1');
    const received: Buffer[] = [];
    const closedByServer = new Promise<void>((r) => {
      socket.on('end', () => r());
      socket.on('close', () => r());
    });
    socket.on('data', (d) => received.push(d));
    socket.on('error', () => { /* resets are expected */ });
    socket.once('connect', () => resolve({ socket, closedByServer, received }));
    socket.once('error', reject);
  });
}

/** Resolves true if `p` settles within `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => { timer = setTimeout(() => r(false), ms); });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The frames of a real handshake as member `from` to the attacked member of cluster `clusterId`. */
function handshakeAs(from: bigint, clusterId: bigint): Buffer {
  return encodeHandshakeFrame({ clusterId, fromMemberId: from, toMemberId: cluster.slots[target]!.id, protocolVersion: PROTOCOL_VERSION, stream: StreamKind.Message });
}

/** Asks the attacked member with a wrong cluster id: the refusal carries the real one (no secret). */
async function learnClusterId(): Promise<bigint> {
  const { socket, closedByServer, received } = await dial();
  socket.write(handshakeAs(12345n, 999n));
  await within(closedByServer, 5_000);
  socket.destroy();
  const bytes = Buffer.concat(received);
  assert.ok(bytes.length > 4, 'a refused dialer gets a reply frame');
  const envelope = decodeEnvelope(bytes.subarray(4, 4 + bytes.readUInt32BE(0)));
  assert.is(envelope.kind, 'handshakeReply');
  if (envelope.kind !== 'handshakeReply') throw new Error('unreachable');
  assert.is(envelope.reply.accepted, false);
  assert.ok(envelope.reply.clusterId !== 0n);
  return envelope.reply.clusterId;
}

test('a crowd of idle connections, kept topped up: each closed at the deadline or evicted, and a restarted peer still gets in', async () => {
  const sockets: Array<Awaited<ReturnType<typeof dial>>> = [];
  let stop = false;
  let opened = 0;
  await underAttack('1,500 idle connections kept open', async () => {
    // The attacker holds 1,500 connections that never speak, redialing each one the member closes.
    const crowd = (async () => {
      while (!stop) {
        const live = sockets.filter((s) => !s.socket.destroyed && s.socket.readyState === 'open').length;
        for (let i = live; i < 1_500 && !stop; i++) {
          try {
            sockets.push(await dial());
            opened++;
          } catch {
            // refused at the listener's connection cap: that is an answer too
          }
        }
        await sleep(100);
      }
    })();
    // The crowd stands before the restart: wait until it has dialed its first 1,000 connections.
    while (opened < 1_000) await sleep(20);
    // Restart a follower in the middle of it: its acks reach the leader only over a connection it
    // dials to the attacked port, so it converges only if it gets through the crowd.
    const restarted = others[0];
    await cluster.kill9(restarted);
    cluster.spawn(restarted);
    const statuses = await cluster.waitConverged(30_000);
    stop = true;
    await crowd;
    assert.is(statuses.length, 3);
  });
  const closed = await Promise.all(sockets.map((s) => within(s.closedByServer, 15_000)));
  const open = closed.filter((c) => !c).length;
  for (const s of sockets) s.socket.destroy();
  console.log(`[hostile-peers] the crowd opened ${opened} connections`);
  assert.is(open, 0, `${open} idle connections were still open 15 s later`);
});

test('slowloris handshakes (one byte every 200 ms) are closed at the handshake deadline', async () => {
  const clusterId = await learnClusterId();
  const frame = handshakeAs(cluster.slots[others[0]]!.id, clusterId);
  const sockets: Array<Awaited<ReturnType<typeof dial>>> = [];
  let stop = false;
  await underAttack('200 slowloris handshakes', async () => {
    for (let i = 0; i < 200; i++) sockets.push(await dial());
    const trickle = (async () => {
      for (let at = 0; at < frame.length - 1 && !stop; at++) {
        for (const s of sockets) if (!s.socket.destroyed) s.socket.write(frame.subarray(at, at + 1));
        await sleep(200);
      }
    })();
    const closed = await Promise.all(sockets.map((s) => within(s.closedByServer, 15_000)));
    stop = true;
    await trickle;
    assert.is(closed.filter((c) => !c).length, 0, 'every trickling dialer is cut off');
  });
  for (const s of sockets) s.socket.destroy();
});

test('garbage, oversized length prefixes and wrong-cluster handshakes: each connection closed at once', async () => {
  const random = rng(20261202);
  await underAttack('garbage, oversize and refused handshakes', async () => {
    for (let round = 0; round < 600; round++) {
      const batch = await Promise.all(Array.from({ length: 5 }, () => dial()));
      const kinds = [
        Buffer.from(Array.from({ length: 4096 }, () => Math.floor(random() * 256))),
        Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 2, 3]),
        handshakeAs(7n, 424242n),
        Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from([0xff, 0xff, 0xff])]),
        handshakeAs(cluster.slots[others[0]]!.id, 1n),
      ];
      batch.forEach((s, i) => s.socket.write(kinds[i]!));
      const closed = await Promise.all(batch.map((s) => within(s.closedByServer, 5_000)));
      for (const s of batch) s.socket.destroy();
      assert.is(closed.filter((c) => !c).length, 0, `round ${round}: a hostile first frame left its connection open`);
    }
  });
  // Each refusal is logged, but an attacker cannot turn the log into a flood: the warnings are
  // rate-limited with a count of what was left out.
  const refusals = cluster.slots[target]!.process!.output().split('\n').filter((l) => l.includes('refusing peer connection') || l.includes('closing peer connection')).length;
  assert.ok(refusals < 300, `3,000 hostile connections wrote ${refusals} log lines`);
});

test('a dialer posing as a member: forged senders dropped, garbage closes its stream, the cluster carries on', async () => {
  const clusterId = await learnClusterId();
  const m1 = cluster.slots[others[0]]!.id;
  const m2 = cluster.slots[others[1]]!.id;
  await underAttack('an impostor of a member', async () => {
    for (let round = 0; round < 50; round++) {
      const s = await dial();
      s.socket.write(handshakeAs(m1, clusterId));
      // Raft messages whose sender is not the connection's peer: dropped, not stepped.
      const forged = encodeRaftMessage({
        type: MessageType.Heartbeat, to: cluster.slots[target]!.id, from: m2, term: 1_000_000, logTerm: 0, index: 0, entries: [], commit: 0,
        reject: false, rejectHint: 0, snapshot: null, context: null, transferee: 0n,
      } as unknown as Message);
      s.socket.write(encodeRaftBatchFrames([forged], 0, 1, 1 << 20));
      // Then a frame that declares 1 GiB, and noise: the stream is closed.
      s.socket.write(Buffer.from([0x40, 0, 0, 0]));
      s.socket.write(Buffer.alloc(64, 0xab));
      assert.ok(await within(s.closedByServer, 5_000), `round ${round}: the impostor's stream stayed open`);
      s.socket.destroy();
    }
  });
  // The forged term never reached the Raft core: no member moved to term 1,000,000.
  const statuses = await cluster.waitConverged(30_000);
  for (const st of statuses) assert.ok(st.raftTerm < 1_000_000, `a member took the forged term: ${st.raftTerm}`);
});

test.run();
