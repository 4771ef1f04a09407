/**
 * Composition root: builds a member and its client listeners from a MemberConfig. The CLI
 * (cli/keyraft.ts) and in-process tests both start keyraft through here; nothing else wires
 * layers together.
 */
import { rm } from 'node:fs/promises';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { startClientServer } from './api/client-server.js';
import { discoverClusterId } from './peer/cluster-discovery.js';
import { loadPeerTls } from './peer/peer-tls.js';
import { PeerTransport } from './peer/peer-transport.js';
import { decodeRaftMessage, encodeRaftMessage } from './peer/raft-codec.js';
import type { Logger } from './platform/logger.js';
import type { Message } from './raft/raft-types.js';
import type { MemberConfig } from './server/config.js';
import { Member, type MemberNetworkFactory, type TestFault } from './server/member.js';

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
  const testFault = process.env.KEYRAFT_TEST_FAULT as TestFault;
  const member = await Member.start(config, {
    logger: options.logger, metrics, onFatal: options.onFatal, testFault,
    network: peerNetwork(config, metrics, options.logger),
    discoverClusterId: async (urls, memberId) => discoverClusterId(urls, memberId, config.peerTls ? (await loadPeerTls(config.peerTls)).client : undefined),
  });
  const servers: Array<{ port: number; close(): Promise<void> }> = [];
  try {
    for (const url of config.listenClientUrls) {
      servers.push(await startClientServer({
        member,
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: Number(url.port),
        logger: options.logger,
        metricsRegistry: metrics,
        http2Timing: {
          keepaliveMinTimeMs: config.grpcKeepaliveMinTimeMs,
          keepaliveIntervalMs: config.grpcKeepaliveIntervalMs,
          keepaliveTimeoutMs: config.grpcKeepaliveTimeoutMs,
        },
        clientConnectionsMax: config.maxClientConnections,
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

const noMessages: readonly Message[] = [];

/**
 * The member's peer network on the peer transport: Raft messages encoded as raftpb.Message
 * (peer/raft-codec.ts), one outbound stream per peer, listening on the first --listen-peer-urls.
 */
function peerNetwork(config: MemberConfig, metrics: Registry, logger: Logger): MemberNetworkFactory {
  return async (identity, inbox, options) => {
    const listen = config.listenPeerUrls[0]!;
    const log = logger.child({ component: 'peer-network' });
    const transport = new PeerTransport({
      clusterId: identity.clusterId,
      memberId: identity.memberId,
      listenHost: listen.hostname.replace(/^\[|\]$/g, ''),
      listenPort: Number(listen.port),
      registry: metrics,
      logger,
      tls: config.peerTls,
      // Inbound state images stream to files in the member's snap dir, never whole in memory.
      snapshotDir: options.snapshotDir,
      handler: {
        onMessages(from, frames) {
          for (const frame of frames) {
            let m: Message;
            try {
              m = decodeRaftMessage(frame);
            } catch (err) {
              log.warn({ from: from.toString(16), err: (err as Error).message }, 'dropping a malformed raft message');
              continue;
            }
            if (m.from !== from) {
              log.warn({ from: from.toString(16), claimed: m.from.toString(16) }, 'dropping a raft message whose sender is not its connection\'s peer');
              continue;
            }
            inbox.step(m);
          }
        },
        onSnapshot(from, snapshot) {
          let m: Message;
          try {
            m = decodeRaftMessage(snapshot.metadata);
          } catch (err) {
            log.warn({ from: from.toString(16), err: (err as Error).message }, 'dropping a snapshot with malformed metadata');
            if (snapshot.path !== null) void rm(snapshot.path, { force: true });
            return;
          }
          if (snapshot.path === null) {
            log.warn({ from: from.toString(16) }, 'dropping a snapshot that arrived in memory (no snapshot dir)');
            return;
          }
          inbox.snapshot(from, m, snapshot.path);
        },
        onPeerUnreachable(to) {
          inbox.unreachable(to);
        },
        onRemovedFromCluster(by) {
          inbox.removed(by);
        },
      },
    });
    await transport.start();
    return {
      send(messages) {
        // One call per run of messages to the same peer: the stream writes them as few frames.
        let dropped: Message[] | null = null;
        let i = 0;
        while (i < messages.length) {
          const start = i;
          const to = messages[i]!.to;
          const encoded: Uint8Array[] = [];
          for (; i < messages.length && messages[i]!.to === to; i++) encoded.push(encodeRaftMessage(messages[i]!));
          const accepted = transport.send(to, encoded);
          // The transport takes a prefix and drops the rest.
          if (accepted < encoded.length) (dropped ??= []).push(...messages.slice(start + accepted, i));
        }
        return dropped ?? noMessages;
      },
      sendSnapshot(to, message, source) {
        return transport.sendSnapshot(to, source, encodeRaftMessage(message));
      },
      addPeer(id, peerUrls) {
        if (peerUrls.length > 0) transport.addPeer(id, peerUrls[0]!);
      },
      removePeer(id) {
        transport.removePeer(id);
      },
      close() {
        return transport.close();
      },
    };
  };
}
