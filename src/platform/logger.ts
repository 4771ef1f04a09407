import pino from 'pino';

/**
 * The process-wide root logger: structured JSON to stderr (stdout stays free for CLI output).
 * Components take a child with their own fields: `rootLogger.child({ component: 'wal' })`.
 * The composition root sets the level from --log-level.
 */
export type Logger = pino.Logger;

export const rootLogger: Logger = pino(
  { level: process.env.KEYRAFT_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: false }),
);

/** A logger that writes nothing: for tests and tools that do not want output. */
export const silentLogger: Logger = pino({ level: 'silent' });
