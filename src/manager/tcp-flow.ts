// One TCP flow: a CONNECT stream (RFC 9113 §8.5) joined to a socket dialed in the cluster. Bytes move with
// backpressure both ways (pipe pauses the source while the destination's buffer is full), each direction ends
// on its own (END_STREAM ↔ FIN), and a reset on either side resets the other.

import { constants as http2constants, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { formatIp } from '../netstack/wire/ip-address.js';
import type { Target } from '../tunnel/protocol.js';
import type { Logger } from '../log/logger.js';
import { admit, type Allowance } from './manager-limits.js';
import type { ClientSession } from './session-registry.js';
import { answerFailure } from './stream-answer.js';
import { DialError, type TcpDialer } from './tcp-dialer.js';
import type { TargetPolicy } from './target-policy.js';
import { resetOnAbort, resetSocket } from '../net/socket-reset.js';

export interface TcpFlowDeps {
  policy: TargetPolicy;
  dial: TcpDialer;
  log: Logger;
  /** TCP flows of all sessions together. */
  flows: Allowance;
}

export async function serveTcpFlow(
  stream: ServerHttp2Stream,
  session: ClientSession,
  target: Target,
  deps: TcpFlowDeps,
): Promise<void> {
  const verdict = deps.policy.check(target.host);
  if (!verdict.allowed) {
    answerFailure(stream, 'forbidden', verdict.message);
    return;
  }
  // Held from the dial on (a pending connect holds a socket too) until the stream closes.
  const admission = admit(session.allowances.tcpFlows, deps.flows);
  if (!admission.admitted) {
    answerFailure(stream, 'limit', admission.message);
    return;
  }
  stream.once('close', admission.release);
  let socket: Socket;
  try {
    socket = await deps.dial(formatIp(verdict.address), target.port);
  } catch (error) {
    if (!(error instanceof DialError)) throw error;
    deps.log.debug('tcp dial failed', { session: session.tag, target: `${target.host}:${target.port}`, reason: error.reason });
    answerFailure(stream, error.reason, error.message);
    return;
  }
  if (stream.closed || stream.destroyed) {
    // The client gave up while we dialed.
    socket.destroy();
    return;
  }
  stream.respond({ ':status': 200 });
  joinStreamAndSocket(stream, socket, session);
}

function joinStreamAndSocket(stream: ServerHttp2Stream, socket: Socket, session: ClientSession): void {
  let removeEndHook: () => void = () => undefined;
  const aborted = resetOnAbort(stream, socket);
  stream.pipe(socket);
  socket.pipe(stream);
  socket.on('error', () => {
    // RFC 9113 §8.5: a TCP error on the proxy's side is reported as CONNECT_ERROR.
    if (!stream.closed) stream.close(http2constants.NGHTTP2_CONNECT_ERROR);
  });
  stream.on('error', () => socket.destroy());
  stream.on('close', () => {
    removeEndHook();
    // After END_STREAM both ways the socket has sent and received FIN too and closes by itself.
    const cleanEnd = !aborted() && stream.readableEnded && stream.writableEnded;
    if (!cleanEnd) resetSocket(socket);
  });
  // Last, so that a session that already ended closes the stream with every handler in place.
  removeEndHook = session.onEnd(() => stream.close(http2constants.NGHTTP2_CANCEL));
}
