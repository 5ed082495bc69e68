// A connection's deadlines in one place: retransmission (RFC 6298), persist (RFC 9293 §3.8.6.1), keepalive
// (RFC 1122 §4.2.3.6), delayed ACK (RFC 1122 §4.2.3.2) and TIME-WAIT (2MSL). They are absolute times on the
// caller's clock: nothing here reads a clock or fires by itself. The connection fires what is due in transmit,
// and asks `next` for the one deadline pollAt reports.

import type { TcpConfig } from './tcp-config.js';

const NEVER = Number.POSITIVE_INFINITY;

/** Which deadlines matter, by the connection's phase. */
export const PHASE_HANDSHAKE = 0;
export const PHASE_SYNCHRONIZED = 1;
export const PHASE_TIME_WAIT = 2;

export class TcpTimers {
  rtoAt = NEVER;
  /** Tail loss probe (RFC 8985 §7.2), before rtoAt. */
  probeAt = NEVER;
  persistAt = NEVER;
  /** Probes sent into the current zero window: each doubles the next interval. */
  persistBackoff = 0;
  delayedAckAt = NEVER;
  timeWaitAt = NEVER;
  /** When the peer was last heard from: keepalive counts idleness from here. */
  lastReceiveAt: number;
  keepaliveProbes = 0;

  constructor(
    private readonly config: TcpConfig,
    now: number,
  ) {
    this.lastReceiveAt = now;
  }

  /** The earliest deadline in `phase`; `keepaliveIdle` when keepalive applies (synchronized, nothing in flight). */
  next(phase: number, keepaliveIdle: boolean): number {
    if (phase === PHASE_TIME_WAIT) return this.timeWaitAt;
    if (phase === PHASE_HANDSHAKE) return this.rtoAt;
    return Math.min(this.rtoAt, this.probeAt, this.persistAt, this.delayedAckAt, this.keepaliveAt(keepaliveIdle));
  }

  keepaliveAt(idle: boolean): number {
    const k = this.config.keepalive;
    if (k === null || !idle) return NEVER;
    return this.lastReceiveAt + k.idleMs + this.keepaliveProbes * k.intervalMs;
  }

  /** An acceptable segment arrived: the peer is alive. */
  heardFrom(now: number): void {
    this.lastReceiveAt = now;
    this.keepaliveProbes = 0;
  }

  armDelayedAck(now: number): void {
    if (this.delayedAckAt === NEVER) this.delayedAckAt = now + this.config.delayedAckMs;
  }

  /** Persist runs while `stalled` (a zero window holds data back with nothing in flight), backed off per probe. */
  updatePersist(stalled: boolean, now: number, rto: number): void {
    if (!stalled) {
      this.persistAt = NEVER;
      this.persistBackoff = 0;
    } else if (this.persistAt === NEVER) {
      this.persistAt = now + Math.min(rto * 2 ** this.persistBackoff, this.config.maxRtoMs);
    }
  }

  persistProbeSent(): void {
    this.persistBackoff++;
    this.persistAt = NEVER;
  }

  enterTimeWait(now: number): void {
    this.timeWaitAt = now + this.config.timeWaitMs;
    this.rtoAt = NEVER;
    this.probeAt = NEVER;
    this.persistAt = NEVER;
    this.delayedAckAt = NEVER;
  }

  stopAll(): void {
    this.rtoAt = NEVER;
    this.probeAt = NEVER;
    this.persistAt = NEVER;
    this.delayedAckAt = NEVER;
    this.timeWaitAt = NEVER;
  }
}
