import { connect, type ClientHttp2Session } from 'node:http2';
import type protobuf from 'protobufjs';
import { ErrorTable, KeyraftError, type ErrorCode } from '../platform/errors.js';
import { decode, encode } from '../proto/codec.js';

/**
 * Forwards a request that only the leader can carry out (membership changes, lease keep-alives
 * and time-to-live) to the leader's client URL as a gRPC call with one request message, and
 * returns its one answer: a client may call any member, as with etcd. Proposals never come here
 * (they travel inside Raft as MsgProp). One HTTP/2 connection per leader URL is kept (unref'd, so
 * it never holds the process open) and shared by every forwarded call: keep-alives of a client
 * connected to a follower arrive about once a second per lease.
 *
 * The leader's error comes back as grpc-status and etcd's message; it is mapped back to the same
 * KeyraftError by its message, so the client sees what the leader said.
 */
export function forwardUnary<T>(
  clientUrl: string, path: string, requestType: protobuf.Type, responseType: protobuf.Type, request: object, timeoutMs: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const session = sessionTo(clientUrl);
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.close();
      reject(err);
    };
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
      if (settled) return;
      settled = true;
      // No status at all: the connection to the leader failed under the call.
      if (status === '') {
        reject(new KeyraftError('Timeout'));
        return;
      }
      if (status !== '0') {
        const code = (Object.keys(ErrorTable) as ErrorCode[]).find((c) => ErrorTable[c].message === message);
        reject(code !== undefined ? new KeyraftError(code) : new KeyraftError('Internal', message || `forwarded call ended with grpc-status ${status || 'none'}`));
        return;
      }
      const all = Buffer.concat(chunks);
      if (all.length < 5) {
        reject(new KeyraftError('Internal', 'forwarded call ended without a response message'));
        return;
      }
      resolve(decode<T>(responseType, all.subarray(5, 5 + all.readUInt32BE(1))));
    });
    stream.end(frame);
  });
}

const sessions = new Map<string, ClientHttp2Session>();

/** The shared connection to a leader's client URL, opened on first use and dropped when it fails or closes. */
function sessionTo(clientUrl: string): ClientHttp2Session {
  const existing = sessions.get(clientUrl);
  if (existing !== undefined && !existing.closed && !existing.destroyed) return existing;
  const session = connect(clientUrl);
  session.unref();
  sessions.set(clientUrl, session);
  const forget = () => {
    if (sessions.get(clientUrl) === session) sessions.delete(clientUrl);
  };
  session.on('error', () => { forget(); session.destroy(); });
  session.on('close', forget);
  session.on('goaway', () => { forget(); session.close(); });
  return session;
}
