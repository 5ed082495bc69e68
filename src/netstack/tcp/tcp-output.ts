// What a synchronized connection sends on one transmit: first the timers that are due (a retransmission
// timeout rewinds the sender, a persist or keepalive probe goes out), then the segments the sender plans,
// then the ACKs the receiver owes. The handshake and TIME-WAIT send from the connection itself.

import { TcpFlags, type TcpRepr } from '../wire/reprs.js';
import type { TcpConfig } from './tcp-config.js';
import type { TcpReceiver } from './tcp-receiver.js';
import type { SegmentBuilder } from './tcp-segments.js';
import { SendPlan } from './tcp-send-plan.js';
import type { TcpSender } from './tcp-sender.js';
import { seqAdd } from './tcp-seq.js';
import type { TcpTimers } from './tcp-timers.js';

const { FIN, RST, ACK } = TcpFlags;
const DUP_ACK_THRESHOLD = 3;

export class TcpOutput {
  /** Scratch for the sender's decisions (planSend fills it; nothing keeps it). */
  private readonly plan = new SendPlan();

  constructor(
    private readonly config: TcpConfig,
    private readonly timers: TcpTimers,
    private readonly snd: TcpSender,
    private readonly rcv: TcpReceiver,
    private readonly out: SegmentBuilder,
  ) {}

  /** Whether the sender has a segment to send now. Changes nothing. */
  hasSegmentToSend(): boolean {
    return this.snd.planSend(this.plan, this.rcv.sackOptionBytes);
  }

  /** One transmit in a synchronized state; `canSend` when the state lets data go out, `keepaliveIdle` when
   *  keepalive applies. Returns false when the connection timed out (after sending a reset). */
  transmit(now: number, canSend: boolean, keepaliveIdle: boolean, emit: (seg: TcpRepr) => void): boolean {
    const { snd, rcv, out } = this;
    // Before the timers: a probe or keepalive must report what is held now, not at the last transmit.
    rcv.prepareSackBlocks(out.sackEnabled, out.tsEnabled);
    if (!this.runTimers(now, keepaliveIdle, emit)) return false;
    let extraDuplicates = Math.min(rcv.duplicateAcksOwed, DUP_ACK_THRESHOLD + 1) - 1;
    rcv.duplicateAcksOwed = 0;
    if (canSend) {
      snd.restartIfIdle(now);
      this.sendPlanned(now, emit);
    }
    if (rcv.ackNow) emit(out.control(snd.sndMax, ACK));
    while (extraDuplicates-- > 0) emit(out.control(snd.sndMax, ACK));
    this.updatePersistTimer(now);
    return true;
  }

  updatePersistTimer(now: number): void {
    this.timers.updatePersist(this.snd.zeroWindowStalled, now, this.snd.rtt.rto);
  }

  /** Emits what the sender plans until it plans nothing. Each emitted plan advances SND.NXT or HighRxt or
   *  clears a pending retransmission, so the loop ends; a plan that did not would repeat forever, and is a
   *  bug worth a loud failure rather than a silent cap. */
  private sendPlanned(now: number, emit: (seg: TcpRepr) => void): void {
    const snd = this.snd;
    const plan = this.plan;
    const sackBytes = this.rcv.sackOptionBytes;
    while (snd.planSend(plan, sackBytes)) {
      emit(this.out.control(plan.seq, plan.fin ? ACK | FIN : ACK, snd.payload(plan)));
      if (!snd.sent(plan, now)) throw new Error(`tcp: planned segment ${plan.kind}@${plan.seq}+${plan.len} made no progress`);
    }
  }

  /** Fires due timers. Returns false when the connection gave up. */
  private runTimers(now: number, keepaliveIdle: boolean, emit: (seg: TcpRepr) => void): boolean {
    const { timers, snd, out } = this;
    if (now >= timers.rtoAt) {
      if (snd.retries >= this.config.maxRetransmissions) return this.giveUp(emit);
      snd.onRetransmitTimeout();
    }
    if (now >= timers.probeAt) snd.probe.fire();
    if (now >= timers.delayedAckAt) this.rcv.ackNow = true;
    if (now >= timers.persistAt) {
      // Zero-window probe: an already-acknowledged sequence number makes the peer answer with its window.
      emit(out.control(seqAdd(snd.sndUna, -1), ACK));
      timers.persistProbeSent();
    }
    if (now >= timers.keepaliveAt(keepaliveIdle)) {
      const keepalive = this.config.keepalive;
      if (keepalive === null || timers.keepaliveProbes >= keepalive.probes) return this.giveUp(emit);
      timers.keepaliveProbes++;
      emit(out.control(seqAdd(snd.sndUna, -1), ACK));
    }
    return true;
  }

  private giveUp(emit: (seg: TcpRepr) => void): false {
    emit(this.out.reply(this.snd.sndMax, this.rcv.rcvNxt, RST | ACK));
    return false;
  }
}
