// Sends one DNS query to the cluster DNS server: over UDP first, over TCP when the answer is truncated
// (RFC 7766). Each query has its own socket and a random id, so answers cannot be confused.

import { randomInt } from 'node:crypto';
import type { DnsServerAddress } from './cluster-info-source.js';
import { DnsExchangeError, exchangeOverTcp, exchangeOverUdp, isTruncated } from '../dns/dns-exchange.js';

export type DnsExchange = (query: Buffer) => Promise<Buffer>;

export interface ClusterDnsClientOptions {
  /** The server to ask, read on every query so a cluster info change applies at once. */
  server: () => DnsServerAddress | undefined;
  /** Per attempt; UDP tries twice. Default 1,500 ms. */
  timeoutMs?: number;
}

/** A copy of `query` with a fresh id; answers must carry the same id. */
function withId(query: Buffer, id: number): Buffer {
  const copy = Buffer.from(query);
  copy.writeUInt16BE(id, 0);
  return copy;
}

export function createClusterDnsClient(options: ClusterDnsClientOptions): DnsExchange {
  const timeoutMs = options.timeoutMs ?? 1500;
  return async (query) => {
    const server = options.server();
    if (server === undefined) throw new DnsExchangeError('the traffic manager has no cluster DNS server configured');
    const asked = withId(query, randomInt(0x10000));
    let answer: Buffer;
    try {
      answer = await exchangeOverUdp(server, asked, timeoutMs);
    } catch {
      answer = await exchangeOverUdp(server, asked, timeoutMs);
    }
    if (isTruncated(answer)) answer = await exchangeOverTcp(server, asked, timeoutMs);
    return answer;
  };
}
