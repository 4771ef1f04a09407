/**
 * The plain HTTP endpoints next to the gateway on the client port, as etcd 3.4 serves them:
 * GET /health -> {"health":"true"} (503 {"health":"false"} with an active alarm not named by
 *   ?exclude=NOSPACE|CORRUPT, without a leader, or when a linearizable read fails; with
 *   ?serializable=true the leader check is skipped and the read is local: etcd's checks in order),
 * GET /livez, /readyz (etcd 3.4.29+/3.5.11+): named checks run in order; "ok\n" on success
 *   (?verbose prefixes "[+]name ok" lines), 503 with "[+]/[-]" lines on failure; ?exclude=name
 *   skips a check; /livez/<name> and /readyz/<name> run one:
 *     livez:  serializable_read
 *     readyz: data_corruption (no CORRUPT alarm), serializable_read, linearizable_read
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
import { AlarmType } from '../proto/etcd-types.js';
import type { MemberApi } from '../server/raft-kv.js';
import { sendPlainError, sendText } from './http-reply.js';

type HealthCheck = (member: MemberApi) => Promise<void>;

const readCheck = (serializable: boolean): HealthCheck => async (member) => {
  await member.range({ key: Buffer.alloc(0), keys_only: true, limit: 1, serializable });
};

/** etcd's check registries, in registration order. */
const CHECKS: Record<'livez' | 'readyz', ReadonlyArray<[string, HealthCheck]>> = {
  livez: [['serializable_read', readCheck(true)]],
  readyz: [
    ['data_corruption', async (member) => {
      if (member.activeAlarms().some((a) => a.alarm === AlarmType.CORRUPT)) throw new Error('alarm activated: CORRUPT');
    }],
    ['serializable_read', readCheck(true)],
    ['linearizable_read', readCheck(false)],
  ],
};

const ALARM_NAMES = ['NONE', 'NOSPACE', 'CORRUPT'];

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
        this.health(new URLSearchParams(queryOf(req))).then(
          (healthy) => sendText(res, healthy ? 200 : 503, 'application/json', healthy ? '{"health":"true"}' : '{"health":"false"}'),
          (err: unknown) => {
            this.logger.error({ err }, 'health check failed unexpectedly');
            sendText(res, 503, 'application/json', '{"health":"false"}');
          },
        );
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
      default: {
        const m = /^\/(livez|readyz)(?:\/([a-z_]+))?$/.exec(path);
        if (m === null) return false;
        const checks = CHECKS[m[1] as 'livez' | 'readyz'];
        if (m[2] !== undefined && !checks.some(([name]) => name === m[2])) return false;
        if (!this.allowGet(req, res)) return true;
        const query = new URLSearchParams(queryOf(req));
        const excluded = new Set(query.getAll('exclude'));
        const selected = m[2] !== undefined ? checks.filter(([name]) => name === m[2]) : checks.filter(([name]) => !excluded.has(name));
        this.runChecks(selected).then(({ ok, lines }) => {
          if (!ok) {
            sendPlainError(res, 503, lines);
            return;
          }
          sendText(res, 200, 'text/plain; charset=utf-8', (query.has('verbose') ? lines : '') + 'ok\n');
        }, (err: unknown) => {
          this.logger.error({ err }, 'health checks failed unexpectedly');
          sendPlainError(res, 503, 'internal error');
        });
        return true;
      }
    }
  }

  /** etcd's /health: alarms (but the excluded ones), then the leader (unless serializable), then a read. */
  private async health(query: URLSearchParams): Promise<boolean> {
    const excluded = new Set(query.getAll('exclude'));
    const serializable = query.get('serializable') === 'true';
    if (this.member.activeAlarms().some((a) => !excluded.has(ALARM_NAMES[a.alarm] ?? 'UNKNOWN'))) return false;
    if (!serializable && !this.member.hasLeader()) return false;
    if (!this.member.isHealthy() && !serializable) return false;
    try {
      await readCheck(serializable)(this.member);
      return true;
    } catch {
      return false;
    }
  }

  private async runChecks(checks: ReadonlyArray<[string, HealthCheck]>): Promise<{ ok: boolean; lines: string }> {
    let ok = true;
    let lines = '';
    for (const [name, check] of checks) {
      try {
        await check(this.member);
        lines += `[+]${name} ok\n`;
      } catch (err) {
        ok = false;
        lines += `[-]${name} failed: ${(err as Error).message}\n`;
      }
    }
    return { ok, lines };
  }

  private allowGet(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method === 'GET' || req.method === 'HEAD') return true;
    sendPlainError(res, 405, 'Method Not Allowed');
    return false;
  }
}

function queryOf(req: IncomingMessage): string {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return q === -1 ? '' : url.slice(q + 1);
}
