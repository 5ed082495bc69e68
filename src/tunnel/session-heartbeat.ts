// Keeps watch on an HTTP/2 connection to the traffic manager with PINGs, one at a time, and destroys it when it has
// gone silent. On a loaded, lossy link a PING's answer can wait seconds behind the data queued ahead of it
// (retransmission timeouts back off), and giving up then would reset every flow of a working connection: the
// connection counts as dead only when nothing at all has arrived for timeoutMs since the PING went out.

import type { Http2Session } from 'node:http2';
import type { Socket } from 'node:net';

export interface HeartbeatTiming {
  intervalMs: number;
  timeoutMs: number;
}

export const DEFAULT_HEARTBEAT: HeartbeatTiming = { intervalMs: 1_000, timeoutMs: 3_000 };

/** Starts the heartbeat; it stops by itself when the session closes and never keeps the process alive. */
export function startHeartbeat(session: Http2Session, { intervalMs, timeoutMs }: HeartbeatTiming): void {
  let waiting = false;
  let deadline: NodeJS.Timeout | undefined;
  const bytesRead = (): number => (session.socket as Socket | undefined)?.bytesRead ?? 0;
  const giveUp = (why: string): void => {
    session.destroy(new Error(`heartbeat failed: ${why}`));
  };
  const timer = setInterval(() => {
    if (waiting) return;
    waiting = true;
    let readBefore = bytesRead();
    const check = (): void => {
      const read = bytesRead();
      if (read === readBefore) {
        giveUp(`The traffic manager did not answer a ping within ${timeoutMs} ms, and sent nothing else either.`);
        return;
      }
      readBefore = read;
      deadline = setTimeout(check, timeoutMs).unref();
    };
    deadline = setTimeout(check, timeoutMs).unref();
    try {
      session.ping((error) => {
        clearTimeout(deadline);
        if (error) giveUp(`Ping failed: ${error.message}.`);
        else waiting = false;
      });
    } catch (error) {
      clearTimeout(deadline);
      giveUp(`Ping failed: ${(error as Error).message}.`);
    }
  }, intervalMs);
  timer.unref();
  session.once('close', () => {
    clearInterval(timer);
    clearTimeout(deadline);
  });
}
