import { connect } from 'node:http2';
import type protobuf from 'protobufjs';
import { ErrorTable, KeyraftError, type ErrorCode } from '../platform/errors.js';
import { decode, encode } from '../proto/codec.js';

/**
 * Forwards a rare request that only the leader can carry out (membership changes) to the leader's
 * client URL as a gRPC unary call, and returns its answer: a client may call any member, as with
 * etcd. Hot paths never come here (proposals travel inside Raft as MsgProp).
 *
 * The leader's error comes back as grpc-status and etcd's message; it is mapped back to the same
 * KeyraftError by its message, so the client sees what the leader said.
 */
export function forwardUnary<T>(
  clientUrl: string, path: string, requestType: protobuf.Type, responseType: protobuf.Type, request: object, timeoutMs: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const session = connect(clientUrl);
    const fail = (err: Error) => {
      session.destroy();
      reject(err);
    };
    session.on('error', () => fail(new KeyraftError('Timeout')));
    const timer = setTimeout(() => fail(new KeyraftError('Timeout')), timeoutMs);
    const body = encode(requestType, request);
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => undefined);
    let status = '';
    let message = '';
    const readStatus = (headers: Record<string, unknown>) => {
      if (headers['grpc-status'] !== undefined) status = String(headers['grpc-status']);
      if (headers['grpc-message'] !== undefined) message = decodeURIComponent(String(headers['grpc-message']));
    };
    stream.on('response', readStatus);
    stream.on('trailers', readStatus);
    stream.on('close', () => {
      clearTimeout(timer);
      session.close();
      if (status !== '0') {
        const code = (Object.keys(ErrorTable) as ErrorCode[]).find((c) => ErrorTable[c].message === message);
        reject(code !== undefined ? new KeyraftError(code) : new KeyraftError('Internal', message || `forwarded call ended with grpc-status ${status || 'none'}`));
        return;
      }
      const all = Buffer.concat(chunks);
      resolve(decode<T>(responseType, all.subarray(5, 5 + all.readUInt32BE(1))));
    });
    stream.end(frame);
  });
}
