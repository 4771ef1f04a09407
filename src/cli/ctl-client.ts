/**
 * keyraftctl's gRPC client for the etcd v3 API: a generic @grpc/grpc-js client whose request and
 * response (de)serializers come from our protobufjs root (src/proto/codec.ts), so no generated
 * stubs or proto-loader are involved. It talks to keyraft and to a real etcd alike.
 *
 * Connection behaviour follows etcdctl 3.4 (clientv3): dialing does not block the command; a
 * call waits for a usable endpoint until the command deadline (--command-timeout), trying every
 * endpoint at once and keeping the first that connects. A call that cannot reach any endpoint
 * in time fails with "context deadline exceeded", etcdctl's text.
 */
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { assert } from '../platform/assert.js';
import { decode, encode, protoRoot } from '../proto/codec.js';
import { CtlError, ExitCode } from './ctl-exit.js';

/** etcdctl's receive limit (clientv3 MaxCallRecvMsgSize = math.MaxInt32): large ranges must fit. */
const RECEIVE_MESSAGE_BYTES_MAX = 2 ** 31 - 1;

/** gRPC code names as Go's grpc prints them in "rpc error: code = X desc = Y". */
const GO_CODE_NAMES = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists',
  'PermissionDenied', 'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange',
  'Unimplemented', 'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated',
];

export const DEADLINE_EXCEEDED_MESSAGE = 'context deadline exceeded';

/** etcdserverpb's services by short name; other packages' services by full name (v3lockpb.Lock). */
export type EtcdService = 'KV' | 'Cluster' | 'Maintenance' | 'Lease' | 'Auth' | 'Watch' | 'v3lockpb.Lock' | 'v3electionpb.Election';

interface MethodCodec {
  path: string;
  requestType: protobuf.Type;
  responseType: protobuf.Type;
}

const methodCodecs = new Map<string, MethodCodec>();

function methodCodec(service: EtcdService, method: string): MethodCodec {
  const key = `${service}/${method}`;
  let codec = methodCodecs.get(key);
  if (codec) return codec;
  const fullName = service.includes('.') ? service : `etcdserverpb.${service}`;
  const rpc = protoRoot.lookupService(fullName).methods[method];
  assert(rpc !== undefined, () => `${fullName} has no method ${method}`);
  rpc.resolve();
  codec = { path: `/${fullName}/${method}`, requestType: rpc.resolvedRequestType!, responseType: rpc.resolvedResponseType! };
  methodCodecs.set(key, codec);
  return codec;
}

