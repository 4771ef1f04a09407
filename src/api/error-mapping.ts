/**
 * The API layer's one place where a failure becomes what a client sees: a gRPC status (code and
 * details) or the gateway's JSON error with its HTTP status. Member failures are KeyraftError and
 * map through platform/errors.ts's ErrorTable; malformed gateway input carries Go's own text;
 * anything else is a bug somewhere below us: logged with context and answered INTERNAL.
 */
import type { Logger } from '../platform/logger.js';
import { ErrorTable, GrpcCode, httpStatusOf, isKeyraftError } from '../platform/errors.js';
import { GatewayDecodeError } from './gateway-json.js';

/** What a client is told: gRPC code and message. */
export interface ApiFailure {
  grpcCode: GrpcCode;
  message: string;
}

/**
 * A message over the gRPC receive limit. etcd's own gRPC server (grpc-go) refuses it before etcd
 * runs, with this text, and its gateway relays it as HTTP 429. This is not an etcd error, so it is
 * not in the ErrorTable.
 */
export class MessageTooLargeError extends Error {
  override name = 'MessageTooLargeError';
  constructor(readonly sizeBytes: number, readonly limitBytes: number) {
    super(`grpc: received message larger than max (${sizeBytes} vs. ${limitBytes})`);
  }
}

export function toApiFailure(err: unknown, logger: Logger, context: string): ApiFailure {
  if (isKeyraftError(err)) return { grpcCode: err.grpcCode, message: err.message };
  if (err instanceof GatewayDecodeError) return { grpcCode: GrpcCode.INVALID_ARGUMENT, message: err.message };
  if (err instanceof MessageTooLargeError) return { grpcCode: GrpcCode.RESOURCE_EXHAUSTED, message: err.message };
  logger.error({ err, context }, 'unexpected failure serving a client request');
  return { grpcCode: ErrorTable.Internal.grpc, message: ErrorTable.Internal.message };
}

/** The grpc-js status object for a failure (passed to a unary callback). */
export function toGrpcStatus(failure: ApiFailure): { code: number; details: string } {
  return { code: failure.grpcCode, details: failure.message };
}

export function httpStatusOfFailure(failure: ApiFailure): number {
  return httpStatusOf(failure.grpcCode);
}
