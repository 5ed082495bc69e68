// SACK-based loss recovery (RFC 6675): the scoreboard of what the peer reported holding tells which bytes are
// lost (holes below the highest SACKed byte), pipe counts only what is still in the network, and recovery
// resends the holes in order from HighRxt (retransmitNext) while pipe is below cwnd.

import type { LossRecovery, SendSequence } from './tcp-loss-recovery.js';
import { SackScoreboard } from './tcp-sack-scoreboard.js';
import { SEND_FAST_RETRANSMIT, SEND_HOLE, type SendPlan } from './tcp-send-plan.js';
import { seqDiff, seqGt, seqLe, seqLt, seqMax } from './tcp-seq.js';

const DUP_ACK_THRESHOLD = 3;

export class SackRecovery implements LossRecovery {
  readonly inflation = 0;
  retransmitNext: number;
  private readonly scoreboard = new SackScoreboard();

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
    return beyond + retransmitted;
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
  }

  /** Enough bytes SACKed above SND.UNA, whether or not the ACKs were duplicates (a batch of segments may be
   *  answered by one ACK). */
  sackLossDetected(mss: number): boolean {
    return this.scoreboard.sackedBytes >= DUP_ACK_THRESHOLD * mss;
  }

  onRecoveryStart(): void {
    this.retransmitNext = this.seq.sndUna;
  }

  onDuplicateAckInRecovery(): void {}

  onPartialAck(ack: number): boolean {
    if (seqLt(this.retransmitNext, ack)) this.retransmitNext = ack;
    return false;
  }

  onRecoveryEnd(): void {}

  onCumulativeAck(ack: number): void {
    this.scoreboard.removeBelow(ack);
  }

  onRetransmitTimeout(retries: number): void {
    // The peer may have reneged on SACKed data: trust the scoreboard for one timeout only (RFC 2018 §8).
    if (retries > 1) this.scoreboard.clear();
  }

  planHole(plan: SendPlan, limit: number, room: number, dataEnd: number, mss: number): boolean {
    const board = this.scoreboard;
    const una = this.seq.sndUna;
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

  onRetransmitted(kind: number, end: number): void {
    this.retransmitNext = kind === SEND_FAST_RETRANSMIT ? seqMax(this.retransmitNext, end) : end;
  }

  skipSacked(seq: number): number {
    return this.scoreboard.skipSacked(seq);
  }

  nextSackedAfter(seq: number, limit: number): number {
    return this.scoreboard.nextSackedAfter(seq, limit);
  }
}
