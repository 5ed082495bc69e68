// The send side of a connection (gVisor's sender): send sequence space and the peer's window, the send
// buffer, segmentation against the effective MSS, retransmission and RTT timing. Which segment goes next is
// decided by planSend, which changes nothing; `sent` applies a plan once the connection emitted it. Loss
// recovery (NewReno or SACK) and congestion control sit behind interfaces of their own.

import { TcpFlags, type TcpRepr } from '../wire/reprs.js';
import { createCongestionControl, type CongestionControl } from './tcp-congestion.js';
import type { TcpConfig } from './tcp-config.js';
import { createLossRecovery, type LossRecovery, type SendSequence } from './tcp-loss-recovery.js';
import { RttEstimator } from './tcp-rtt.js';
import { SendBuffer } from './tcp-send-buffer.js';
import { DEFAULT_PEER_MSS, SendMss } from './tcp-send-mss.js';
import { LossEpochs } from './tcp-loss-epoch.js';
import { LossProbe } from './tcp-loss-probe.js';
import { SEND_DATA, SEND_FAST_RETRANSMIT, SEND_HOLE, SEND_PROBE, type SendPlan } from './tcp-send-plan.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLt } from './tcp-seq.js';
import type { TcpTimers } from './tcp-timers.js';

const NEVER = Number.POSITIVE_INFINITY;
const DUP_ACK_THRESHOLD = 3;

/** What processAck found, as bits. */
export const ACK_DROP = 1;
export const ACK_FIN_ACKED = 2;
export const ACK_WRITABLE = 4;

export class TcpSender implements SendSequence {
  readonly iss: number;
  sndUna: number;
  /** The next byte to (re)send; differs from sndMax only while going back after a retransmission timeout. */
  sndNxt: number;
  /** The highest sequence number ever sent. */
  sndMax: number;
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private maxSndWnd = 0;
  sndShift = 0;
  private synAcked = false;
  /** Sequence number of the first byte in `buffer`. */
  private sndBufSeq: number;
  readonly buffer: SendBuffer;
  finQueued = false;
  finAcked = false;
  private writeBlocked = false;
  private readonly size: SendMss;
  readonly rtt: RttEstimator;
  private cc: CongestionControl;
  private readonly lossEpochs = new LossEpochs();
  private recovery: LossRecovery;
  readonly probe: LossProbe;
  /** Consecutive retransmission timeouts of the same data. */
  retries = 0;
  /** An acceptable ACK arrived since the last retransmission timeout. */
  private answeredSinceTimeout = false;
  /** Send one segment after a timeout even if the windows say no. */
  private forceSend = false;
  inRecovery = false;
  /** RFC 6582 `recover`: the highest sequence number sent when recovery started. */
  private recover: number;
  private dupAcks = 0;
  private fastRetransmitPending = false;
  /** When the last data segment went out (for the restart after idle). */
  private lastSendAt = 0;

  constructor(
    private readonly config: TcpConfig,
    private readonly timers: TcpTimers,
    iss: number,
  ) {
    this.iss = iss >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.sndBufSeq = seqAdd(this.iss, 1);
    this.recover = this.iss;
    this.buffer = new SendBuffer(config.sendBufferSize);
    this.size = new SendMss(config);
    this.rtt = new RttEstimator(config.initialRtoMs, config.minRtoMs, config.maxRtoMs);
    this.cc = createCongestionControl(config.congestion, DEFAULT_PEER_MSS);
    this.recovery = createLossRecovery(false, this);
    this.probe = new LossProbe(timers);
  }

  get mss(): number {
    return this.size.value;
  }

  /** The handshake settled the options: the peer's MSS, SACK and timestamps. */
  negotiated(peerMss: number | undefined, sack: boolean, timestamps: boolean): void {
    this.size.negotiated(peerMss, timestamps);
    this.cc = createCongestionControl(this.config.congestion, this.mss);
    this.recovery = createLossRecovery(sack, this);
  }

  pathMtuChanged(mss: number): void {
    const before = this.mss;
    this.size.pathMtuChanged(mss);
    if (this.mss >= before || this.sndMax === this.sndUna) return;
    // What is in flight went out in larger segments, which the smaller hop dropped: resend it now in the new
    // size (RFC 1191 §6.5, Linux's tcp_simple_retransmit). It is not congestion: the windows stay.
    this.sndNxt = this.sndUna;
    this.rtt.cancelTiming();
  }

