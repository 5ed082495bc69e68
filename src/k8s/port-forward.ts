// A port-forward to one port of a pod through the Kubernetes API server, as one Duplex stream: the API server's
// pods/portforward subresource over WebSocket (subprotocol v4.channel.k8s.io, as kubectl and client-node's
// PortForward speak it). Written on `ws` directly rather than client-node's PortForward because the tunnel needs
// what that class lacks: backpressure both ways, the pod's error channel as an error, and the socket's close as
// the stream's end.

import { Duplex } from 'node:stream';
import { ApiException, type KubeConfig } from '@kubernetes/client-node';
import WebSocket from 'ws';
import { describeApiError } from './kube-client.js';

export interface PortForwardTarget {
  namespace: string;
  pod: string;
  port: number;
}

export class PortForwardError extends Error {
  override readonly name = 'PortForwardError';
}

const PROTOCOL = 'v4.channel.k8s.io';
// With one port: channel 0 carries the data, channel 1 the kubelet's error text.
const DATA_CHANNEL = 0;
const ERROR_CHANNEL = 1;
/** Each channel's first bytes are the port number (uint16, little-endian), before any data. */
const PORT_PREFIX_BYTES = 2;
const MAX_ERROR_BODY = 4096;

const describeTarget = (t: PortForwardTarget): string => `port ${t.port} of pod ${t.namespace}/${t.pod}`;

/** The WebSocket URL of the pod's portforward subresource on the kubeconfig's current cluster. */
export function portForwardUrl(config: KubeConfig, target: PortForwardTarget): string {
  const server = config.getCurrentCluster()?.server;
  if (server === undefined) throw new PortForwardError('the kubeconfig has no current cluster');
  const base = server.replace(/^http/, 'ws').replace(/\/+$/, '');
  const path = `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.pod)}/portforward`;
  return `${base}${path}?ports=${target.port}`;
}

/**
 * Opens the port-forward; resolves once the API server accepted the upgrade (the kubelet dials the pod's port
 * then: a refused port arrives later as an 'error' on the stream). Rejects with PortForwardError (401, 403, 404,
 * an unreachable server, or no answer within timeoutMs).
 */
export async function openPortForward(
  config: KubeConfig,
  target: PortForwardTarget,
  options: { timeoutMs?: number } = {},
): Promise<PortForwardStream> {
  const url = portForwardUrl(config, target);
  const what = `port-forward to ${describeTarget(target)}`;
  const requestOptions: WebSocket.ClientOptions = {};
  await config.applyToHTTPSOptions(requestOptions);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const socket = new WebSocket(url, [PROTOCOL], { ...requestOptions, handshakeTimeout: timeoutMs });
  return new Promise<PortForwardStream>((resolve, reject) => {
    const fail = (message: string): void => {
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.terminate();
      reject(new PortForwardError(message));
    };
    socket.once('open', () => {
      socket.removeAllListeners();
      if (socket.protocol !== PROTOCOL) {
        fail(`${what}: the API server chose subprotocol "${socket.protocol}", not ${PROTOCOL}`);
        return;
      }
      resolve(new PortForwardStream(socket, target));
    });
    socket.once('unexpected-response', (_request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (body.length < MAX_ERROR_BODY) body += chunk;
      });
      response.on('error', () => undefined);
      response.on('end', () => {
        const status = response.statusCode ?? 0;
        fail(describeApiError(new ApiException(status, `HTTP ${status}`, body, {}), what, config));
      });
    });
    socket.once('error', (error: Error) => fail(describeApiError(error, what, config)));
  });
}

/**
 * The pod's port as a stream. end() closes the WebSocket (port-forward has no half-close before subprotocol v5);
 * 'end' means the API server or the kubelet closed it; an error text from the kubelet destroys the stream
 * with that text.
 */
export class PortForwardStream extends Duplex {
  /** Port-number bytes still to strip, per channel. */
  private readonly prefix = [PORT_PREFIX_BYTES, PORT_PREFIX_BYTES];
  private readonly header = Buffer.of(DATA_CHANNEL);

  constructor(
    private readonly socket: WebSocket,
    readonly target: PortForwardTarget,
  ) {
    super({ allowHalfOpen: false });
    // ws hands text frames over as Buffers too (binaryType 'nodebuffer'); the kubelet sends only binary ones.
    socket.on('message', (data: Buffer) => this.receive(data));
    socket.on('close', (code: number, reason: Buffer) => {
      if (this.destroyed) return;
      // 1000 and 1005 (no status) are the usual ways the far end finishes; anything else is worth naming.
      if (code !== 1000 && code !== 1005) {
        this.destroy(new PortForwardError(`the port-forward to ${describeTarget(target)} closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`));
        return;
      }
      // Buffered data is still read out; then, without half-open, the stream finishes and destroys itself.
      this.push(null);
    });
    socket.on('error', (error: Error) => this.destroy(new PortForwardError(`the port-forward to ${describeTarget(target)} failed: ${error.message}`)));
  }

  private receive(frame: Buffer): void {
    if (frame.length === 0) return;
    const channel = frame[0]!;
    let payload = frame.subarray(1);
    if (channel !== DATA_CHANNEL && channel !== ERROR_CHANNEL) return;
    const skip = Math.min(this.prefix[channel]!, payload.length);
    this.prefix[channel]! -= skip;
    payload = payload.subarray(skip);
    if (payload.length === 0) return;
    if (channel === ERROR_CHANNEL) {
      this.destroy(new PortForwardError(`the port-forward to ${describeTarget(this.target)} failed in the cluster: ${payload.toString('utf8').trim()}`));
      return;
    }
    if (!this.push(payload)) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    // One frame for what piled up while the previous one was in flight: the write completes once it reached the socket.
    const frame = Buffer.concat([this.header, ...chunks.map((c) => c.chunk)]);
    this.socket.send(frame, { binary: true }, (error) => callback(error));
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.close(1000);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.terminate();
    callback(error);
  }
}
