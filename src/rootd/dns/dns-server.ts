// DNS served inside the user-space stack, on an address routed into the TUN device: no kernel socket, so
// nothing on the machine can take the port, and the address exists only while kubetun is connected.
import type { Endpoint } from '../../netstack/endpoint.js';
import type { TcpConnectRequest } from '../../netstack/stack.js';
import type { UdpFlow } from '../../netstack/udp-flow.js';
import { ipEquals } from '../../netstack/wire/ip-address.js';
import type { IpAddress } from '../../netstack/wire/reprs.js';
import type { DnsResolver } from './dns-resolver.js';

const DNS_PORT = 53;

export class StackDnsServer {
  queries = 0;

  constructor(
    private readonly resolver: DnsResolver,
    readonly address: IpAddress,
  ) {}

  /** Whether a flow to `local` is for this server. */
  serves(local: Endpoint): boolean {
    return local.port === DNS_PORT && ipEquals(local.address, this.address);
  }

  /**
   * Resolvers use a fresh source port for almost every query, so a flow is closed as soon as its queries are
   * answered: kept until the stack's idle expiry, they would fill the flow table at a few hundred queries a second.
   */
  serveUdp(flow: UdpFlow): void {
    let pending = 0;
    flow.on('datagram', (query) => {
      this.queries++;
      pending++;
      void this.resolver.resolveForUdp(Buffer.from(query)).then((answer) => {
        flow.send(answer);
        if (--pending === 0) flow.close();
      });
    });
  }

  /** DNS over TCP: two-byte length before each message (RFC 1035 §4.2.2, RFC 7766 pipelining). */
  serveTcp(request: TcpConnectRequest): void {
    const socket = request.accept();
    let buffered = Buffer.alloc(0);
    let pending = 0;
    let clientDone = false;
    // Answer every query that arrived before the client's FIN, then close our side.
    const maybeEnd = (): void => {
      if (clientDone && pending === 0) socket.end();
    };
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const query = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + query.length);
        this.queries++;
        pending++;
        void this.resolver.resolve(Buffer.from(query)).then((answer) => {
          const length = Buffer.alloc(2);
          length.writeUInt16BE(answer.length);
          if (!socket.destroyed) socket.write(Buffer.concat([length, answer]));
          pending--;
          maybeEnd();
        });
      }
    });
    socket.on('end', () => {
      clientDone = true;
      maybeEnd();
    });
    socket.on('error', () => socket.destroy());
  }
}
