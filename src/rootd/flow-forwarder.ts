// Connects the stack's flows to the tunnel: a SYN for a cluster address opens a CONNECT stream to the traffic
// manager first, and only when the manager has reached the destination does the local handshake complete. The
// manager's "refused" becomes a RST (connection refused), anything else an ICMP unreachable, so clients see the
// same errors as in the cluster. UDP flows become connect-udp streams.
import type { Duplex } from 'node:stream';
import type { NetStackHandlers, TcpConnectRequest } from '../netstack/stack.js';
import type { UdpFlow } from '../netstack/udp-flow.js';
import { formatIp } from '../netstack/wire/ip-address.js';
import { TunnelError, type TunnelClient, type UdpTunnel } from '../tunnel/tunnel-client.js';

export interface FlowCounters {
  tcpOpened: number;
  tcpRefused: number;
  tcpFailed: number;
  tcpActive: number;
  udpFlows: number;
  bytesUp: number;
  bytesDown: number;
}

/** Datagrams held while a UDP flow's stream opens; more are dropped (UDP's own right). */
const UDP_PENDING_MAX = 64;

export class FlowForwarder {
  readonly counters: FlowCounters = { tcpOpened: 0, tcpRefused: 0, tcpFailed: 0, tcpActive: 0, udpFlows: 0, bytesUp: 0, bytesDown: 0 };

  /** @param tunnel the current tunnel, or null while there is none (flows then fail as unreachable). */
  constructor(private readonly tunnel: () => TunnelClient | null) {}

  handlers(): Pick<NetStackHandlers, 'tcpConnect' | 'udpFlow'> {
    return { tcpConnect: (request) => this.forwardTcp(request), udpFlow: (flow) => this.forwardUdp(flow) };
  }

  forwardTcp(request: TcpConnectRequest): void {
    const tunnel = this.tunnel();
    if (tunnel === null) {
      this.counters.tcpFailed++;
      request.unreachable();
      return;
    }
    tunnel.openTcp(formatIp(request.local.address), request.local.port).then(
      (stream) => this.splice(request, stream),
      (error: unknown) => {
        const refused = error instanceof TunnelError && error.code === 'REFUSED';
        if (refused) this.counters.tcpRefused++;
        else this.counters.tcpFailed++;
        try {
          if (refused) request.refuse();
          else request.unreachable();
        } catch {
          // The stack already answered the SYN (its accept timeout): nothing left to tell the client.
        }
      },
    );
  }

  private splice(request: TcpConnectRequest, stream: Duplex): void {
    const counters = this.counters;
    try {
      request.acceptSplice(stream, {
        up: (bytes) => (counters.bytesUp += bytes),
        down: (bytes) => (counters.bytesDown += bytes),
        closed: () => counters.tcpActive--,
      });
    } catch {
      stream.destroy();
      return;
    }
    counters.tcpOpened++;
    counters.tcpActive++;
  }

  forwardUdp(flow: UdpFlow): void {
    const tunnel = this.tunnel();
    if (tunnel === null) {
      flow.close();
      return;
    }
    this.counters.udpFlows++;
    const pending: Buffer[] = [];
    let udp: UdpTunnel | null = null;
    flow.on('datagram', (data) => {
      this.counters.bytesUp += data.length;
      if (udp !== null) udp.send(data);
      else if (pending.length < UDP_PENDING_MAX) pending.push(Buffer.from(data));
    });
    tunnel.openUdp(formatIp(flow.local.address), flow.local.port).then(
      (opened) => {
        if (flow.closed) {
          opened.close();
          return;
        }
        udp = opened;
        opened.on('datagram', (data: Buffer) => {
          this.counters.bytesDown += data.length;
          flow.send(data);
        });
        opened.on('close', () => flow.close());
        flow.on('close', () => opened.close());
        for (const data of pending.splice(0)) opened.send(data);
      },
      (error: unknown) => {
        if (error instanceof TunnelError && error.code === 'REFUSED') flow.refuse();
        else flow.close();
      },
    );
  }
}
