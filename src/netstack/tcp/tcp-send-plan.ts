// The sender's decision for the next segment, in a struct the caller owns and reuses: deciding allocates
// nothing and changes no connection state; only emitting the plan does.

/** A retransmission of SND.UNA forced by loss detection (RFC 5681 §3.2 / RFC 6582 partial ACK). */
export const SEND_FAST_RETRANSMIT = 0;
/** A SACK hole below the highest SACKed byte, during recovery (RFC 6675 NextSeg rule 1). */
export const SEND_HOLE = 1;
/** New data or a FIN at SND.NXT, or data resent after a timeout (both advance SND.NXT). */
export const SEND_DATA = 2;
/** A tail loss probe (RFC 8985 §7.3): the last segment sent again, whatever cwnd says. */
export const SEND_PROBE = 3;

export class SendPlan {
  kind = SEND_DATA;
  seq = 0;
  len = 0;
  fin = false;
}