  /** The peer's first window (on its SYN or SYN-ACK). */
  initWindow(window: number, seq: number, ack: number): void {
    this.sndWnd = window;
    this.maxSndWnd = window;
    this.sndWl1 = seq;
    this.sndWl2 = ack;
  }

  dataEnd(): number {
    return seqAdd(this.sndBufSeq, this.buffer.length);
  }

  write(data: Buffer): number {
    const n = this.buffer.write(data);
    if (n < data.length) this.writeBlocked = true;
    return n;
  }

  /** Whether `seq` starts data in flight (only our SYN while `opening`). */
  inFlight(seq: number, opening: boolean): boolean {
    return opening ? seq === this.iss : seqGe(seq, this.sndUna) && seqLt(seq, this.sndMax);
  }

  /** A zero window holds data back with nothing in flight: the persist timer's condition. */
  get zeroWindowStalled(): boolean {
    return this.sndMax === this.sndUna && seqLt(this.sndNxt, this.dataEnd()) && this.sndWnd === 0;
  }

  /** Our SYN went out (again). */
  synSent(now: number): void {
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    if (this.timers.rtoAt === NEVER || now >= this.timers.rtoAt) {
      this.timers.rtoAt = now + this.rtt.rto;
      if (this.retries === 0) this.rtt.timeSegment(this.sndNxt, now);
    }
  }

  synTimedOut(): void {
    this.retries++;
    this.rtt.backoff();
    this.rtt.cancelTiming();
  }

  /** The peer's SYN-ACK acknowledged our SYN; `echoRtt` is the timestamp echo's RTT or null. */
  synAckedBy(ack: number, echoRtt: number | null, now: number): void {
    this.sndUna = ack;
    this.synAcked = true;
    this.retries = 0;
    this.rtt.resetBackoff();
    this.timers.rtoAt = NEVER;
    this.rtt.acked(ack, echoRtt, now);
  }

