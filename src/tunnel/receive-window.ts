// The receive window of a tunnel connection, sized to the path's bandwidth-delay product as TCP's receive-buffer
// autotuning does, and as gRPC's BDP estimation does for HTTP/2. The connection window bounds what the sender
// may have in flight across every stream; a fixed 32 MiB let one bulk flow queue a quarter of a second or more of
// data ahead of an interactive request (measured: p99 250 ms under load at 20 ms RTT, against 98 ms with 4 MiB),
// while a fixed small one caps throughput on long paths. So the receiver measures: it sends a PING, counts the
// bytes that arrive before its ACK, and doubles the window when they show the window is what limits the transfer,
// over a round trip no longer than the path's own plus a quarter: a queue building up lengthens the round trip, so
// it stops the growth. nghttp2 returns the window in steps of half of it, so a transfer that the window limits
// brings about half the window per round trip, not all of it (measured at 80 ms RTT and 0.5 % loss: 1.05 MB per
// round trip under 2 MiB, 1.6 MB under 3.2 MiB); the rule before this one waited for two thirds of the window and
// a new bandwidth high, and never grew there (uploads through the port-forward stayed at 62 Mbit/s against a
// direct flow's 133). Node's HTTP/2 gives the connection window back as data arrives, not as it is read, so this
// window bounds data in flight only; each stream's own window bounds what waits unread.

import type { Http2Session } from 'node:http2';
import { CONNECTION_WINDOW_BYTES } from './protocol.js';

/**
 * Where a connection's window starts, before the first growth. A larger start queued more ahead of interactive
 * requests on the sandbox's own link (4 MiB against 2: p99 under load through the port-forward 131–189 ms against
 * 106–121, three runs each), where the round trip never calls for more.
 */
export const INITIAL_RECEIVE_WINDOW = 2 * 1024 * 1024;
/** The most it grows to. */
export const MAX_RECEIVE_WINDOW = CONNECTION_WINDOW_BYTES;
/**
 * A round trip longer than the shortest one seen times this, plus the slack, carries a queue: the window does not
 * grow on it. The slack covers event-loop jitter on short paths.
 */
const QUEUE_RTT_FACTOR = 1.25;
const QUEUE_RTT_SLACK_MS = 1;
/** A round trip that brought less than this was not carrying a transfer; sampling pauses until data flows again. */
const BUSY_BYTES = 16 * 1024;
/** How often a connection checks whether data flows, while it does. */
export const BUSY_POLL_MS = 50;
/** The longest pause between checks while it stays idle: a laptop's daemons should sleep, not wake 20 times a second. */
export const IDLE_POLL_MAX_MS = 1000;

/** When to check next: each idle check doubles the pause up to the maximum; data, or a new stream, shortens it again. */
export class PollBackoff {
  ms = BUSY_POLL_MS;

  next(busy: boolean): number {
    this.ms = busy ? BUSY_POLL_MS : Math.min(IDLE_POLL_MAX_MS, this.ms * 2);
    return this.ms;
  }

  /** Whether it was backing off; the next check is at the busy pace either way. */
  reset(): boolean {
    const wasIdle = this.ms > BUSY_POLL_MS;
    this.ms = BUSY_POLL_MS;
    return wasIdle;
  }
}

/** The window's arithmetic, without I/O: samples in, new window sizes out. */
export class BdpWindow {
  /** The shortest round trip seen: the path's own, without a queue. */
  private minRttMs = Infinity;
  private lastShort = true;
  private lastBandwidth = 0;

  constructor(
    public window: number,
    readonly max: number,
  ) {}

  /**
   * `bytes` arrived during one PING round trip of `rttMs`. Returns the window to use from now on when it should
   * grow, else null.
   */
  sample(bytes: number, rttMs: number): number | null {
    if (!(rttMs > 0)) return null;
    this.minRttMs = Math.min(this.minRttMs, rttMs);
    if (bytes <= 0) return null;
    const bandwidth = bytes / rttMs;
    const short = rttMs <= this.minRttMs * QUEUE_RTT_FACTOR + QUEUE_RTT_SLACK_MS;
    // A short round trip right after a long one at over three times its bandwidth is a busy receiver catching up
    // on what waited in its socket, not the path: growing on such reads let a CPU-bound port-forward at 20 ms RTT
    // reach 16 MiB. (Over a lossy path a clean round trip after a stalled one shows about twice the bandwidth.)
    const catchUp = !this.lastShort && bandwidth > 3 * this.lastBandwidth;
    this.lastShort = short;
    this.lastBandwidth = bandwidth;
    if (bytes * 3 < this.window || !short || catchUp || this.window >= this.max) return null;
    this.window = Math.min(this.max, 2 * this.window);
    return this.window;
  }
}

export interface ReceiveWindowTuner {
  readonly bdp: BdpWindow;
  /** A stream opened on the connection: a transfer may start, so the next check comes soon. */
  streamOpened(): void;
}

/**
 * Sets `session`'s connection window to the initial size and keeps it sized while the session lives. A server
 * session's new streams reset the idle backoff by themselves; a client calls streamOpened() for the streams it opens.
 */
export function autotuneReceiveWindow(session: Http2Session, initial = INITIAL_RECEIVE_WINDOW, max = MAX_RECEIVE_WINDOW): ReceiveWindowTuner {
  const bdp = new BdpWindow(initial, max);
  session.setLocalWindowSize(initial);
  const received = (): number => session.socket?.bytesRead ?? 0;
  let pinging = false;
  let seen = received();
  const probe = (): void => {
    if (pinging || session.closed || session.destroyed) return;
    pinging = true;
    const before = received();
    const sent = session.ping((error, rttMs) => {
      pinging = false;
      if (error !== null || session.closed || session.destroyed) return;
      const bytes = received() - before;
      seen = received();
      const grown = bdp.sample(bytes, rttMs);
      if (grown !== null) session.setLocalWindowSize(grown);
      // Back to back while a transfer runs, so that the window keeps up with it from the first round trips.
      if (bytes >= BUSY_BYTES && bdp.window < bdp.max) probe();
    });
    if (!sent) pinging = false;
  };
  // The path's own round trip, measured before a transfer queues data ahead of the PING's ACK.
  if (session.connecting) session.once('connect', probe);
  else probe();
  const backoff = new PollBackoff();
  let timer: NodeJS.Timeout | null = null;
  const schedule = (ms: number): void => {
    if (timer !== null) clearTimeout(timer);
    // Once the window is at its maximum there is nothing left to learn.
    timer = session.closed || session.destroyed || bdp.window >= bdp.max ? null : setTimeout(poll, ms).unref();
  };
  const poll = (): void => {
    timer = null;
    const now = received();
    const busy = now - seen >= BUSY_BYTES;
    seen = now;
    if (busy) probe();
    schedule(backoff.next(busy));
  };
  const streamOpened = (): void => {
    if (backoff.reset()) schedule(BUSY_POLL_MS);
  };
  schedule(BUSY_POLL_MS);
  session.on('stream', streamOpened);
  session.once('close', () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  });
  return { bdp, streamOpened };
}
