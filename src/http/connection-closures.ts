/**
 * Client connections the member closed for a bound of its own (not for a protocol error): counted
 * by reason for keyraft_client_connections_closed_total (api registers the metric and reads
 * `counts` when scraped), and logged at warn, rate-limited per reason, because anyone who can reach
 * the client port can cause them (3,000 stalled connections must not write 3,000 log lines).
 * One per client port, shared by its HTTP/2 and HTTP/1.1 connections.
 */
import type { Logger } from '../platform/logger.js';
import { SampledWarnings } from '../platform/sampled-warnings.js';

export type ClosureReason =
  /** Queued output did not move for Limits.clientWriteStallMs (the client stopped reading). */
  | 'write_stall'
  /** Past Limits.clientConnectionsMax open connections: closed at accept. */
  | 'connection_limit';

const MESSAGES: Record<ClosureReason, string> = {
  write_stall: 'closed a client connection whose replies did not move (the client stopped reading)',
  connection_limit: 'refused a client connection: too many open',
};

export class ConnectionClosures {
  readonly counts = new Map<ClosureReason, number>();
  private readonly warnings = new SampledWarnings();

  constructor(private readonly logger: Logger) {}

  record(reason: ClosureReason, fields: object = {}): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    this.warnings.warn(this.logger, { reason, ...fields }, MESSAGES[reason]);
  }
}
