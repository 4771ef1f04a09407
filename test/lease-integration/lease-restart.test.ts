/**
 * kill -9 of a single member holding leases: on restart the leases and their keys come back
 * (backend plus the WAL replayed after it), each with a fresh TTL (no mass expiry at start-up),
 * and a lease left alone still expires afterwards.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LeaseGrpc } from '../cluster/lease-grpc.js';
import { killAll, startKeyraft } from '../integration/harness.js';

test.after(async () => {
  await killAll();
});

test('leases survive kill -9 with a fresh TTL and still expire when left alone', async () => {
  let server = await startKeyraft();
  const { dataDir, clientPort } = server;
  let client = new LeaseGrpc(clientPort);
  const ids: bigint[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const { ID } = await client.grant(3);
      ids.push(ID);
      await client.put(`r/${i}`, 'v', ID);
    }
    client.close();
    await server.kill9();
    // Down for longer than the TTL: a restart must not revoke them all at once.
    await new Promise((r) => setTimeout(r, 3500));
    server = await startKeyraft({ dataDir, clientPort });
    client = new LeaseGrpc(clientPort);
    const listed = (await client.leases()).leases.map((l) => l.ID).sort();
    assert.equal(listed, [...ids].sort());
    for (let i = 0; i < 20; i++) assert.ok((await client.get(`r/${i}`)) !== undefined, `r/${i} kept`);
    const ttl = await client.timeToLive(ids[3]!, true);
    assert.is(ttl.grantedTTL, 3);
    assert.ok(ttl.TTL >= 2, `fresh TTL after restart: ${ttl.TTL}`);
    assert.equal(ttl.keys.map(String), ['r/3']);
    while ((await client.leases()).leases.length > 0) await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 20; i++) assert.is(await client.get(`r/${i}`), undefined);
  } finally {
    client.close();
  }
});

test.run();
