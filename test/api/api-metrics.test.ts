/** grpc_server_* counters: counted cheaply, published on scrape, shared by listeners of one registry. */
import { Registry } from 'prom-client';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ApiMetrics } from '../../src/api/api-metrics.js';

test('two listeners on one registry add up; codes print with Go names', async () => {
  const registry = new Registry();
  const a = new ApiMetrics(registry);
  const b = new ApiMetrics(registry);
  a.start('etcdserverpb.KV', 'Put');
  b.start('etcdserverpb.KV', 'Put');
  a.handle('etcdserverpb.KV', 'Put', 0);
  b.handle('etcdserverpb.KV', 'Put', 3);
  b.handle('etcdserverpb.KV', 'Put', 3);
  const text = await registry.metrics();
  assert.match(text, 'grpc_server_started_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put"} 2');
  assert.match(text, 'grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="OK"} 1');
  assert.match(text, 'grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="InvalidArgument"} 2');
  // A second scrape does not double count.
  a.handle('etcdserverpb.KV', 'Put', 0);
  assert.match(await registry.metrics(), 'grpc_code="OK"} 2');
});

test.run();
