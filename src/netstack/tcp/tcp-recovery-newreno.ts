// NewReno loss recovery (RFC 6582): without SACK the sender knows only the cumulative ACK, so each duplicate
// ACK inflates the window by one segment (one left the network) and each partial ACK resends the next
// unacknowledged segment and deflates the window by what it acknowledged.

import type { LossRecovery, SendSequence } from './tcp-loss-recovery.js';
import type { SendPlan } from './tcp-send-plan.js';
import { seqDiff } from './tcp-seq.js';

const DUP_ACK_THRESHOLD = 3;

export class NewRenoRecovery implements LossRecovery {
  inflation = 0;

  constructor(private readonly seq: SendSequence) {}

  get retransmitNext(): number {
    return this.seq.sndUna;
  }

  pipe(): number {
    return seqDiff(this.seq.sndNxt, this.seq.sndUna);
  }

  onSackBlocks(): void {}

  sackLossDetected(): boolean {
    return false;
  }

  onRecoveryStart(mss: number): void {
    this.inflation = DUP_ACK_THRESHOLD * mss;
  }

  onDuplicateAckInRecovery(mss: number): void {
    this.inflation += mss;
  }

  onPartialAck(_ack: number, ackedBytes: number, mss: number): boolean {
    // RFC 6582 §3.2 step 5: resend the next hole, deflate by what left the network.
    this.inflation = Math.max(0, this.inflation - ackedBytes) + mss;
    return true;
  }

  onRecoveryEnd(): void {
    this.inflation = 0;
  }

  onCumulativeAck(): void {}

  onRetransmitTimeout(): void {
    this.inflation = 0;
  }

  planHole(_plan: SendPlan): boolean {
    return false;
  }

  onRetransmitted(): boolean {
    return false;
  }

  skipSacked(seq: number): number {
    return seq;
  }

  nextSackedAfter(_seq: number, limit: number): number {
    return limit;
  }
}
