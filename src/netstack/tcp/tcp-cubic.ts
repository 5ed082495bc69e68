// CUBIC (RFC 9438): window growth as a cubic function of the time since the last congestion event, with
// the Reno-friendly region and fast convergence. Slow start is the same as NewReno's.

import type { CongestionControl } from './tcp-congestion.js';
import { initialWindow } from './tcp-initial-window.js';

const C = 0.4;
const BETA = 0.7;
const ALPHA_RENO = (3 * (1 - BETA)) / (1 + BETA);

export class CubicCongestion implements CongestionControl {
  cwnd: number;
  ssthresh = Number.POSITIVE_INFINITY;
  /** Window (in segments) just before the last reduction. */
  private wMax = 0;
  private k = 0;
  private epochStart = -1;
  /** Reno-friendly estimate, in bytes. */
  private wEst = 0;
  /** A timeout fired and no new data was acknowledged since. */
  private timedOut = false;

  constructor(private readonly mss: number) {
    this.cwnd = initialWindow(mss);
  }

  onAck(ackedBytes: number, now: number): void {
    this.timedOut = false;
    if (this.cwnd < this.ssthresh) {
      this.cwnd = Math.min(this.cwnd + ackedBytes, Math.max(this.ssthresh, this.cwnd));
      return;
    }
    const segments = this.cwnd / this.mss;
    if (this.epochStart < 0) {
      this.epochStart = now;
      this.wEst = this.cwnd;
      if (this.wMax < segments) {
        this.wMax = segments;
        this.k = 0;
      } else {
        this.k = Math.cbrt((this.wMax - segments) / C);
      }
    }
    const t = (now - this.epochStart) / 1000;
    const target = Math.min(Math.max(this.wMax + C * (t - this.k) ** 3, segments), 1.5 * segments) * this.mss;
    this.wEst += (ALPHA_RENO * this.mss * ackedBytes) / this.cwnd;
    if (target < this.wEst) {
      this.cwnd = this.wEst;
    } else {
      this.cwnd += ((target - this.cwnd) * ackedBytes) / this.cwnd;
    }
  }

  onCongestionEvent(flightBytes: number): void {
    this.timedOut = false;
    this.reduce(flightBytes);
    this.cwnd = this.ssthresh;
  }

  onRecoveryEnd(): void {
    this.cwnd = this.ssthresh;
  }

  onRetransmitTimeout(flightBytes: number): void {
    // A repeat keeps ssthresh and Wmax: cwnd is already one segment, so neither would mean anything.
    if (!this.timedOut) this.reduce(flightBytes);
    this.timedOut = true;
    this.cwnd = this.mss;
  }

  private reduce(flightBytes: number): void {
    const segments = this.cwnd / this.mss;
    // Fast convergence: release bandwidth sooner when the window shrank since the previous event.
    this.wMax = segments < this.wMax ? (segments * (1 + BETA)) / 2 : segments;
    this.ssthresh = Math.max(Math.min(flightBytes, this.cwnd) * BETA, 2 * this.mss);
    this.epochStart = -1;
  }
}
