/**
 * Composition root: builds a member and its client listeners from a MemberConfig. The CLI
 * (cli/keyraft.ts) and in-process tests both start keyraft through here; nothing else wires
 * layers together.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import { startClientServer } from './api/client-server.js';
import type { Logger } from './platform/logger.js';
import type { MemberConfig } from './server/config.js';
import { Member } from './server/member.js';

export interface RunningKeyraft {
  member: Member;
  /** The client ports actually bound, in --listen-client-urls order (port 0 resolves to a free one). */
  clientPorts: number[];
  close(): Promise<void>;
}

export async function startKeyraft(
  config: MemberConfig,
  options: { logger: Logger; onFatal?: (err: Error) => void },
): Promise<RunningKeyraft> {
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });
  const member = await Member.start(config, { logger: options.logger, metrics, onFatal: options.onFatal });
  const servers: Array<{ port: number; close(): Promise<void> }> = [];
  try {
    for (const url of config.listenClientUrls) {
      servers.push(await startClientServer({
        member,
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: Number(url.port),
        logger: options.logger,
        metricsRegistry: metrics,
      }));
    }
  } catch (err) {
    await Promise.all(servers.map((s) => s.close()));
    await member.close();
    throw err;
  }
  options.logger.info({ clientUrls: config.listenClientUrls.map((u) => u.href), ports: servers.map((s) => s.port) }, 'serving client requests');
  return {
    member,
    clientPorts: servers.map((s) => s.port),
    async close() {
      await Promise.all(servers.map((s) => s.close()));
      await member.close();
    },
  };
}
