// Congestion control behind a small interface (gVisor's shape): the connection detects loss and recovery,
// the algorithm only moves cwnd and ssthresh. All sizes are in bytes.

import { CubicCongestion } from './tcp-cubic.js';
import { NewRenoCongestion } from './tcp-newreno.js';

export interface CongestionControl {
  readonly cwnd: number;
  readonly ssthresh: number;
  /** New data was cumulatively acknowledged outside fast recovery. */
  onAck(ackedBytes: number, now: number): void;
  /** Loss detected by duplicate ACKs or SACK: fast recovery starts. */
  onCongestionEvent(flightBytes: number, now: number): void;
  /** Fast recovery ended with a full acknowledgment. */
  onRecoveryEnd(): void;
  /** The retransmission timer fired. A timeout with no new data acknowledged since the previous one is a
   *  repeat for the same data: it keeps ssthresh (RFC 5681 §3.1, the note on eq. 4) instead of recomputing it
   *  from a flight size that the first timeout already collapsed. */
  onRetransmitTimeout(flightBytes: number): void;
}

export function createCongestionControl(kind: 'newreno' | 'cubic', mss: number): CongestionControl {
  return kind === 'cubic' ? new CubicCongestion(mss) : new NewRenoCongestion(mss);
}
