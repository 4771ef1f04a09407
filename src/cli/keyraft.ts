#!/usr/bin/env node
/**
 * `keyraft`: the server. Flags and ETCD_* environment variables as etcd's (server/config.ts).
 * Exits 2 on a bad flag, 1 on a start-up or fatal error, 0 after a clean shutdown on SIGINT/SIGTERM.
 * `keyraft cluster ...` starts a local multi-member cluster instead (local-cluster.ts).
 */
// First: it may replace the process before anything else loads (heap-flags-relaunch.ts).
import { launchFlagsApplied } from './heap-flags-relaunch.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKeyraft } from '../main.js';
import { capYoungGeneration, limitOldGenerationGrowth } from '../platform/heap-tuning.js';
import { startIdleHeapReducer } from '../platform/idle-heap-reducer.js';
import { Limits } from '../platform/limits.js';
import { rootLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { ConfigError, USAGE, parseConfig } from '../server/config.js';
import { ETCD_SERVER_VERSION } from '../platform/etcd-version.js';
import { runLocalCluster } from './local-cluster.js';

function keyraftVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

async function main(): Promise<void> {
  if (process.argv[2] === 'cluster') {
    process.exitCode = await runLocalCluster(process.argv.slice(3));
    return;
  }
  let command;
  try {
    command = parseConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`keyraft: ${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    throw err;
  }
  if (command.kind === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (command.kind === 'version') {
    process.stdout.write(`keyraft Version: ${keyraftVersion()}\netcd API Version: ${ETCD_SERVER_VERSION}\nNode.js Version: ${process.version}\n`);
    return;
  }
  const config = command.config;
  // etcd's panic and fatal levels both mean "only the worst".
  rootLogger.level = config.logLevel === 'panic' ? 'fatal' : config.logLevel;
  const logger = rootLogger.child({ member: config.name });
  // Before start-up, which is where a young generation would first grow past the cap and stay.
  // Node without process.execve got no launch flag (heap-flags-relaunch.ts): held at run time.
  if (!launchFlagsApplied) capYoungGeneration(Limits.heapSemiSpaceMaxBytes);
  const running = await startKeyraft(config, {
    logger,
    onFatal: (err) => {
      logger.fatal({ err }, 'fatal error, exiting');
      process.exit(1);
    },
  });
  // After start-up: rebuilding a large store keeps V8's fewer, larger full GCs (heap-tuning.ts).
  limitOldGenerationGrowth(Limits.heapOldGenerationGrowingPercent);
  // A burst's heap slack goes back to the OS once the member idles (idle-heap-reducer.ts).
  const heapReducer = startIdleHeapReducer({
    checkIntervalMs: Limits.idleHeapCheckIntervalMs,
    idleUtilization: Limits.idleHeapUtilizationMax,
    growthBytesMin: Limits.idleHeapGrowthBytesMin,
    usedBytesMax: Limits.idleHeapUsedBytesMax,
    onReduced: (info) => logger.debug(info, 'idle heap reduced'),
  });
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    heapReducer.stop();
    logger.info({ signal }, 'shutting down');
    running.close().then(
      () => process.exit(0),
      (err: Error) => {
        logger.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: Error) => {
  rootLogger.fatal({ err }, 'keyraft failed to start');
  process.stderr.write(`keyraft: ${err.message}\n`);
  // Exit once pino's async destination has flushed the line above, with a failing code.
  process.exitCode = 1;
});
