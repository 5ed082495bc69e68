// SACK-based loss recovery (RFC 6675): the scoreboard of what the peer reported holding tells which bytes are
// lost (holes below the highest SACKed byte), pipe counts only what is still in the network, and recovery
// resends the holes in order from HighRxt (retransmitNext) while pipe is below cwnd.
//
// A retransmission can be lost too, and RFC 6675 alone then waits for the RTO: at 1% loss that happens every
// few recovery episodes, and each RTO costs 200 ms and the window. As in RACK (RFC 8985 §6.2), the order of
// delivery tells: each retransmission is logged with SND.MAX at the time it went out; once the peer SACKs
// DupThresh segments' worth beyond that mark while the retransmitted range is still missing, it was lost
// and is resent before any further hole.

import type { LossRecovery, SendSequence } from './tcp-loss-recovery.js';
import { SackScoreboard } from './tcp-sack-scoreboard.js';
import { SEND_FAST_RETRANSMIT, SEND_HOLE, type SendPlan } from './tcp-send-plan.js';
import { seqAdd, seqDiff, seqGt, seqLe, seqLt, seqMax } from './tcp-seq.js';

const DUP_ACK_THRESHOLD = 3;
/** Retransmissions watched per recovery episode; one beyond these is repaired by the RTO, as before. */
const LOG_SIZE = 64;

export class SackRecovery implements LossRecovery {
  readonly inflation = 0;
  retransmitNext: number;
  private readonly scoreboard = new SackScoreboard();
  private mss = 1;
  /** Retransmissions in the order sent, as a ring: [start, end) and SND.MAX when sent. Allocated on the
   *  first recovery. */
  private logStart = new Uint32Array(0);
  private logEnd = new Uint32Array(0);
  private logMark = new Uint32Array(0);
  private logHead = 0;
  private logCount = 0;
  /** A retransmitted range found lost again, [lostStart, lostEnd), resent before any further hole. */
  private lost = false;
  private lostStart = 0;
  private lostEnd = 0;

  constructor(private readonly seq: SendSequence) {
    this.retransmitNext = seq.sndUna;
  }

  /** RFC 6675 pipe, simplified: holes below the highest SACK are lost unless resent in this recovery. */
  pipe(): number {
    const s = this.seq;
    const board = this.scoreboard;
    if (board.isEmpty) return seqDiff(s.sndNxt, s.sndUna);
    if (!s.inRecovery) return seqDiff(s.sndNxt, s.sndUna) - board.sackedBetween(s.sndUna, s.sndNxt);
    const high = seqMax(board.highest(s.sndUna), s.sndUna);
    const beyond = seqGt(s.sndNxt, high) ? seqDiff(s.sndNxt, high) : 0;
    // Resent bytes above `high` are in `beyond` already (high drops below HighRxt when the scoreboard's cap
    // forgets its top range).
    const resentEnd = seqLt(this.retransmitNext, high) ? this.retransmitNext : high;
    const retransmitted = seqGt(resentEnd, s.sndUna)
      ? seqDiff(resentEnd, s.sndUna) - board.sackedBetween(s.sndUna, resentEnd)
      : 0;
    return Math.max(0, beyond + retransmitted - this.lostBytes());
  }

  /** What of the lost retransmission is still missing: it was counted in flight and is not. */
  private lostBytes(): number {
    if (!this.lost) return 0;
    const from = seqMax(this.lostStart, this.seq.sndUna);
    if (!seqLt(from, this.lostEnd)) return 0;
    return seqDiff(this.lostEnd, from) - this.scoreboard.sackedBetween(from, this.lostEnd);
  }

  /** RACK's ordering test on the oldest logged retransmissions (see the top of the file). */
  private detectLostRetransmission(una: number): void {
    const board = this.scoreboard;
    const high = board.highest(una);
    if (this.lost && !seqLt(board.skipSacked(seqMax(this.lostStart, una)), this.lostEnd)) this.lost = false;
    while (!this.lost && this.logCount > 0) {
      const i = this.logHead;
      const end = this.logEnd[i];
      if (seqGt(end, una) && seqLt(high, seqAdd(this.logMark[i], DUP_ACK_THRESHOLD * this.mss))) return;
      this.logHead = (i + 1) % LOG_SIZE;
      this.logCount--;
      if (!seqGt(end, una)) continue;
      const from = board.skipSacked(seqMax(this.logStart[i], una));
      if (seqLt(from, end)) {
        this.lost = true;
        this.lostStart = from;
        this.lostEnd = end;
      }
    }
  }

  private clearLog(): void {
    this.logCount = 0;
    this.lost = false;
  }

