// Tail loss probe (RFC 8985 §7): when the last segments of a flight or all their ACKs are lost, no duplicate
// ACKs come back and only the retransmission timer (at least 200 ms) would notice. A probe timeout of about
// two round trips instead sends one segment, new data if the peer's window allows or else the last segment
// sent, whose ACK carries the SACK information that starts fast recovery, or simply acknowledges the tail.

import { SEND_PROBE, type SendPlan } from './tcp-send-plan.js';
import { seqAdd, seqDiff, seqGt, seqLt, seqMax } from './tcp-seq.js';
import type { TcpTimers } from './tcp-timers.js';

const NEVER = Number.POSITIVE_INFINITY;
/** RFC 8985 §7.2 WCDelAckT: with one segment in flight the peer may delay its ACK this long. */
const WORST_CASE_DELAYED_ACK_MS = 200;
/** Timer granularity allowance of the probe timeout (Linux's TCP_TIMEOUT_MIN, 2 ms). */
const PROBE_SLACK_MS = 2;

export class LossProbe {
  /** The probe timer fired: planSend sends the probe next. */
  pending = false;
  /** A probe went out and no ACK has advanced SND.UNA since: at most one probe per tail (RFC 8985 §7.2). */
  private outstanding = false;

  constructor(private readonly timers: TcpTimers) {}

  /** RFC 8985 §7.2: (re)schedules the probe after new data went out or an ACK advanced SND.UNA; `flight` is
   *  what is outstanding. No probe during loss recovery, without an RTT sample, or after the RTO. */
  arm(now: number, flight: number, mss: number, srtt: number, recovering: boolean): void {
    const timers = this.timers;
    if (recovering || flight === 0 || srtt === 0 || this.outstanding) {
      timers.probeAt = NEVER;
      return;
    }
    const at = now + 2 * srtt + (flight <= mss ? WORST_CASE_DELAYED_ACK_MS : PROBE_SLACK_MS);
    timers.probeAt = at < timers.rtoAt ? at : NEVER;
  }

  /** The probe timer fired. */
  fire(): void {
    this.timers.probeAt = NEVER;
    this.pending = true;
  }

  /** An ACK advanced SND.UNA: a later tail may be probed again. */
  acked(): void {
    this.outstanding = false;
  }

  /** The probe went out: the retransmission timer runs from it (RFC 8985 §7.3). */
  sent(now: number, rto: number): void {
    this.pending = false;
    this.outstanding = true;
    this.timers.rtoAt = now + rto;
  }

  /** A retransmission timeout or the end of the flight: nothing to probe. */
  reset(): void {
    this.pending = false;
    this.outstanding = false;
    this.timers.probeAt = NEVER;
  }

  /** The probe segment: new data at SND.MAX when the peer's window takes it, else the last `limit` bytes sent
   *  (with the FIN when it was sent). */
  plan(plan: SendPlan, una: number, sndMax: number, dataEnd: number, wndEnd: number, limit: number, finSent: boolean): boolean {
    plan.kind = SEND_PROBE;
    if (seqLt(sndMax, dataEnd) && seqGt(wndEnd, sndMax)) {
      plan.seq = sndMax;
      plan.len = Math.min(limit, seqDiff(dataEnd, sndMax), seqDiff(wndEnd, sndMax));
      plan.fin = false;
      return true;
    }
    const end = finSent ? dataEnd : sndMax;
    plan.seq = seqMax(una, seqAdd(end, -limit));
    plan.len = seqDiff(end, plan.seq);
    plan.fin = finSent;
    return plan.len > 0 || plan.fin;
  }
}
