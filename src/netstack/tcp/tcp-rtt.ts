// Round-trip time estimation and the retransmission timeout (RFC 6298), with exponential backoff.

const CLOCK_GRANULARITY_MS = 1;

export class RttEstimator {
  private srtt = 0;
  private rttvar = 0;
  private hasSample = false;
  private baseRto: number;
  private backoffs = 0;

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

  /** A timeout fired: double the timer (RFC 6298 §5.5). */
  backoff(): void {
    if (this.baseRto * 2 ** this.backoffs < this.maxRtoMs) this.backoffs++;
  }

  /** New data was acknowledged: the path works again. */
  resetBackoff(): void {
    this.backoffs = 0;
  }
}
