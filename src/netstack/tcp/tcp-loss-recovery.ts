// Loss recovery behind one interface (gVisor's lossRecovery), picked once the handshake says whether SACK is
// in use: NewReno (RFC 6582) without it, the RFC 6675 scoreboard with it. The sender detects loss and enters
// and leaves recovery; the implementation says what is in the network (pipe), what the peer holds, and which
// hole to resend next. Window arithmetic belongs to CongestionControl.

import type { SendPlan } from './tcp-send-plan.js';
import { NewRenoRecovery } from './tcp-recovery-newreno.js';
import { SackRecovery } from './tcp-recovery-sack.js';

/** The sender's sequence space, as loss recovery reads it. */
export interface SendSequence {
  readonly sndUna: number;
  readonly sndNxt: number;
  readonly sndMax: number;
  readonly inRecovery: boolean;
}

export interface LossRecovery {
  /** Bytes added to cwnd while recovering (NewReno's window inflation). */
  readonly inflation: number;
  /** Where hole retransmission resumes (RFC 6675 HighRxt); unused without SACK. */
  readonly retransmitNext: number;
  /** Bytes believed in the network (RFC 6675 pipe; without SACK, all sent and unacknowledged). */
  pipe(): number;
  /** The SACK blocks of an arriving ACK with cumulative acknowledgment `ack`. */
  onSackBlocks(blocks: ReadonlyArray<readonly [number, number]>, ack: number): void;
  /** RFC 6675 IsLost(SND.UNA) judged from the SACKed bytes alone. */
  sackLossDetected(mss: number): boolean;
  onRecoveryStart(mss: number): void;
  onDuplicateAckInRecovery(mss: number): void;
  /** An ACK that advances SND.UNA short of the recovery point; true when the next segment must be resent. */
  onPartialAck(ack: number, ackedBytes: number, mss: number): boolean;
  onRecoveryEnd(): void;
  /** SND.UNA moved to `ack`. */
  onCumulativeAck(ack: number): void;
  /** `retries` counts the consecutive timeouts, this one included. */
  onRetransmitTimeout(retries: number): void;
  /** The next hole to resend during recovery, at most `limit` bytes and within `room` (cwnd − pipe). */
  planHole(plan: SendPlan, limit: number, room: number, dataEnd: number, mss: number): boolean;
  /** A retransmission of a fast-retransmit or hole plan [seq, end) was sent; true when a hole plan made
   *  progress (a plan that does not would be planned again forever). */
  onRetransmitted(kind: number, seq: number, end: number): boolean;
  /** The end of the SACKed range holding `seq`, or `seq`. */
  skipSacked(seq: number): number;
  /** The start of the first SACKed range after `seq`, or `limit`. */
  nextSackedAfter(seq: number, limit: number): number;
}

export function createLossRecovery(sack: boolean, seq: SendSequence): LossRecovery {
  return sack ? new SackRecovery(seq) : new NewRenoRecovery(seq);
}
