// The connections to the traffic manager that carry flows beside the session's main one. Over a lossy link every
// flow on one TCP connection waits behind each of its retransmissions (TCP-over-TCP head-of-line blocking) and
// shares its one congestion window; spread over a few connections (KubeVPN keeps four), a loss stalls only the
// flows of its own connection. Each member connects, and reconnects with backoff, on its own; one that is down is
// skipped, and flows go on over the others.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log/logger.js';
import type { TunnelClient, TunnelError } from '../tunnel/tunnel-client.js';

const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 8_000;

export class TunnelPool {
  private readonly members: (TunnelClient | null)[];
  private readonly closing = new AbortController();

  /** Starts `size` members, each from `connect()`. */
  constructor(
    size: number,
    private readonly connect: () => Promise<TunnelClient>,
    private readonly log: Logger,
  ) {
    this.members = Array.from({ length: size }, () => null);
    for (let index = 0; index < size; index++) void this.keep(index);
  }

  /** Members connected now. */
  get connected(): number {
    return this.members.filter((member) => member !== null).length;
  }

  /** Of `main` (null while it is down) and the connected members, the one with the fewest open streams; null if none. */
  pick(main: TunnelClient | null): TunnelClient | null {
    let best = main;
    for (const member of this.members) {
      if (member !== null && (best === null || member.openStreams < best.openStreams)) best = member;
    }
    return best;
  }

  /** Closes every member (their flows fail) and stops reconnecting. */
  close(): void {
    this.closing.abort();
    for (const member of this.members) member?.close();
    this.members.fill(null);
  }

  private async keep(index: number): Promise<void> {
    const { signal } = this.closing;
    let backoff = RECONNECT_FIRST_MS;
    while (!signal.aborted) {
      let wait = RECONNECT_FIRST_MS;
      try {
        const tunnel = await this.connect();
        if (signal.aborted) {
          tunnel.close();
          return;
        }
        this.members[index] = tunnel;
        backoff = RECONNECT_FIRST_MS;
        const error = await new Promise<TunnelError>((resolve) => tunnel.once('disconnected', resolve));
        this.members[index] = null;
        if (!signal.aborted) this.log.warn('a flow connection to the traffic manager was lost; reconnecting', { index, error: error.message });
      } catch (error) {
        if (!signal.aborted) this.log.info('a flow connection to the traffic manager failed; retrying', { index, error: (error as Error).message, retryMs: backoff });
        wait = backoff;
        backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
      }
      await sleep(wait, undefined, { signal }).catch(() => undefined);
    }
  }
}
