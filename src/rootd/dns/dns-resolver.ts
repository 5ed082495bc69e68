// The root daemon's resolver: every query from the machine arrives here; cluster names go through the tunnel to
// the traffic manager, everything else to the original upstream, both through the cache.
import { DnsFlag, DnsRcode, DnsType, errorReply, parseDnsMessage, rcodeOf, type DnsMessage } from '../../dns/dns-message.js';
import { cacheKey, DnsCache } from './dns-cache.js';
import { routeName, type ClusterDnsFacts } from './cluster-names.js';

export interface DnsResolverOptions {
  /** Asks the cluster (RFC 8484 through the tunnel); null when not connected. */
  cluster: () => ((query: Buffer) => Promise<Buffer>) | null;
  upstream: (query: Buffer) => Promise<Buffer>;
  facts: () => ClusterDnsFacts;
  cache?: DnsCache;
  now?: () => number;
}

/** Largest answer over UDP to a client that did not offer EDNS (RFC 1035 §4.2.1). */
const CLASSIC_UDP_LIMIT = 512;

export class DnsResolver {
  readonly cache: DnsCache;
  private readonly now: () => number;

  constructor(private readonly options: DnsResolverOptions) {
    this.cache = options.cache ?? new DnsCache();
    this.now = options.now ?? (() => performance.now());
  }

  /** Never rejects: failures become SERVFAIL (or FORMERR for a query that cannot be read). */
  async resolve(query: Buffer): Promise<Buffer> {
    let message: DnsMessage;
    try {
      message = parseDnsMessage(query);
    } catch {
      return formatError(query);
    }
    try {
      return await this.route(query, message);
    } catch {
      return errorReply(message, DnsRcode.SERVFAIL);
    }
  }

  /** The answer as it may go back over UDP: truncated (TC) when too large for a client without EDNS. */
  async resolveForUdp(query: Buffer): Promise<Buffer> {
    const answer = await this.resolve(query);
    if (answer.length <= CLASSIC_UDP_LIMIT) return answer;
    let message: DnsMessage;
    try {
      message = parseDnsMessage(query);
    } catch {
      return answer;
    }
    if (message.additionals.some((r) => r.type === DnsType.OPT)) return answer;
    const truncated = errorReply(message, rcodeOf(answer.readUInt16BE(2)));
    truncated.writeUInt16BE(truncated.readUInt16BE(2) | DnsFlag.TC, 2);
    return truncated;
  }

  private async route(query: Buffer, message: DnsMessage): Promise<Buffer> {
    const question = message.questions[0];
    if (message.questions.length !== 1 || question === undefined) return this.options.upstream(query);
    const route = routeName(question.name, this.options.facts());
    const viaUpstream = (): Promise<Buffer> => this.cached(message, 'upstream', () => this.options.upstream(query));
    if (route === 'upstream') return viaUpstream();
    const ask = this.options.cluster();
    if (ask === null) {
      if (route === 'cluster-then-upstream') return viaUpstream();
      return errorReply(message, DnsRcode.SERVFAIL);
    }
    const answer = await this.cached(message, 'cluster', () => ask(query));
    if (route === 'cluster-then-upstream' && rcodeOf(answer.readUInt16BE(2)) === DnsRcode.NXDOMAIN) return viaUpstream();
    return answer;
  }

  private cached(message: DnsMessage, route: string, fetch: () => Promise<Buffer>): Promise<Buffer> {
    const key = cacheKey(message, route);
    if (key === null) return fetch();
    return this.cache.lookup(key, message.id, this.now(), async () => {
      const bytes = await fetch();
      return { bytes, message: parseDnsMessage(bytes) };
    });
  }
}

function formatError(query: Buffer): Buffer {
  const reply = Buffer.alloc(12);
  if (query.length >= 2) query.copy(reply, 0, 0, 2);
  reply.writeUInt16BE(DnsFlag.QR | DnsRcode.FORMERR, 2);
  return reply;
}