  onSackBlocks(blocks: ReadonlyArray<readonly [number, number]>, ack: number): void {
    const sndMax = this.seq.sndMax;
    // Called before SND.UNA moves. What lies at or below it — a D-SACK (RFC 2883), or the blocks of an old ACK
    // arriving late — reports nothing missing: it must neither enter the scoreboard nor count towards the
    // loss test, which would start a false recovery.
    const floor = seqMax(ack, this.seq.sndUna);
    for (const [left, right] of blocks) {
      if (seqGt(right, floor) && seqLe(right, sndMax) && seqLt(left, right)) {
        this.scoreboard.add(seqMax(left >>> 0, floor), right >>> 0);
      }
    }
    if (this.logCount > 0 || this.lost) this.detectLostRetransmission(floor);
  }

  /** Enough bytes SACKed above SND.UNA, whether or not the ACKs were duplicates (a batch of segments may be
   *  answered by one ACK). */
  sackLossDetected(mss: number): boolean {
    return this.scoreboard.sackedBytes >= DUP_ACK_THRESHOLD * mss;
  }

  onRecoveryStart(mss: number): void {
    this.retransmitNext = this.seq.sndUna;
    this.mss = mss;
    if (this.logStart.length === 0) {
      this.logStart = new Uint32Array(LOG_SIZE);
      this.logEnd = new Uint32Array(LOG_SIZE);
      this.logMark = new Uint32Array(LOG_SIZE);
    }
    this.clearLog();
  }

  onDuplicateAckInRecovery(): void {}

  onPartialAck(ack: number): boolean {
    if (seqLt(this.retransmitNext, ack)) this.retransmitNext = ack;
    return false;
  }

  onRecoveryEnd(): void {
    this.clearLog();
  }

  onCumulativeAck(ack: number): void {
    this.scoreboard.removeBelow(ack);
    if (this.logCount > 0 || this.lost) this.detectLostRetransmission(ack);
  }

  onRetransmitTimeout(retries: number): void {
    this.clearLog();
    // The peer may have reneged on SACKed data: trust the scoreboard for one timeout only (RFC 2018 §8).
    if (retries > 1) this.scoreboard.clear();
  }

  planHole(plan: SendPlan, limit: number, room: number, dataEnd: number, mss: number): boolean {
    const board = this.scoreboard;
    const una = this.seq.sndUna;
    if (this.lost) {
      const from = board.skipSacked(seqMax(this.lostStart, una));
      if (seqLt(from, this.lostEnd) && seqLt(from, dataEnd)) {
        const end = board.nextSackedAfter(from, seqLt(this.lostEnd, dataEnd) ? this.lostEnd : dataEnd);
        plan.kind = SEND_HOLE;
        plan.seq = from;
        plan.len = Math.min(limit, seqDiff(end, from), Math.max(room, mss));
        plan.fin = false;
        if (plan.len > 0) return true;
      }
    }
    const high = board.highest(una);
    const seq = board.skipSacked(seqMax(this.retransmitNext, una));
    if (!seqLt(seq, high) || !seqLt(seq, dataEnd)) return false;
    const end = board.nextSackedAfter(seq, seqLt(high, dataEnd) ? high : dataEnd);
    plan.kind = SEND_HOLE;
    plan.seq = seq;
    plan.len = Math.min(limit, seqDiff(end, seq), Math.max(room, mss));
    plan.fin = false;
    return plan.len > 0;
  }

  onRetransmitted(kind: number, seq: number, end: number): boolean {
    this.log(seq, end);
    if (this.lost && kind === SEND_HOLE && seqLt(seq, this.lostEnd) && !seqLt(seq, this.lostStart)) {
      this.lostStart = end;
      if (!seqLt(end, this.lostEnd)) this.lost = false;
      return true;
    }
    const progress = seqGt(end, this.retransmitNext);
    this.retransmitNext = kind === SEND_FAST_RETRANSMIT ? seqMax(this.retransmitNext, end) : end;
    return progress;
  }

  private log(seq: number, end: number): void {
    if (this.logCount === LOG_SIZE || this.logStart.length === 0) return;
    const i = (this.logHead + this.logCount) % LOG_SIZE;
    this.logStart[i] = seq;
    this.logEnd[i] = end;
    this.logMark[i] = this.seq.sndMax;
    this.logCount++;
  }

  skipSacked(seq: number): number {
    return this.scoreboard.skipSacked(seq);
  }

  nextSackedAfter(seq: number, limit: number): number {
    return this.scoreboard.nextSackedAfter(seq, limit);
  }
}
