/**
 * The etcd version keyraft speaks, the one home for it: /version's etcdserver and etcdcluster,
 * Maintenance.Status's version, `keyraft --version`. Clients gate features on it (etcdctl,
 * Kubernetes' API server), so it names the etcd release whose behaviour we match.
 */
export const ETCD_SERVER_VERSION = '3.4.23';
/** The cluster version etcd 3.4 reports (major.minor.0). */
export const ETCD_CLUSTER_VERSION = '3.4.0';
