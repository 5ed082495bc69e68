// One UDP flow: a connect-udp stream (RFC 9298) joined to a UDP socket connected to the target. Datagrams
// travel as DATAGRAM capsules; when the stream's send buffer is full, datagrams from the target are dropped as a
// full socket buffer would. The flow closes after `idleMs` without a datagram either way.

import * as dgram from 'node:dgram';
import { constants as http2constants, type ServerHttp2Stream } from 'node:http2';
import { isIPv6 } from 'node:net';
import { formatIp } from '../netstack/wire/ip-address.js';
import { CapsuleDecoder, encodeDatagramCapsule } from '../tunnel/capsule.js';
import type { Target } from '../tunnel/protocol.js';
import type { Logger } from '../log/logger.js';
import { admit, type Allowance } from './manager-limits.js';
import type { ClientSession } from './session-registry.js';
import { answerFailure } from './stream-answer.js';
import type { TargetPolicy } from './target-policy.js';

export interface UdpFlowDeps {
  policy: TargetPolicy;
  idleMs: number;
  log: Logger;
  /** UDP flows of all sessions together. */
  flows: Allowance;
}

/** Queued capsule bytes beyond which datagrams from the target are dropped. */
const DROP_THRESHOLD_BYTES = 1024 * 1024;
/** Room for bursts of large datagrams (the kernel default is ~200 KiB). */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

export function serveUdpFlow(stream: ServerHttp2Stream, session: ClientSession, target: Target, deps: UdpFlowDeps): void {
  const verdict = deps.policy.check(target.host);
  if (!verdict.allowed) {
    answerFailure(stream, 'forbidden', verdict.message);
    return;
  }
  const admission = admit(session.allowances.udpFlows, deps.flows);
  if (!admission.admitted) {
    answerFailure(stream, 'limit', admission.message);
    return;
  }
  stream.once('close', admission.release);
  const host = formatIp(verdict.address);
  const socket = dgram.createSocket({
    type: isIPv6(host) ? 'udp6' : 'udp4',
    recvBufferSize: SOCKET_BUFFER_BYTES,
    sendBufferSize: SOCKET_BUFFER_BYTES,
  });
  let connected = false;
  let socketClosed = false;
  const closeSocket = (): void => {
    if (socketClosed) return;
    socketClosed = true;
    socket.close();
  };
  socket.on('error', (error: NodeJS.ErrnoException) => {
    if (!connected) {
      const why = error.code ?? error.message;
      answerFailure(stream, 'unreachable', `cannot send UDP to ${target.host} port ${target.port}: ${why}`);
      closeSocket();
    }
    // Once connected, errors are ICMP reports for single datagrams (port unreachable): UDP carries on.
  });
  socket.connect(target.port, host, () => {
    connected = true;
    if (stream.closed || stream.destroyed) {
      closeSocket();
      return;
    }
    stream.respond({ ':status': 200, 'capsule-protocol': '?1' });
    joinStreamAndSocket(stream, socket, session, deps, closeSocket);
  });
}

function joinStreamAndSocket(
  stream: ServerHttp2Stream,
  socket: dgram.Socket,
  session: ClientSession,
  deps: UdpFlowDeps,
  closeSocket: () => void,
): void {
  let lastActivity = Date.now();
  let removeEndHook: () => void = () => undefined;
  const decoder = new CapsuleDecoder((payload) => {
    lastActivity = Date.now();
    socket.send(payload);
  });
  socket.on('message', (payload) => {
    lastActivity = Date.now();
    if (stream.writableLength <= DROP_THRESHOLD_BYTES) stream.write(encodeDatagramCapsule(payload));
  });
  stream.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk);
    } catch (error) {
      deps.log.debug('bad capsule on a udp flow', { session: session.tag, error: (error as Error).message });
      stream.close(http2constants.NGHTTP2_PROTOCOL_ERROR);
    }
  });
  // One timer per flow, re-armed for the remaining time instead of on every datagram.
  let idleTimer: NodeJS.Timeout;
  const checkIdle = (): void => {
    const idleFor = Date.now() - lastActivity;
    if (idleFor >= deps.idleMs) stream.close(http2constants.NGHTTP2_NO_ERROR);
    else idleTimer = setTimeout(checkIdle, deps.idleMs - idleFor);
  };
  idleTimer = setTimeout(checkIdle, deps.idleMs);
  stream.on('end', () => stream.end());
  stream.on('error', () => undefined);
  stream.on('close', () => {
    clearTimeout(idleTimer);
    removeEndHook();
    closeSocket();
  });
  // Last, so that a session that already ended closes the stream with every handler in place.
  removeEndHook = session.onEnd(() => stream.close(http2constants.NGHTTP2_CANCEL));
}