  /** Chooses the next segment into `plan` without changing anything; false when nothing may go now.
   *  `sackBytes` is the SACK option space the segments of this transmit carry. */
  planSend(plan: SendPlan, sackBytes: number): boolean {
    const dataEnd = this.dataEnd();
    // A full segment's payload: the options this transmit puts on every segment take room from it.
    const segmentMss = Math.max(1, this.mss - sackBytes);
    const limit = this.size.segmentLimit(segmentMss);
    const recovery = this.recovery;

    if (this.fastRetransmitPending && this.planFirstUnacked(plan, SEND_FAST_RETRANSMIT, limit, dataEnd)) return true;
    if (this.probe.pending) {
      // In recovery the ACK awaited is the one for the oldest retransmission: resend it (see tcp-loss-probe.ts).
      if (this.inRecovery ? this.planFirstUnacked(plan, SEND_PROBE, limit, dataEnd) : this.probe.plan(plan, this.sndUna, this.sndMax, dataEnd, limit, this.finQueued && seqGt(this.sndMax, dataEnd))) {
        return true;
      }
    }

    const pipe = recovery.pipe();
    const cwnd = Math.floor(this.cc.cwnd + recovery.inflation);
    if (this.inRecovery && pipe < cwnd && recovery.planHole(plan, limit, cwnd - pipe, dataEnd, segmentMss)) return true;

    let seq = this.sndNxt;
    const resending = seqLt(seq, this.sndMax);
    if (resending) seq = recovery.skipSacked(seq);
    const avail = seqDiff(dataEnd, seq);
    if (avail > 0) {
      const wndRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), seq);
      let room = Math.min(wndRoom, cwnd - pipe);
      if (this.forceSend) room = Math.max(room, Math.min(avail, segmentMss));
      let len = Math.min(avail, limit, room);
      if (resending) len = Math.min(len, seqDiff(recovery.nextSackedAfter(seq, dataEnd), seq));
      if (len <= 0) return false;
      // Sender SWS avoidance (RFC 9293 §3.8.6.2.1) without Nagle: a partial segment only when it empties the
      // buffer, fills half the largest window seen, or nothing is in flight.
      const swsBlocked = len < avail && len < segmentMss && pipe > 0 && len < this.maxSndWnd / 2;
      if (swsBlocked && !this.forceSend) return false;
      plan.kind = SEND_DATA;
      plan.seq = seq;
      plan.len = len;
      plan.fin = this.finQueued && len === avail;
      return true;
    }
    if (this.finQueued && seq === dataEnd && !this.finAcked && !seqGt(this.sndNxt, dataEnd)) {
      plan.kind = SEND_DATA;
      plan.seq = seq;
      plan.len = 0;
      plan.fin = true;
      return true;
    }
    return false;
  }

  /** The segment at SND.UNA again, up to the next SACKed byte. */
  private planFirstUnacked(plan: SendPlan, kind: number, limit: number, dataEnd: number): boolean {
    const seq = this.sndUna;
    const sentEnd = seqLt(this.sndMax, dataEnd) ? this.sndMax : dataEnd;
    plan.kind = kind;
    plan.seq = seq;
    plan.len = Math.max(0, Math.min(limit, seqDiff(this.recovery.nextSackedAfter(seq, sentEnd), seq)));
    plan.fin = this.finQueued && seqGt(this.sndMax, dataEnd) && seqAdd(seq, plan.len) === dataEnd;
    return plan.len > 0 || plan.fin;
  }


  /** The payload of `plan`, valid until the next call. */
  payload(plan: SendPlan): Buffer {
    return this.buffer.peek(seqDiff(plan.seq, this.sndBufSeq), plan.len);
  }

  /** Applies an emitted plan. Returns whether it made progress (advanced SND.NXT or HighRxt, or cleared the
   *  pending fast retransmit): a plan that does not would be planned again forever. */
  sent(plan: SendPlan, now: number): boolean {
    const seq = plan.seq;
    const end = seqAdd(seq, plan.len + (plan.fin ? 1 : 0));
    const isRetransmission = seqLt(seq, this.sndMax);
    if (isRetransmission) this.rtt.retransmitted(seq);
    let progress: boolean;
    switch (plan.kind) {
      case SEND_FAST_RETRANSMIT:
        progress = this.fastRetransmitPending;
        this.fastRetransmitPending = false;
        this.recovery.onRetransmitted(SEND_FAST_RETRANSMIT, seq, end);
        break;
      case SEND_HOLE:
        progress = this.recovery.onRetransmitted(SEND_HOLE, seq, end);
        break;
      case SEND_PROBE:
        progress = this.probe.pending;
        this.probe.sent(now, this.rtt.rto);
        break;
      default:
        progress = seqGt(end, this.sndNxt);
        this.forceSend = false;
        this.sndNxt = end;
        if (seqGt(end, this.sndMax)) {
          if (!isRetransmission) this.rtt.timeSegment(end, now);
          this.sndMax = end;
        }
    }
    if (this.timers.rtoAt === NEVER) this.timers.rtoAt = now + this.rtt.rto;
    this.armProbe(now);
    this.lastSendAt = now;
    return progress;
  }

  /** Before sending new data: after more than an RTO without sending anything, with nothing in flight, the
   *  congestion window no longer describes the path and restarts (RFC 5681 §4.1). */
  restartIfIdle(now: number): void {
    if (this.sndMax !== this.sndUna || now - this.lastSendAt <= this.rtt.rto || !seqLt(this.sndNxt, this.dataEnd())) return;
    this.cc.onIdleRestart();
    this.lastSendAt = now;
  }

  /** The retransmission timer fired (RFC 6298 §5.4–5.6): go back to SND.UNA with a collapsed window. */
  onRetransmitTimeout(): void {
    // A window the peer shrank to zero under our data is probed, not a failure (RFC 9293 §3.8.6.1): while the
    // peer answers the resends with its closed window, they do not count towards giving up.
    if (this.sndWnd !== 0 || !this.answeredSinceTimeout) this.retries++;
    this.answeredSinceTimeout = false;
    this.rtt.backoff();
    this.cc.onRetransmitTimeout(seqDiff(this.sndMax, this.sndUna));
    this.inRecovery = false;
    this.fastRetransmitPending = false;
    this.recover = this.sndMax;
    this.dupAcks = 0;
    this.recovery.onRetransmitTimeout(this.retries);
    this.probe.reset();
    this.sndNxt = this.sndUna;
    this.forceSend = true;
    this.rtt.cancelTiming();
    this.timers.rtoAt = NEVER;
  }

  /** The ACK part of an acceptable segment (RFC 9293 §3.10.7.4, fifth check); `seq` is its trimmed start and
   *  `echoRtt` the RTT its timestamp echo gives, or null. Returns ACK_* bits. */
  processAck(seg: TcpRepr, seq: number, echoRtt: number | null, now: number): number {
    const ack = seg.ack >>> 0;
    // RFC 5961 §5.2: an ACK outside [SND.UNA − MAX.SND.WND, SND.MAX] is blind or forged: drop the segment
    // (its data too) and answer with a challenge ACK.
    if (seqGt(ack, this.sndMax) || seqLt(ack, seqAdd(this.sndUna, -this.maxSndWnd))) return ACK_DROP;
    this.answeredSinceTimeout = true;
    const sack = seg.options.sack;
    if (sack !== undefined) this.recovery.onSackBlocks(sack, ack);
    const window = seg.window * 2 ** this.sndShift;
    let result = 0;
    if (seqGt(ack, this.sndUna)) {
      result = this.onNewAck(ack, echoRtt, now);
    } else if (
      ack === this.sndUna &&
      seg.payload.length === 0 &&
      !(seg.flags & (TcpFlags.SYN | TcpFlags.FIN)) &&
      this.sndMax !== this.sndUna &&
      (window === this.sndWnd || sack !== undefined)
    ) {
      this.onDuplicateAck(now);
    }
    if (!this.inRecovery && this.sndMax !== this.sndUna && seqGe(this.sndUna, this.recover) && this.recovery.sackLossDetected(this.mss)) {
      this.enterRecovery(now);
    }
    if (seqLt(this.sndWl1, seq) || (this.sndWl1 === seq && seqGe(ack, this.sndWl2))) {
      this.sndWnd = window;
      this.sndWl1 = seq;
      this.sndWl2 = ack;
      if (window > this.maxSndWnd) this.maxSndWnd = window;
    }
    return result;
  }

  private onNewAck(ack: number, echoRtt: number | null, now: number): number {
    let acked = seqDiff(ack, this.sndUna);
    let result = 0;
    if (!this.synAcked) {
      this.synAcked = true;
      acked -= 1;
    }
    if (this.finQueued && !this.finAcked && seqGt(ack, this.dataEnd())) {
      this.finAcked = true;
      result |= ACK_FIN_ACKED;
      acked -= 1;
    }
    if (acked > 0) {
      this.buffer.consume(acked);
      this.sndBufSeq = seqAdd(this.sndBufSeq, acked);
    }
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
    this.recovery.onCumulativeAck(ack);

    this.rtt.acked(ack, echoRtt, now);
    this.retries = 0;
    this.rtt.resetBackoff();
    this.dupAcks = 0;

    if (this.inRecovery) {
      if (seqGe(ack, this.recover)) {
        this.inRecovery = false;
        this.recovery.onRecoveryEnd();
        if (this.lossEpochs.cutting) this.cc.onRecoveryEnd();
      } else if (this.recovery.onPartialAck(ack, acked, this.mss)) {
        this.fastRetransmitPending = true;
      }
    } else {
      this.cc.onAck(acked, now);
      // Keep `recover` near sndUna so the RFC 6582 comparison stays valid after 2^31 bytes.
      if (seqGt(ack, this.recover)) this.recover = ack;
    }
    this.timers.rtoAt = this.sndUna === this.sndMax ? NEVER : now + this.rtt.rto;
    this.probe.acked();
    this.armProbe(now);

    if (this.writeBlocked && this.buffer.free > 0) {
      this.writeBlocked = false;
      result |= ACK_WRITABLE;
    }
    return result;
  }

  private onDuplicateAck(now: number): void {
    this.dupAcks++;
    if (this.inRecovery) this.recovery.onDuplicateAckInRecovery(this.mss);
    else if (this.dupAcks >= DUP_ACK_THRESHOLD && seqGe(this.sndUna, this.recover)) this.enterRecovery(now);
  }

  /** RFC 8985 §7.2: no probe before the data outstanding at an RTO is acknowledged (that repair has its own
   *  backed-off timer). */
  private armProbe(now: number): void {
    const afterTimeout = !this.inRecovery && seqLt(this.sndUna, this.recover);
    this.probe.arm(now, afterTimeout ? 0 : seqDiff(this.sndMax, this.sndUna), this.mss, this.rtt.smoothedRtt, this.inRecovery);
  }

  private enterRecovery(now: number): void {
    this.probe.reset();
    this.inRecovery = true;
    this.recover = this.sndMax;
    if (this.lossEpochs.begin(now)) this.cc.onCongestionEvent(seqDiff(this.sndMax, this.sndUna), now);
    this.recovery.onRecoveryStart(this.mss);
    this.fastRetransmitPending = true;
    this.rtt.cancelTiming();
  }
}