/** Turns a --endpoints entry into a grpc target: "http://127.0.0.1:2379" -> "127.0.0.1:2379". */
export function endpointTarget(endpoint: string): string {
  if (endpoint.startsWith('https://') || endpoint.startsWith('unixs://')) {
    throw new CtlError(ExitCode.BadFeature, `TLS endpoints are not supported by keyraftctl yet: ${endpoint}`);
  }
  return endpoint.replace(/^http:\/\//, '').replace(/\/+$/, '');
}

/** The message etcdctl prints for a failed call (clientv3's toErr, then err.Error()). */
export function describeCallError(err: grpc.ServiceError): string {
  if (err.code === grpc.status.DEADLINE_EXCEEDED) return DEADLINE_EXCEEDED_MESSAGE;
  // etcd's own errors (rpctypes) print as their bare message; others as a Go grpc status.
  if (err.details.startsWith('etcdserver: ')) return err.details;
  return `rpc error: code = ${GO_CODE_NAMES[err.code] ?? String(err.code)} desc = ${err.details}`;
}

export interface CallOptions {
  /** Absolute deadline in ms since the epoch. */
  deadlineMs: number;
  /** The deadline bounds only finding an endpoint; the call runs as long as it takes (Lock, Campaign, Snapshot). */
  unbounded?: boolean;
  /** Cancels the call (a blocking call interrupted by SIGINT): it fails with clientv3's "context canceled". */
  signal?: AbortSignal;
}

/** What clientv3 reports for a call whose context was cancelled. */
export const CONTEXT_CANCELED_MESSAGE = 'context canceled';

export class EtcdClient {
  private readonly channels: grpc.Client[];
  private ready: Promise<grpc.Client> | undefined;

  constructor(readonly endpoints: readonly string[]) {
    if (endpoints.length === 0) throw new CtlError(ExitCode.BadArgs, 'no endpoints given');
    const options: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': RECEIVE_MESSAGE_BYTES_MAX,
      'grpc.max_send_message_length': RECEIVE_MESSAGE_BYTES_MAX,
    };
    this.channels = endpoints.map((ep) => new grpc.Client(endpointTarget(ep), grpc.credentials.createInsecure(), options));
  }

  /** One unary call; the response comes back in etcd-types.ts shape. */
  async call<Req extends object, Res>(service: EtcdService, method: string, request: Req, options: CallOptions): Promise<Res> {
    const codec = methodCodec(service, method);
    const channel = await this.readyChannel(options.deadlineMs);
    const signal = options.signal;
    if (signal?.aborted) throw new CtlError(ExitCode.Error, CONTEXT_CANCELED_MESSAGE);
    return new Promise<Res>((resolve, reject) => {
      const onAbort = (): void => call.cancel();
      const call = channel.makeUnaryRequest<Req, Res>(
        codec.path,
        (value) => Buffer.from(encode(codec.requestType, value)),
        (bytes) => decode<Res>(codec.responseType, bytes),
        request,
        new grpc.Metadata(),
        { deadline: options.unbounded === true ? Infinity : new Date(options.deadlineMs) },
        (err, response) => {
          signal?.removeEventListener('abort', onAbort);
          if (err && signal?.aborted) reject(new CtlError(ExitCode.Error, CONTEXT_CANCELED_MESSAGE));
          else if (err) reject(new CtlError(ExitCode.Error, describeCallError(err)));
          else resolve(response!);
        },
      );
      signal?.addEventListener('abort', onAbort);
    });
  }

  /**
   * A bidirectional Watch stream, with etcd's require-leader metadata as etcdctl's watch sets it
   * (clientv3.WithRequireLeader). Waits for a usable endpoint up to `connectDeadlineMs`.
   */
  async watchStream<Req extends object, Res>(connectDeadlineMs: number): Promise<grpc.ClientDuplexStream<Req, Res>> {
    const codec = methodCodec('Watch', 'Watch');
    const channel = await this.readyChannel(connectDeadlineMs);
    const metadata = new grpc.Metadata();
    metadata.set('hasleader', 'true');
    return channel.makeBidiStreamRequest<Req, Res>(
      codec.path,
      (value) => Buffer.from(encode(codec.requestType, value)),
      (bytes) => decode<Res>(codec.responseType, bytes),
      metadata,
      {},
    );
  }

  /** One bidirectional stream (LeaseKeepAlive); messages in etcd-types.ts shape. */
  async stream<Req extends object, Res>(service: EtcdService, method: string, options: CallOptions): Promise<grpc.ClientDuplexStream<Req, Res>> {
    const codec = methodCodec(service, method);
    const channel = await this.readyChannel(options.deadlineMs);
    return channel.makeBidiStreamRequest<Req, Res>(
      codec.path,
      (value) => Buffer.from(encode(codec.requestType, value)),
      (bytes) => decode<Res>(codec.responseType, bytes),
      new grpc.Metadata(),
      {},
    );
  }

  /**
   * One server-streaming call (Maintenance.Snapshot): the responses as they arrive. grpc-js reads
   * the next message only as the iteration asks for it, so a slow consumer slows the server down
   * (HTTP/2 flow control) instead of buffering the stream.
   */
  async *serverStream<Req extends object, Res>(service: EtcdService, method: string, request: Req, options: CallOptions): AsyncGenerator<Res> {
    // A stream cancelled through `signal` just ends (elect -l stopped by SIGINT).
    const signal = options.signal;
    const codec = methodCodec(service, method);
    const channel = await this.readyChannel(options.deadlineMs);
    const call = channel.makeServerStreamRequest<Req, Res>(
      codec.path,
      (value) => Buffer.from(encode(codec.requestType, value)),
      (bytes) => decode<Res>(codec.responseType, bytes),
      request,
      new grpc.Metadata(),
      // unbounded: the deadline only bounds finding an endpoint, the stream runs as long as it takes.
      { deadline: options.unbounded === true ? Infinity : new Date(options.deadlineMs) },
    );
    const onAbort = (): void => call.cancel();
    signal?.addEventListener('abort', onAbort);
    try {
      for await (const response of call as AsyncIterable<Res>) yield response;
    } catch (err) {
      if (signal?.aborted) return;
      if ((err as grpc.ServiceError).code !== undefined) throw new CtlError(ExitCode.Error, describeCallError(err as grpc.ServiceError));
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  close(): void {
    for (const channel of this.channels) channel.close();
  }

  /**
   * The first endpoint that connects before the deadline. A failed attempt is forgotten, so the
   * next call tries again (clientv3 likewise keeps redialing).
   */
  private readyChannel(deadlineMs: number): Promise<grpc.Client> {
    this.ready ??= new Promise<grpc.Client>((resolve, reject) => {
      let pending = this.channels.length;
      for (const channel of this.channels) {
        channel.waitForReady(new Date(deadlineMs), (error) => {
          if (!error) return resolve(channel);
          if (--pending === 0) {
            this.ready = undefined;
            reject(new CtlError(ExitCode.Error, DEADLINE_EXCEEDED_MESSAGE));
          }
        });
      }
    });
    return this.ready;
  }
}
