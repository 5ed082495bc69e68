// One intercepted connection, on the laptop: the manager announced it (InterceptDial); the user daemon, as the user,
// dials the local server on localhost and joins the two with a tunnel stream, or tells the manager the dial failed
// so that the cluster client gets a refusal instead of a hang.

import * as dgram from 'node:dgram';
import * as http2 from 'node:http2';
import type { ClientHttp2Stream } from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { InterceptDial } from '../gen/kubetun/manager/v1/manager_pb.js';
import type { Logger } from '../log/logger.js';
import type { WireErrorReason } from '../tunnel/protocol.js';
import type { UdpTunnel } from '../tunnel/udp-tunnel.js';
import { resetOnAbort, resetSocket } from '../net/socket-reset.js';

/** What a dial needs of the tunnel client (TunnelClient has them). */
export interface DialStreams {
  openInterceptStream(dialId: string): Promise<Duplex>;
  openInterceptUdp(dialId: string): Promise<UdpTunnel>;
  refuseDial(dialId: string, reason: WireErrorReason, message: string): Promise<void>;
}

/** The intercept a dial belongs to, as the laptop knows it. */
export interface DialTarget {
  localPort: number;
  /** `namespace/workload`, for messages. */
  workload: string;
}

/** How long a local connect may take before the dial counts as refused (loopback answers at once). */
const LOCAL_CONNECT_TIMEOUT_MS = 3_000;

/** Connects to localhost:port, IPv4 first, then IPv6 (a server may listen on either). */
export async function connectLocal(port: number): Promise<net.Socket> {
  try {
    return await connectTo('127.0.0.1', port);
  } catch {
    return connectTo('::1', port);
  }
}

function connectTo(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    // noDelay: each request and answer goes out at once, not after a delayed ACK (Nagle).
    const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true, timeout: LOCAL_CONNECT_TIMEOUT_MS });
    const fail = (error: Error): void => {
      socket.destroy();
      reject(error);
    };
    socket.once('error', fail);
    socket.once('timeout', () => fail(new Error('timed out')));
    socket.once('connect', () => {
      socket.off('error', fail);
      socket.setTimeout(0);
      resolve(socket);
    });
  });
}

/** Serves one announced dial to the end; never throws (a failure is logged and reported to the manager). */
export async function serveDial(streams: DialStreams, dial: InterceptDial, target: DialTarget, log: Logger): Promise<void> {
  try {
    if (dial.protocol === 'UDP') await serveUdp(streams, dial, target);
    else await serveTcp(streams, dial, target);
  } catch (error) {
    log.debug('intercepted connection failed', { workload: target.workload, source: dial.source, error: (error as Error).message });
  }
}

async function serveTcp(streams: DialStreams, dial: InterceptDial, target: DialTarget): Promise<void> {
  let socket: net.Socket;
  try {
    socket = await connectLocal(target.localPort);
  } catch {
    await streams.refuseDial(dial.id, 'refused', `nothing listens on localhost:${target.localPort} (intercept of ${target.workload})`);
    return;
  }
  let stream: Duplex;
  try {
    stream = await streams.openInterceptStream(dial.id);
  } catch (error) {
    socket.destroy();
    throw error;
  }
  join(socket, stream, dial.mirror);
}

/** Resets the tunnel stream: RFC 9113 §8.5 reports a TCP error on the proxy's side as CONNECT_ERROR. */
function resetStream(stream: Duplex): void {
  if (stream.destroyed) return;
  if ('rstCode' in stream) (stream as ClientHttp2Stream).close(http2.constants.NGHTTP2_CONNECT_ERROR);
  else stream.destroy(new Error('the local connection was reset'));
}

/**
 * Pipes both ways with backpressure; each side's end (FIN) is passed on while the other direction keeps flowing,
 * and a reset on either side resets the other (a clean close never does: the other side's writes may still be
 * queued). A mirror's answer is read and thrown away: the pod answers the cluster client.
 */
function join(socket: net.Socket, stream: Duplex, mirror: boolean): void {
  const aborted = resetOnAbort(stream, socket);
  stream.on('error', () => resetSocket(socket));
  stream.on('close', () => {
    if (aborted() || !stream.readableEnded || !stream.writableFinished) resetSocket(socket);
  });
  socket.on('error', () => resetStream(stream));
  socket.on('close', (hadError) => {
    if (hadError || !socket.readableEnded) resetStream(stream);
  });
  stream.pipe(socket);
  if (!mirror) {
    socket.pipe(stream);
    return;
  }
  socket.resume();
  socket.on('end', () => stream.end());
}

async function serveUdp(streams: DialStreams, dial: InterceptDial, target: DialTarget): Promise<void> {
  const tunnel = await streams.openInterceptUdp(dial.id);
  const socket = dgram.createSocket('udp4');
  socket.on('error', () => tunnel.close());
  socket.on('message', (payload) => {
    if (!dial.mirror) tunnel.send(payload);
  });
  tunnel.on('datagram', (payload) => socket.send(payload, target.localPort, '127.0.0.1'));
  tunnel.once('close', () => socket.close());
}
