// Resetting a proxied TCP connection: an RST, so that the peer sees "connection reset" as it would without the
// proxy, never a clean end that hides a failure.

import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** Resets `socket`, or only closes it once its FIN is sent: libuv cannot reset a socket after shutdown. */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

/**
 * Resets `socket` when the peer resets the HTTP/2 `stream`: 'aborted' comes before the 'end' Node emits on any
 * close, so the socket is reset before a pipe could turn that 'end' into a FIN. Returns whether that happened.
 */
export function resetOnAbort(stream: Duplex, socket: Socket): () => boolean {
  let aborted = false;
  stream.on('aborted', () => {
    aborted = true;
    resetSocket(socket);
  });
  return () => aborted;
}
