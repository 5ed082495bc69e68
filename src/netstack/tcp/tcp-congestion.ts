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
  /** The retransmission timer fired. */
  onRetransmitTimeout(flightBytes: number): void;
}

export function createCongestionControl(kind: 'newreno' | 'cubic', mss: number): CongestionControl {
  return kind === 'cubic' ? new CubicCongestion(mss) : new NewRenoCongestion(mss);
}
