/**
 * etcd's gRPC request metrics (go-grpc-prometheus names, as etcd 3.4 exports them), counted for
 * gRPC calls and for gateway requests alike: etcd's gateway forwards every request over gRPC, so
 * its counters include them too.
 *
 *   grpc_server_started_total{grpc_type, grpc_service, grpc_method}
 *   grpc_server_handled_total{grpc_type, grpc_service, grpc_method, grpc_code}
 *
 * Label children are cached per method (and code), so counting costs a Map lookup and an add.
 */
import { Counter, type Registry } from 'prom-client';

/** Go's names for gRPC codes (codes.Code.String()), as the grpc_code label shows them. */
const CODE_NAMES = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists', 'PermissionDenied',
  'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal', 'Unavailable',
  'DataLoss', 'Unauthenticated',
];

type CounterChild = { inc(value?: number): void };

export class ApiMetrics {
  private readonly started: Counter<string>;
  private readonly handled: Counter<string>;
  private readonly startedChildren = new Map<string, CounterChild>();
  private readonly handledChildren = new Map<string, CounterChild>();

  constructor(registry: Registry) {
    // Several client listeners of one member share the registry: reuse what is registered.
    this.started = (registry.getSingleMetric('grpc_server_started_total') as Counter<string> | undefined) ?? new Counter({
      name: 'grpc_server_started_total',
      help: 'Total number of RPCs started on the server.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
      registers: [registry],
    });
    this.handled = (registry.getSingleMetric('grpc_server_handled_total') as Counter<string> | undefined) ?? new Counter({
      name: 'grpc_server_handled_total',
      help: 'Total number of RPCs completed on the server, regardless of success or failure.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'],
      registers: [registry],
    });
  }

  /** `service` is the full name (etcdserverpb.KV), `method` the rpc name (Put). */
  start(service: string, method: string): void {
    const key = service + '/' + method;
    let child = this.startedChildren.get(key);
    if (child === undefined) {
      child = this.started.labels('unary', service, method);
      this.startedChildren.set(key, child);
    }
    child.inc();
  }

  handle(service: string, method: string, code: number): void {
    const key = service + '/' + method + '/' + code;
    let child = this.handledChildren.get(key);
    if (child === undefined) {
      child = this.handled.labels('unary', service, method, CODE_NAMES[code] ?? String(code));
      this.handledChildren.set(key, child);
    }
    child.inc();
  }
}
