// RFC 9293 §3.10.7.1: the reply to a segment that matches no connection (a closed port).

import { TcpFlags, type TcpRepr } from '../wire/reprs.js';
import { seqAdd } from './tcp-seq.js';

const EMPTY = Buffer.alloc(0);

/** The RST answering `seg`, or null when `seg` itself carries RST (never answer a reset). */
export function resetFor(seg: TcpRepr): TcpRepr | null {
  if (seg.flags & TcpFlags.RST) return null;
  const base = { srcPort: seg.dstPort, dstPort: seg.srcPort, window: 0, urgent: 0, options: {}, payload: EMPTY };
  if (seg.flags & TcpFlags.ACK) {
    return { ...base, seq: seg.ack, ack: 0, flags: TcpFlags.RST };
  }
  const length = seg.payload.length + (seg.flags & TcpFlags.SYN ? 1 : 0) + (seg.flags & TcpFlags.FIN ? 1 : 0);
  return { ...base, seq: 0, ack: seqAdd(seg.seq, length), flags: TcpFlags.RST | TcpFlags.ACK };
}
