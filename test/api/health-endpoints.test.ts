/**
 * /health (with ?exclude= and ?serializable=true), /livez and /readyz (etcd 3.4.29+/3.5.11+:
 * named checks, ?verbose, ?exclude=, one check per sub-path) against a MemoryMember whose
 * leader and alarms the test sets.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { httpRequest, startWithMemoryMember, type Running } from './helpers.js';

let running: Running;
let port: number;

test.before(async () => {
  running = await startWithMemoryMember();
  port = running.server.port;
});

test.after(async () => {
  await running.server.close();
});

const get = (path: string) => httpRequest(port, 'GET', path);

test('/livez and /readyz: ok, verbose lists the checks in order, sub-paths run one', async () => {
  const live = await get('/livez');
  assert.is(live.status, 200);
  assert.is(live.body, 'ok\n');
  assert.is(live.headers['content-type'], 'text/plain; charset=utf-8');
  assert.is((await get('/livez?verbose')).body, '[+]serializable_read ok\nok\n');
  assert.is((await get('/readyz?verbose')).body, '[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n');
  assert.is((await get('/readyz?verbose&exclude=linearizable_read')).body, '[+]data_corruption ok\n[+]serializable_read ok\nok\n');
  assert.is((await get('/readyz/data_corruption?verbose')).body, '[+]data_corruption ok\nok\n');
  assert.is((await get('/readyz/nonsense')).status, 404);
  assert.is((await httpRequest(port, 'POST', '/readyz', '')).status, 405);
});

test('a CORRUPT alarm fails /readyz (503 with the reasons) and /health, not /livez; ?exclude=CORRUPT passes /health', async () => {
  running.member.alarms = [{ memberID: 1n, alarm: 2 }];
  try {
    const ready = await get('/readyz');
    assert.is(ready.status, 503);
    assert.is(ready.body, '[-]data_corruption failed: alarm activated: CORRUPT\n[+]serializable_read ok\n[+]linearizable_read ok\n\n');
    assert.is((await get('/readyz?exclude=data_corruption')).status, 200);
    assert.is((await get('/livez')).status, 200);
    const health = await get('/health');
    assert.is(health.status, 503);
    assert.is(health.body, '{"health":"false"}');
    assert.is((await get('/health?exclude=CORRUPT')).status, 200);
    running.member.alarms = [{ memberID: 1n, alarm: 1 }];
    assert.is((await get('/health')).status, 503);
    assert.is((await get('/health?exclude=NOSPACE')).body, '{"health":"true"}');
    assert.is((await get('/readyz')).status, 200, 'NOSPACE is not data corruption');
  } finally {
    running.member.alarms = [];
  }
});

test('without a leader: /health fails, /health?serializable=true passes', async () => {
  running.member.healthy = false;
  try {
    assert.is((await get('/health')).status, 503);
    const serializable = await get('/health?serializable=true');
    assert.is(serializable.status, 200);
    assert.is(serializable.body, '{"health":"true"}');
  } finally {
    running.member.healthy = true;
  }
});

test.run();
