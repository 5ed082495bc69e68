// NewReno window arithmetic (RFC 5681 slow start and congestion avoidance, RFC 6582 recovery bounds).

import type { CongestionControl } from './tcp-congestion.js';
import { initialWindow } from './tcp-initial-window.js';

export class NewRenoCongestion implements CongestionControl {
  cwnd: number;
  ssthresh = Number.POSITIVE_INFINITY;
  private ackedInAvoidance = 0;
  /** A timeout fired and no new data was acknowledged since. */
  private timedOut = false;

  constructor(private readonly mss: number) {
    this.cwnd = initialWindow(mss);
  }

  onAck(ackedBytes: number): void {
    this.timedOut = false;
    if (this.cwnd < this.ssthresh) {
      // Slow start counts bytes (RFC 3465), capped at ssthresh.
      this.cwnd = Math.min(this.cwnd + ackedBytes, Math.max(this.ssthresh, this.cwnd));
      return;
    }
    this.ackedInAvoidance += ackedBytes;
    if (this.ackedInAvoidance >= this.cwnd) {
      this.ackedInAvoidance -= this.cwnd;
      this.cwnd += this.mss;
    }
  }

  onCongestionEvent(flightBytes: number): void {
    this.timedOut = false;
    this.ssthresh = Math.max(flightBytes / 2, 2 * this.mss);
    this.cwnd = this.ssthresh;
    this.ackedInAvoidance = 0;
  }

  onRecoveryEnd(): void {
    this.cwnd = this.ssthresh;
  }

  onRetransmitTimeout(flightBytes: number): void {
    if (!this.timedOut) this.ssthresh = Math.max(flightBytes / 2, 2 * this.mss);
    this.timedOut = true;
    this.cwnd = this.mss;
    this.ackedInAvoidance = 0;
  }
}
