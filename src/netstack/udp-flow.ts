// A UDP "flow": the datagrams between one local client endpoint and one destination, as the stack saw them. UDP
// has no connection, so a flow lives until it has been idle for the stack's expiry time or the application closes it.
import { EventEmitter } from 'node:events';
import type { Endpoint } from './endpoint.js';

/** The stack side of a flow: what a UdpFlow asks of the stack that owns it. */
export interface UdpFlowHost {
  sendDatagram(flow: UdpFlow, data: Buffer): void;
  refuseFlow(flow: UdpFlow): void;
  closeFlow(flow: UdpFlow): void;
}

export interface UdpFlowEvents {
  datagram: [data: Buffer];
  close: [];
}

export class UdpFlow extends EventEmitter<UdpFlowEvents> {
  lastActive: number;
  /** The last datagram's IP packet, quoted by an ICMP error if the application refuses the flow. */
  lastPacket: Buffer;
  closed = false;

  constructor(
    private readonly host: UdpFlowHost,
    /** The address and port the client sent to (the destination this flow stands for). */
    readonly local: Endpoint,
    /** The client. */
    readonly remote: Endpoint,
    readonly key: string,
    firstPacket: Buffer,
    now: number,
  ) {
    super();
    this.lastActive = now;
    this.lastPacket = firstPacket;
  }

  /** Sends a datagram from `local` to the client. Datagrams up to 64 KiB minus headers. */
  send(data: Buffer): void {
    if (!this.closed) this.host.sendDatagram(this, data);
  }

  /** Answers the client's last datagram with ICMP port unreachable (ECONNREFUSED there) and closes the flow. */
  refuse(): void {
    if (!this.closed) this.host.refuseFlow(this);
  }

  close(): void {
    if (!this.closed) this.host.closeFlow(this);
  }
}
