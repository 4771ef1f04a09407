/**
 * Auto-compaction on a real member (periodic mode, 2 s retention: samples every 200 ms, compacts
 * at the revision of 2 s ago) and the operations metrics under etcd's names.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { b64, httpRequest, killAll, postJson, startKeyraft } from './harness.js';

test.after(async () => {
  await killAll();
});

test('periodic auto-compaction compacts history older than the retention; metrics under etcd names', async () => {
  const server = await startKeyraft({ args: ['--auto-compaction-mode', 'periodic', '--auto-compaction-retention', '2s', '--quota-backend-bytes', '123456789'] });
  const started = Date.now();
  let firstRevision = 0;
  let compacted = 0;
  // Writes go on until the revision written first is compacted away (bounded: 60 s).
  for (let i = 0; Date.now() - started < 60_000; i++) {
    const put = await postJson(server.clientPort, '/v3/kv/put', { key: b64('ticker'), value: b64(String(i)) });
    assert.is(put.status, 200);
    if (firstRevision === 0) firstRevision = Number(put.json.header.revision);
    const old = await postJson(server.clientPort, '/v3/kv/range', { key: b64('ticker'), revision: String(firstRevision) });
    if (old.status !== 200) {
      assert.is(old.json.message, 'etcdserver: mvcc: required revision has been compacted');
      compacted = Number(put.json.header.revision);
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(compacted > firstRevision, 'the first revision was compacted by auto-compaction');
  // Recent history is kept: the revision just written is readable.
  const recent = await postJson(server.clientPort, '/v3/kv/range', { key: b64('ticker'), revision: String(compacted) });
  assert.is(recent.status, 200);
  const metrics = (await httpRequest(server.clientPort, 'GET', '/metrics')).body;
  assert.match(metrics, /^etcd_server_quota_backend_bytes 123456789$/m);
  assert.match(metrics, /^etcd_mvcc_db_total_size_in_bytes [1-9]\d*$/m);
  assert.match(metrics, /^etcd_mvcc_db_total_size_in_use_in_bytes \d+$/m);
  assert.match(metrics, /^etcd_disk_backend_commit_duration_seconds_count [1-9]\d*$/m);
  assert.match(metrics, /^etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count [1-9]\d*$/m);
});

test.run();
