// A hand-driven peer for tests that need exact control of what one connection sees and when: the test
// crafts each segment the peer sends and calls transmit itself, with the clock as an argument.

import { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig, type TcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { TcpFlags, type TcpOptions, type TcpRepr } from '../../../src/netstack/wire/reprs.js';
import { copySegment } from './sim-link.js';

const { SYN, ACK } = TcpFlags;
export const LOCAL_ISS = 1000;
export const PEER_ISS = 5000;

export class ScriptedPeer {
  /** The peer's next sequence number. */
  seq = PEER_ISS + 1;
  /** The peer's timestamp clock (advanced by every segment it sends). */
  tsValue = 100;
  readonly conn: TcpConnection;
  private lastTsFromConn = 0;

  /** A connection dialed and established against this peer at time 0..2. */
  constructor(config: Partial<TcpConfig> = {}, peerOptions: TcpOptions = { mss: 1460, sackPermitted: true, windowScale: 7 }) {
    this.conn = TcpConnection.connect(40000, 80, LOCAL_ISS, 0, tcpConfig(config));
    const [syn] = this.transmit(0);
    const options: TcpOptions = { ...peerOptions };
    if (syn.options.timestamp && peerOptions.timestamp === undefined) options.timestamp = { value: this.tsValue, echo: syn.options.timestamp.value };
    this.conn.handleSegment({ ...this.base(SYN | ACK, LOCAL_ISS + 1, 65535), seq: PEER_ISS, options }, 1);
    this.transmit(2);
  }

  /** What the connection emits on transmit(now), copied. */
  transmit(now: number): TcpRepr[] {
    const out: TcpRepr[] = [];
    this.conn.transmit(now, (s) => {
      out.push(copySegment(s));
      if (s.options.timestamp) this.lastTsFromConn = s.options.timestamp.value;
    });
    return out;
  }

  /** The peer sends an ACK-bearing segment (data when `payload` is given, at `seq` when given). */
  send(now: number, ack: number, window: number, fields: { payload?: Buffer; seq?: number; flags?: number; sack?: Array<[number, number]> } = {}): void {
    const seg = this.base(fields.flags ?? ACK, ack, window);
    seg.seq = fields.seq ?? this.seq;
    seg.payload = fields.payload ?? Buffer.alloc(0);
    if (fields.sack) seg.options.sack = fields.sack;
    if (fields.seq === undefined) this.seq += seg.payload.length;
    this.conn.handleSegment(seg, now);
  }

  private base(flags: number, ack: number, window: number): TcpRepr {
    this.tsValue++;
    return {
      srcPort: 80,
      dstPort: 40000,
      seq: this.seq,
      ack,
      flags,
      window,
      urgent: 0,
      options: { timestamp: { value: this.tsValue, echo: this.lastTsFromConn } },
      payload: Buffer.alloc(0),
    };
  }
}
