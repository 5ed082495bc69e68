// The first step of every HTTP/2 connection to the traffic manager (clients and agents): wait for the manager's
// SETTINGS, so that a manager that is not there fails the connect, not the first stream.

import type { ClientHttp2Session } from 'node:http2';

/**
 * Resolves once the peer's SETTINGS arrived; rejects (and destroys the
 * session) on an error, a close, or no SETTINGS within `timeoutMs`.
 */
export function awaitPeerSettings(session: ClientHttp2Session, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error): void => {
      clearTimeout(timer);
      session.off('error', fail);
      session.off('close', closed);
      session.destroy();
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    // A forwarder that could not reach the manager closes the socket without a word.
    const closed = (): void => fail(new Error('the connection closed before the manager answered'));
    session.once('error', fail);
    session.once('close', closed);
    session.once('remoteSettings', () => {
      clearTimeout(timer);
      session.off('error', fail);
      session.off('close', closed);
      resolve();
    });
  });
}
