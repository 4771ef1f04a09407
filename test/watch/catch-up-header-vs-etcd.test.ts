import * as grpc from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode, messageType } from '../../src/proto/codec.js';
import { needEtcd } from '../etcd-binaries.js';
import { killAll, startEtcd, startKeyraft, type ServerProcess } from '../integration/harness.js';

/**
 * A watch from an old revision over more history than one catch-up batch (etcd's
 * watchBatchMaxRevs, our Limits.watchCatchUpRevisionsMax: 1,000 revisions), side by side with
 * etcd 3.4: the same responses, and each one's header revision is the store's revision when it is
 * sent (etcd's syncWatchers: Revision = curRev), not the last revision the batch carries.
 */

const HISTORY_REVISIONS = 1500;
const putRequest = messageType('etcdserverpb.PutRequest');
const putResponse = messageType('etcdserverpb.PutResponse');
const watchRequest = messageType('etcdserverpb.WatchRequest');
const watchResponse = messageType('etcdserverpb.WatchResponse');

interface Resp {
  header?: { revision?: number };
  created?: boolean;
  events?: Array<{ kv?: { mod_revision?: number } }>;
}

/** Puts HISTORY_REVISIONS values (a few in flight at once), then watches prefix k from revision 2 until every event came. */
async function catchUp(server: ServerProcess): Promise<{ current: number; responses: Array<[number, number, number, number]> }> {
  const client = new grpc.Client(`127.0.0.1:${server.clientPort}`, grpc.credentials.createInsecure());
  try {
    const put = (i: number): Promise<number> => new Promise((resolve, reject) => {
      client.makeUnaryRequest('/etcdserverpb.KV/Put', (v: object) => Buffer.from(encode(putRequest, v)), (b: Buffer) => decode<{ header: { revision: number } }>(putResponse, b),
        { key: Buffer.from(`k${i % 3}`), value: Buffer.from(`v${i}`) }, (err, r) => (err ? reject(err) : resolve(Number(r!.header.revision))));
    });
    let current = 0;
    for (let i = 0; i < HISTORY_REVISIONS; i += 50) {
      const revs = await Promise.all(Array.from({ length: Math.min(50, HISTORY_REVISIONS - i) }, (_, j) => put(i + j)));
      current = Math.max(current, ...revs);
    }
    const call = client.makeBidiStreamRequest('/etcdserverpb.Watch/Watch', (v: object) => Buffer.from(encode(watchRequest, v)), (b: Buffer) => decode<Resp>(watchResponse, b));
    const responses: Array<[number, number, number, number]> = [];
    let events = 0;
    await new Promise<void>((resolve, reject) => {
      call.on('data', (r: Resp) => {
        const evs = r.events ?? [];
        if (evs.length === 0) return;
        responses.push([Number(r.header?.revision ?? 0), evs.length, evs[0]!.kv!.mod_revision!, evs.at(-1)!.kv!.mod_revision!]);
        events += evs.length;
        if (events >= HISTORY_REVISIONS) resolve();
      });
      call.on('error', (err: { code?: number }) => { if (err.code !== grpc.status.CANCELLED) reject(err); });
      call.on('end', () => reject(new Error(`watch ended after ${events} events`)));
      call.write({ create_request: { key: Buffer.from('k'), range_end: Buffer.from('l'), start_revision: 2 } });
    });
    call.cancel();
    return { current, responses };
  } finally {
    client.close();
  }
}

const need = needEtcd('watch/catch-up-header-vs-etcd', ['etcd']);

need.test(test, 'catch-up over 1,500 revisions: the same responses as etcd 3.4, each with header revision = the store\'s current revision', async () => {
  const keyraft = await startKeyraft();
  const etcd = await startEtcd();
  try {
    const [k, e] = [await catchUp(keyraft), await catchUp(etcd)];
    assert.is(k.current, HISTORY_REVISIONS + 1);
    assert.is(e.current, HISTORY_REVISIONS + 1);
    assert.equal(e.responses, [[1501, 1000, 2, 1001], [1501, 500, 1002, 1501]], 'etcd 3.4\'s answer changed');
    assert.equal(k.responses, e.responses);
  } finally {
    await keyraft.kill9();
    await etcd.kill9();
    await killAll();
  }
});

test.run();
