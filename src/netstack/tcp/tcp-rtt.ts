// Round-trip time estimation and the retransmission timeout (RFC 6298), with exponential backoff. One segment
// per round trip is timed on the local clock, which resolves microseconds: the timestamp echo (RFC 7323) counts
// whole milliseconds, and on a local link, where a round trip takes 0.05-0.3 ms, it reads 0 or 1. As Linux does,
// the echo gives a sample only when no timed segment does (Karn's rule ended the timing).

import { seqGe, seqGt } from './tcp-seq.js';

const CLOCK_GRANULARITY_MS = 1;

export class RttEstimator {
  private srtt = 0;
  private rttvar = 0;
  private hasSample = false;
  private baseRto: number;
  private backoffs = 0;
  private timing = false;
  private timedEnd = 0;
  private timedAt = 0;

  constructor(
    initialRtoMs: number,
    private readonly minRtoMs: number,
    private readonly maxRtoMs: number,
  ) {
    this.baseRto = Math.min(Math.max(initialRtoMs, minRtoMs), maxRtoMs);
  }

  /** The smoothed RTT in ms, or 0 before the first sample. */
  get smoothedRtt(): number {
    return this.srtt;
  }

  /** The timeout to arm now, backoff included. */
  get rto(): number {
    return Math.min(this.baseRto * 2 ** this.backoffs, this.maxRtoMs);
  }

  sample(rttMs: number): void {
    const r = Math.max(rttMs, 0);
    if (!this.hasSample) {
      this.srtt = r;
      this.rttvar = r / 2;
      this.hasSample = true;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    const rto = this.srtt + Math.max(CLOCK_GRANULARITY_MS, 4 * this.rttvar);
    this.baseRto = Math.min(Math.max(rto, this.minRtoMs), this.maxRtoMs);
    this.backoffs = 0;
  }

  /** A segment ending at `end` went out for the first time at `now`: it is timed unless one already is. */
  timeSegment(end: number, now: number): void {
    if (this.timing) return;
    this.timing = true;
    this.timedEnd = end;
    this.timedAt = now;
  }

  /** Karn's rule: a retransmission starting at `seq` below the timed segment's end makes its ACK ambiguous. */
  retransmitted(seq: number): void {
    if (this.timing && seqGt(this.timedEnd, seq)) this.timing = false;
  }

  cancelTiming(): void {
    this.timing = false;
  }

  /** An ACK up to `ack` arrived at `now`; `echoRtt` is its timestamp echo's RTT, or null. */
  acked(ack: number, echoRtt: number | null, now: number): void {
    if (this.timing && seqGe(ack, this.timedEnd)) {
      this.timing = false;
      this.sample(now - this.timedAt);
    } else if (!this.timing && echoRtt !== null && echoRtt >= 0) {
      this.sample(echoRtt);
    }
  }

  /** A timeout fired: double the timer (RFC 6298 §5.5). */
  backoff(): void {
    if (this.baseRto * 2 ** this.backoffs < this.maxRtoMs) this.backoffs++;
  }

  /** New data was acknowledged: the path works again. */
  resetBackoff(): void {
    this.backoffs = 0;
  }
}
