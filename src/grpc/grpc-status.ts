/**
 * The header blocks of a gRPC reply (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
 * response headers, trailers carrying grpc-status and grpc-message, and the "trailers-only" reply
 * (one HEADERS frame with the status, ending the stream) for a call answered without a message.
 * Unary and streaming calls write the same blocks, built here once.
 */
import { encodeWithoutIndexing, type HeaderField } from '../http/hpack.js';
import type { Http2ServerStream } from '../http/http2-connection.js';

/** Header blocks of every successful call, HPACK-encoded once. */
export const RESPONSE_HEADERS = encodeWithoutIndexing([[':status', '200'], ['content-type', 'application/grpc'], ['grpc-accept-encoding', 'identity']]);
export const OK_TRAILERS = encodeWithoutIndexing([['grpc-status', '0']]);

/** grpc-message is percent-encoded: bytes outside printable ASCII, and '%' itself. */
export function percentEncodeGrpcMessage(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** A status with no response message: one HEADERS frame that ends the stream. */
export function respondTrailersOnly(stream: Http2ServerStream, code: number, message: string): void {
  if (stream.localEnded) return;
  const fields: HeaderField[] = [
    [':status', '200'],
    ['content-type', 'application/grpc'],
    ['grpc-status', String(code)],
    ['grpc-message', percentEncodeGrpcMessage(message)],
  ];
  stream.respond(encodeWithoutIndexing(fields), true);
}

/** Trailers after response headers and messages: the status, ending the stream. */
export function statusTrailers(code: number, message: string): Buffer {
  if (code === 0) return OK_TRAILERS;
  return encodeWithoutIndexing([['grpc-status', String(code)], ['grpc-message', percentEncodeGrpcMessage(message)]]);
}
