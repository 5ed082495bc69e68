// The machine's original DNS servers, asked over the kernel's own sockets (not through the TUN): names that are
// not the cluster's resolve exactly as they did before kubetun. UDP first, TCP when the answer is truncated, the
// next server when one does not answer.
import { exchangeOverTcp, exchangeOverUdp, isTruncated } from '../../dns/dns-exchange.js';

export class UpstreamDnsError extends Error {
  readonly code = 'UPSTREAM_DNS';
}

// resolv.conf names servers without a port.
const DNS_PORT = 53;

export class UpstreamResolver {
  /** @param port the servers' port: 53 but in tests, whose servers run unprivileged on loopback. */
  constructor(
    private readonly servers: readonly string[],
    private readonly timeoutMs = 2000,
    private readonly port = DNS_PORT,
  ) {}

  async query(message: Buffer): Promise<Buffer> {
    let lastError: Error = new UpstreamDnsError('no upstream DNS server is configured');
    for (const server of this.servers) {
      try {
        const endpoint = { ip: server, port: this.port };
        const answer = await exchangeOverUdp(endpoint, message, this.timeoutMs);
        return isTruncated(answer) ? await exchangeOverTcp(endpoint, message, this.timeoutMs) : answer;
      } catch (error) {
        lastError = error as Error;
      }
    }
    throw lastError;
  }
}
