// The agent's two ways of moving a connection's bytes: dialing the app container on the pod's loopback, and
// splicing two byte streams both ways with backpressure, each direction ending on its own and a reset on either
// side resetting the other.

import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { resetSocket } from '../net/socket-reset.js';

/** Connects to the app on 127.0.0.1:port, then on ::1 when nothing listens on IPv4 (an app bound to ::1 only). */
export function connectApp(port: number): Promise<net.Socket> {
  const attempt = (host: string): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      // noDelay: a request relayed to the app goes out at once, not after a delayed ACK (Nagle: ~40 ms each).
      const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(socket);
      });
      socket.once('error', reject);
    });
  return attempt('127.0.0.1').catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ECONNREFUSED') throw error;
    return attempt('::1').catch(() => Promise.reject(error));
  });
}


/**
 * Joins an accepted connection and a stream (to the app or the manager). `pipe` pauses the reader while the
 * writer's buffer is full; a FIN is passed on as end(); an error or a reset on one side resets the other.
 */
export function splice(socket: net.Socket, other: Duplex): void {
  // The cluster client may have gone while the other side was being opened.
  if (socket.destroyed) {
    other.destroy();
    return;
  }
  let done = false;
  const abort = (): void => {
    if (done) return;
    done = true;
    resetSocket(socket);
    other.destroy();
  };
  socket.pipe(other);
  // A client HTTP/2 stream reset by the peer emits 'end' first and 'aborted' just after (within the same turn):
  // the FIN waits one turn so that a reset becomes an RST, not a FIN. (A socket never emits 'aborted'.)
  other.pipe(socket, { end: false });
  other.on('end', () => setImmediate(() => done || socket.end()));
  other.on('aborted', abort);
  socket.on('error', abort);
  other.on('error', abort);
  // A side closed before both of its directions ended was reset (an HTTP/2 RST_STREAM, a socket's RST).
  other.on('close', () => {
    if (!other.readableEnded || !other.writableFinished) abort();
  });
  socket.on('close', () => {
    if (!socket.readableEnded) abort();
  });
}
