// The root daemon's resolver: every query from the machine arrives here; cluster names go through the tunnel to
// the traffic manager, everything else to the original upstream, both through the cache. The answer is cut to
// what the client's transport can take.
import {
  buildDnsMessageWithin,
  DnsRcode,
  ednsPayloadSize,
  errorReply,
  headerOnlyReply,
  parseDnsMessage,
  parseDnsQuery,
  type DnsMessage,
} from '../../dns/dns-message.js';
import { cacheKey, DnsCache } from './dns-cache.js';
import { routeName, type ClusterDnsFacts } from './cluster-names.js';

export interface DnsResolverOptions {
  /** Asks the cluster through the tunnel (its DNS stream); null when not connected. */
  cluster: () => ((query: Buffer) => Promise<Buffer>) | null;
  upstream: (query: Buffer) => Promise<Buffer>;
  facts: () => ClusterDnsFacts;
  cache?: DnsCache;
  now?: () => number;
}

/** Largest answer over UDP to a client that did not offer EDNS, and the least EDNS may offer (RFC 6891 §6.2.3). */
export const CLASSIC_UDP_LIMIT = 512;
/**
 * Largest answer we send over UDP whatever the client offers: the usual EDNS maximum (dnsmasq's and BIND's
 * ceiling), far below the 64 KiB an IP packet can carry; larger answers go over TCP after TC.
 */
export const MAX_UDP_ANSWER = 4096;
/** A DNS message over TCP is at most 65,535 bytes (its two-byte length). */
const MAX_TCP_ANSWER = 0xffff;

/** How the answer goes back: UDP answers are limited by what the client offered, TCP ones by the framing. */
export type DnsTransport = 'udp' | 'tcp';

/** The largest answer a client may get over UDP: its EDNS offer within [512, MAX_UDP_ANSWER], 512 without EDNS. */
function udpAnswerLimit(query: DnsMessage): number {
  const offered = ednsPayloadSize(query) ?? CLASSIC_UDP_LIMIT;
  return Math.min(Math.max(offered, CLASSIC_UDP_LIMIT), MAX_UDP_ANSWER);
}

export class DnsResolver {
  readonly cache: DnsCache;
  private readonly now: () => number;

  constructor(private readonly options: DnsResolverOptions) {
    this.cache = options.cache ?? new DnsCache();
    this.now = options.now ?? (() => performance.now());
  }

  /**
   * Never rejects: a query that cannot be read (or asks other than one question) gets FORMERR, any failure behind
   * it SERVFAIL. Over UDP a too large answer comes truncated with TC set; over TCP it comes whole.
   */
  async resolve(query: Buffer, transport: DnsTransport = 'tcp'): Promise<Buffer> {
    let message: DnsMessage;
    try {
      message = parseDnsQuery(query);
    } catch {
      return headerOnlyReply(query, DnsRcode.FORMERR);
    }
    try {
      const answer = await this.route(query, message);
      const limit = transport === 'udp' ? udpAnswerLimit(message) : MAX_TCP_ANSWER;
      return answer.length <= limit ? answer : buildDnsMessageWithin(parseDnsMessage(answer), limit);
    } catch {
      return errorReply(message, DnsRcode.SERVFAIL);
    }
  }

  private route(query: Buffer, message: DnsMessage): Promise<Buffer> {
    const question = message.questions[0]!;
    if (routeName(question.name, this.options.facts()) === 'upstream') return this.cached(message, 'upstream', () => this.options.upstream(query));
    const ask = this.options.cluster();
    if (ask === null) return Promise.resolve(errorReply(message, DnsRcode.SERVFAIL));
    return this.cached(message, 'cluster', () => ask(query));
  }

  private cached(message: DnsMessage, route: string, fetch: () => Promise<Buffer>): Promise<Buffer> {
    return this.cache.lookup(cacheKey(message.questions[0]!, route), message.id, this.now(), async () => {
      const bytes = await fetch();
      return { bytes, message: parseDnsMessage(bytes) };
    });
  }
}
