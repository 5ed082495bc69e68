// The effective send MSS (RFC 9293 §3.7.1, RFC 6691): the payload of one packet towards the peer is the
// smallest of the peer's MSS, ours and the path's (from ICMP, RFC 1191/8201), less the option bytes the
// segment carries.

import { MIN_PEER_MSS, type TcpConfig } from './tcp-config.js';

const NEVER = Number.POSITIVE_INFINITY;
export const DEFAULT_PEER_MSS = 536;
const TIMESTAMP_OPTION_BYTES = 12;
/** Floor for a path MTU's MSS: Linux's IPv4 min_pmtu (552) less 40 bytes of headers, so a forged ICMP error
 *  cannot force tiny segments. IPv6 needs no floor of its own: the stack ignores MTUs below 1280 (RFC 8201). */
const MIN_PATH_MSS = 512;

export class SendMss {
  private peerMss = DEFAULT_PEER_MSS;
  /** From ICMP "fragmentation needed" / "packet too big"; never raised again. */
  private pathMss = NEVER;
  private timestamps = false;

  constructor(private readonly config: TcpConfig) {}

  /** Payload bytes per MSS-sized packet: min(peer, ours, path) less the timestamp option. */
  get value(): number {
    return Math.max(1, Math.min(this.peerMss, this.config.mss, this.pathMss) - (this.timestamps ? TIMESTAMP_OPTION_BYTES : 0));
  }

  /** The handshake settled the peer's MSS and whether segments carry timestamps. */
  negotiated(peerMss: number | undefined, timestamps: boolean): void {
    if (peerMss !== undefined) this.peerMss = Math.max(MIN_PEER_MSS, peerMss);
    this.timestamps = timestamps;
  }

  /** An ICMP error reported a path MSS of `mss`. */
  pathMtuChanged(mss: number): void {
    this.pathMss = Math.min(this.pathMss, Math.max(MIN_PATH_MSS, Math.floor(mss)));
  }

  /** The largest payload of one segment whose full-sized payload is `segmentMss` (the MSS less that segment's
   *  SACK option bytes); with offload (sendSegmentMax above our MSS), what the device then cuts into
   *  MSS-sized packets. */
  segmentLimit(segmentMss: number): number {
    const max = this.config.sendSegmentMax;
    if (max > this.config.mss) return max;
    return max > 0 ? Math.min(max, segmentMss) : segmentMss;
  }
}
