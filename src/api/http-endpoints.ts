/**
 * The plain HTTP endpoints next to the gateway on the client port, as etcd 3.4 serves them:
 * GET /health -> {"health":"true"} (503 {"health":"false"} while the member has no leader),
 * GET /version -> {"etcdserver":"3.4.23","etcdcluster":"3.4.0","keyraft":"<our version>"},
 * GET /metrics -> the prom-client registry in Prometheus text format.
 *
 * /version: etcd clients (etcdctl, client libraries, Kubernetes) read `etcdserver` and
 * `etcdcluster` to decide which API they may use, so those report the etcd API level keyraft
 * implements. keyraft's own version is an extra field: Go's and JS's JSON decoders ignore unknown
 * fields, so nothing breaks, and anyone asking can see it is keyraft.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { ETCD_CLUSTER_VERSION, ETCD_SERVER_VERSION } from '../platform/etcd-version.js';
import type { Logger } from '../platform/logger.js';
import type { MemberApi } from '../server/raft-kv.js';
import { sendPlainError, sendText } from './http-reply.js';

export class HttpEndpoints {
  private readonly versionBody: string;

  constructor(
    private readonly member: MemberApi,
    private readonly registry: Registry,
    keyraftVersion: string,
    private readonly logger: Logger,
  ) {
    this.versionBody = JSON.stringify({ etcdserver: ETCD_SERVER_VERSION, etcdcluster: ETCD_CLUSTER_VERSION, keyraft: keyraftVersion });
  }

  /** Answers `path` if it is one of ours; returns false otherwise. */
  handle(path: string, req: IncomingMessage, res: ServerResponse): boolean {
    switch (path) {
      case '/health': {
        if (!this.allowGet(req, res)) return true;
        const healthy = this.member.isHealthy();
        sendText(res, healthy ? 200 : 503, 'application/json', healthy ? '{"health":"true"}' : '{"health":"false"}');
        return true;
      }
      case '/version':
        if (this.allowGet(req, res)) sendText(res, 200, 'application/json', this.versionBody);
        return true;
      case '/metrics':
        if (!this.allowGet(req, res)) return true;
        this.registry.metrics().then(
          (text) => sendText(res, 200, this.registry.contentType, text),
          (err: unknown) => {
            this.logger.error({ err }, 'collecting metrics failed');
            sendText(res, 500, 'text/plain; charset=utf-8', 'metrics unavailable\n');
          },
        );
        return true;
      default:
        return false;
    }
  }

  private allowGet(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method === 'GET' || req.method === 'HEAD') return true;
    sendPlainError(res, 405, 'Method Not Allowed');
    return false;
  }
}
