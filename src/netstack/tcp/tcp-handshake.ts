// The three-way handshake (RFC 9293 §3.5): our SYN or SYN-ACK with its retransmissions, and the segments
// that arrive in SYN-SENT. The connection turns the outcomes into state changes.

import { TcpFlags, type TcpRepr } from '../wire/reprs.js';
import type { TcpConfig } from './tcp-config.js';
import type { TcpReceiver } from './tcp-receiver.js';
import type { SegmentBuilder } from './tcp-segments.js';
import type { TcpSender } from './tcp-sender.js';
import { seqAdd, seqGt, seqLe } from './tcp-seq.js';
import type { TcpTimers } from './tcp-timers.js';

const { SYN, RST, ACK } = TcpFlags;

/** What a segment in SYN-SENT did (RFC 9293 §3.10.7.3). */
export const SYN_SENT_IGNORED = 0;
export const SYN_SENT_ESTABLISHED = 1;
/** A SYN without ACK: simultaneous open (figure 7), continue in SYN-RECEIVED. */
export const SYN_SENT_SIMULTANEOUS = 2;
export const SYN_SENT_REFUSED = 3;
/** An unacceptable ACK: answer with a reset. */
export const SYN_SENT_BAD_ACK = 4;

export class Handshake {
  /** Our SYN or SYN-ACK goes out on the next transmit. */
  synPending = false;
  /** The unscaled window our SYN carried. */
  private synWindow = 0;

  constructor(
    private readonly config: TcpConfig,
    private readonly timers: TcpTimers,
    private readonly snd: TcpSender,
    private readonly rcv: TcpReceiver,
    private readonly out: SegmentBuilder,
  ) {}

  onSegmentInSynSent(seg: TcpRepr, now: number): number {
    const { snd, rcv } = this;
    const flags = seg.flags;
    const ackOk = (flags & ACK) !== 0 && seqGt(seg.ack, snd.iss) && seqLe(seg.ack, snd.sndMax);
    if (flags & ACK && !ackOk) return flags & RST ? SYN_SENT_IGNORED : SYN_SENT_BAD_ACK;
    if (flags & RST) return ackOk ? SYN_SENT_REFUSED : SYN_SENT_IGNORED;
    if (!(flags & SYN)) return SYN_SENT_IGNORED;
    rcv.synchronize(seg.seq);
    rcv.rcvAdvRight = seqAdd(rcv.rcvNxt, this.synWindow);
    this.out.negotiate(seg.options, snd);
    snd.initWindow(seg.window, seg.seq, seg.ack);
    rcv.ackNow = true;
    if (ackOk) {
      snd.synAckedBy(seg.ack, this.out.echoRtt(seg), now);
      return SYN_SENT_ESTABLISHED;
    }
    this.synPending = true;
    this.timers.rtoAt = Number.POSITIVE_INFINITY;
    return SYN_SENT_SIMULTANEOUS;
  }

  /** Sends our SYN (or SYN-ACK when `passive`) if due, first or again; false once the retries ran out. */
  transmit(now: number, passive: boolean, emit: (seg: TcpRepr) => void): boolean {
    const { snd, rcv } = this;
    if (now >= this.timers.rtoAt) {
      if (snd.retries >= this.config.synRetries) return false;
      snd.synTimedOut();
      this.synPending = true;
    }
    if (!this.synPending && !rcv.ackNow) return true;
    const window = Math.min(rcv.receiveWindow(), 0xffff);
    this.synWindow = window;
    emit(this.out.syn(snd.iss, passive, window));
    rcv.rcvAdvRight = seqAdd(rcv.rcvNxt, window);
    this.synPending = false;
    rcv.ackNow = false;
    snd.synSent(now);
    return true;
  }
}
