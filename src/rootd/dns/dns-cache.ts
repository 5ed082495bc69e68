// Answers kept for their TTL (capped short: the cluster changes under us) and single-flight: identical queries
// that arrive while one is on its way share its answer instead of each going to the manager or the upstream.
import { DnsType, lowerAscii, nameBytes, rcodeOf, type DnsMessage, type DnsQuestion } from '../../dns/dns-message.js';

interface Entry {
  response: Buffer;
  expires: number;
}

export interface DnsCacheLimits {
  maxTtlSeconds: number;
  negativeTtlSeconds: number;
  maxEntries: number;
}

const DEFAULTS: DnsCacheLimits = { maxTtlSeconds: 30, negativeTtlSeconds: 5, maxEntries: 4096 };

/**
 * The question's name in wire form (length-prefixed labels, so the single label "www.github.com" never meets the
 * three labels www.github.com), ASCII lower-cased (RFC 4343: only A-Z fold; length bytes are below 'A').
 */
export function cacheKey(question: DnsQuestion, route: string): string {
  return `${lowerAscii(nameBytes(question.name).toString('latin1'))}|${question.type}|${question.class}|${route}`;
}

/** Seconds the answer may be reused: the smallest TTL among its answers, the SOA minimum for a negative one. */
export function cacheSeconds(response: DnsMessage, limits: DnsCacheLimits): number {
  const rcode = rcodeOf(response.flags);
  if (rcode !== 0 && rcode !== 3) return 0;
  if (response.answers.length === 0) {
    const soa = response.authorities.find((r) => r.type === DnsType.SOA);
    return Math.min(soa?.ttl ?? limits.negativeTtlSeconds, limits.negativeTtlSeconds);
  }
  return Math.min(limits.maxTtlSeconds, ...response.answers.map((r) => r.ttl));
}

export class DnsCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<Buffer>>();
  private readonly limits: DnsCacheLimits;
  hits = 0;
  misses = 0;

  constructor(limits: Partial<DnsCacheLimits> = {}) {
    this.limits = { ...DEFAULTS, ...limits };
  }

  /**
   * The cached response for key (with the caller's id), or the one `fetch` produces — started once for all
   * concurrent callers of the same key. `now` is in ms.
   */
  async lookup(key: string, id: number, now: number, fetch: () => Promise<{ bytes: Buffer; message: DnsMessage }>): Promise<Buffer> {
    const cached = this.entries.get(key);
    if (cached !== undefined && cached.expires > now) {
      this.hits++;
      return withId(cached.response, id);
    }
    this.misses++;
    let pending = this.inFlight.get(key);
    if (pending === undefined) {
      pending = fetch().then(({ bytes, message }) => {
        const seconds = cacheSeconds(message, this.limits);
        if (seconds > 0) this.store(key, bytes, now + seconds * 1000);
        return bytes;
      });
      this.inFlight.set(key, pending);
      const forget = (): void => void this.inFlight.delete(key);
      pending.then(forget, forget);
    }
    return withId(await pending, id);
  }

  clear(): void {
    this.entries.clear();
  }

  private store(key: string, response: Buffer, expires: number): void {
    if (this.entries.size >= this.limits.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, { response, expires });
  }
}

function withId(response: Buffer, id: number): Buffer {
  const copy = Buffer.from(response);
  copy.writeUInt16BE(id, 0);
  return copy;
}
