import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * etcd's lease metrics (lease/metrics.go), same names and help. Created once per member: the
 * lessor is rebuilt when a state image is installed, its counters are not.
 */
export class LeaseMetrics {
  readonly granted: Counter;
  readonly revoked: Counter;
  readonly renewed: Counter;
  readonly ttl: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    this.granted = new Counter({ name: 'etcd_debugging_lease_granted_total', help: 'The total number of granted leases.', registers });
    this.revoked = new Counter({ name: 'etcd_debugging_lease_revoked_total', help: 'The total number of revoked leases.', registers });
    this.renewed = new Counter({ name: 'etcd_debugging_lease_renewed_total', help: 'The number of renewed leases seen by the leader.', registers });
    // etcd: prometheus.ExponentialBuckets(1, 2, 14), lease TTLs from 1 s to about 2.3 h.
    const buckets = Array.from({ length: 14 }, (_, i) => 2 ** i);
    this.ttl = new Histogram({ name: 'etcd_debugging_lease_ttl_total', help: 'Bucketed histogram of lease TTLs.', buckets, registers });
  }
}
