// Tail loss probe (RFC 8985 §7): when the last segments of a flight or all their ACKs are lost, no duplicate
// ACKs come back and only the retransmission timer (at least 200 ms) would notice. A probe timeout of about
// two round trips instead resends the last segment sent, whose ACK carries the SACK information that starts
// fast recovery, or simply acknowledges the tail.
// RFC 8985 §7.3 prefers a new segment when one may be sent; this stack always resends the last one. A Linux
// receiver that has already acknowledged what it holds (the usual case when only the ACK was lost: it ACKs a
// bulk flight once, when its reader drains it) holds the ACK of one new in-order segment for its delayed-ACK
// timer, at least 40 ms, while a duplicate is acknowledged at once (with a D-SACK). Measured at MTU 1500 with
// 1 % loss each way: new-data probes spent 1.4 s of a 3 s transfer waiting for those ACKs.
// Unlike RFC 8985 (and like QUIC's probe timeout, RFC 9002 §6.2), the probe also runs during loss repair: a
// retransmission or its one ACK lost there left only the RTO (200 ms, doubling), which cost 1.2 s of the same
// transfer. In recovery the probe resends the segment at SND.UNA; a probe is never counted as a congestion
// signal, and the RTO still follows if it goes unanswered.

import { SEND_PROBE, type SendPlan } from './tcp-send-plan.js';
import { seqAdd, seqDiff, seqMax } from './tcp-seq.js';
import type { TcpTimers } from './tcp-timers.js';

const NEVER = Number.POSITIVE_INFINITY;
/** RFC 8985 §7.2 WCDelAckT: with one segment in flight the peer may delay its ACK this long. */
const WORST_CASE_DELAYED_ACK_MS = 200;
/** Timer granularity allowance of the probe timeout (Linux's TCP_TIMEOUT_MIN, 2 ms). */
const PROBE_SLACK_MS = 2;
const MAX_PROBES = 2;

export class LossProbe {
  /** The probe timer fired: planSend sends the probe next. */
  pending = false;
  /** Probes sent since an ACK last advanced SND.UNA. RFC 8985 §7.2 allows one; as QUIC does (RFC 9002
   *  §6.2.4), a second follows at twice the timeout, since a lost first probe otherwise costs the RTO. */
  private sentSinceAck = 0;

  constructor(private readonly timers: TcpTimers) {}

  /** RFC 8985 §7.2: (re)schedules the probe after a segment went out or an ACK advanced SND.UNA; `flight` is
   *  what is outstanding, `repairing` whether it starts with retransmitted data (fast recovery), whose ACK a
   *  receiver does not delay. No probe without an RTT sample. */
  arm(now: number, flight: number, mss: number, srtt: number, repairing: boolean): void {
    const timers = this.timers;
    if (flight === 0 || srtt === 0 || this.sentSinceAck >= MAX_PROBES) {
      timers.probeAt = NEVER;
      return;
    }
    const timeout = 2 * srtt + (flight <= mss && !repairing ? WORST_CASE_DELAYED_ACK_MS : PROBE_SLACK_MS);
    const at = now + timeout * 2 ** this.sentSinceAck;
    timers.probeAt = at < timers.rtoAt ? at : NEVER;
  }

  /** The probe timer fired. */
  fire(): void {
    this.timers.probeAt = NEVER;
    this.pending = true;
  }

  /** An ACK advanced SND.UNA: a later tail may be probed again. */
  acked(): void {
    this.sentSinceAck = 0;
  }

  /** The probe went out: the retransmission timer runs from it (RFC 8985 §7.3). */
  sent(now: number, rto: number): void {
    this.pending = false;
    this.sentSinceAck++;
    this.timers.rtoAt = now + rto;
  }

  /** A retransmission timeout or the end of the flight: nothing to probe. */
  reset(): void {
    this.pending = false;
    this.sentSinceAck = 0;
    this.timers.probeAt = NEVER;
  }

  /** The probe segment: the last `limit` bytes sent (with the FIN when it was sent). */
  plan(plan: SendPlan, una: number, sndMax: number, dataEnd: number, limit: number, finSent: boolean): boolean {
    plan.kind = SEND_PROBE;
    const end = finSent ? dataEnd : sndMax;
    plan.seq = seqMax(una, seqAdd(end, -limit));
    plan.len = seqDiff(end, plan.seq);
    plan.fin = finSent;
    return plan.len > 0 || plan.fin;
  }
}
