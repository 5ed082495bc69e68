// The segments a connection emits: the options negotiated on the handshake (RFC 7323 window scaling and
// timestamps, RFC 2018 SACK) decide what each carries, and every ACK-bearing segment takes the receiver's
// current acknowledgment, window and SACK blocks, which satisfies any ACK the receiver owed.

import { TcpFlags, type TcpOptions, type TcpRepr } from '../wire/reprs.js';
import type { TcpConfig } from './tcp-config.js';
import type { TcpReceiver } from './tcp-receiver.js';
import type { TcpSender } from './tcp-sender.js';
import { seqDiff } from './tcp-seq.js';

const EMPTY = Buffer.alloc(0);
const MAX_WINDOW_SHIFT = 14;

export class SegmentBuilder {
  wsEnabled = false;
  sackEnabled = false;
  tsEnabled = false;
  /** The caller's clock at the current call (timestamps are milliseconds plus a per-connection offset). */
  now: number;
  private readonly tsOffset: number;

  constructor(
    private readonly localPort: number,
    private readonly remotePort: number,
    private readonly config: TcpConfig,
    private readonly rcv: TcpReceiver,
    iss: number,
    now: number,
  ) {
    this.now = now;
    this.tsOffset = Math.imul(iss, 2654435761) >>> 0;
  }

  /** Takes the options of the peer's SYN or SYN-ACK. */
  negotiate(options: TcpOptions, snd: TcpSender): void {
    this.wsEnabled = this.config.windowScaling && options.windowScale !== undefined;
    if (this.wsEnabled) {
      snd.sndShift = Math.min(options.windowScale ?? 0, MAX_WINDOW_SHIFT);
    } else {
      snd.sndShift = 0;
      this.rcv.rcvShift = 0;
    }
    this.sackEnabled = this.config.sack && options.sackPermitted === true;
    if (this.config.timestamps && options.timestamp !== undefined) {
      this.tsEnabled = true;
      this.rcv.setTsRecent(options.timestamp.value, this.now);
    }
    snd.negotiated(options.mss, this.sackEnabled, this.tsEnabled);
  }

  tsValue(): number {
    return (Math.floor(this.now) + this.tsOffset) >>> 0;
  }

  /** The RTT a segment's timestamp echo measures (RFC 7323 §4.1), or null when it carries none. */
  echoRtt(seg: TcpRepr): number | null {
    const ts = seg.options.timestamp;
    return this.tsEnabled && ts !== undefined && ts.echo !== 0 ? seqDiff(this.tsValue(), ts.echo) : null;
  }

  /** Our SYN (active) or SYN-ACK (passive): an active open offers every option configured, a passive one
   *  answers only what the peer offered. */
  syn(iss: number, passive: boolean, window: number): TcpRepr {
    const config = this.config;
    const options: TcpOptions = { mss: config.mss };
    if (passive ? this.wsEnabled : config.windowScaling) options.windowScale = this.rcv.rcvShift;
    if (config.sack && (!passive || this.sackEnabled)) options.sackPermitted = true;
    if (config.timestamps && (!passive || this.tsEnabled)) {
      options.timestamp = { value: this.tsValue(), echo: passive ? this.rcv.tsRecent : 0 };
    }
    return {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq: iss,
      ack: passive ? this.rcv.rcvNxt : 0,
      flags: passive ? TcpFlags.SYN | TcpFlags.ACK : TcpFlags.SYN,
      window,
      urgent: 0,
      options,
      payload: EMPTY,
    };
  }

  /** A segment carrying our current ACK and window; sending it satisfies any pending ACK. */
  control(seq: number, flags: number, payload: Buffer = EMPTY): TcpRepr {
    const rcv = this.rcv;
    const options: TcpOptions = {};
    if (this.tsEnabled) options.timestamp = { value: this.tsValue(), echo: rcv.tsRecent };
    if (rcv.sackBlocks !== null) options.sack = rcv.sackBlocks;
    const window = rcv.advertiseWindow();
    rcv.ackSent();
    return {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq,
      ack: rcv.rcvNxt,
      flags,
      window,
      urgent: 0,
      options,
      payload,
    };
  }

  /** A segment without options or window (a reset). */
  reply(seq: number, ack: number, flags: number): TcpRepr {
    return {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq,
      ack,
      flags,
      window: 0,
      urgent: 0,
      options: {},
      payload: EMPTY,
    };
  }
}
