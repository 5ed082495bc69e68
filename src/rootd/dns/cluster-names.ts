// Which DNS names belong to the cluster. The cluster domain and anything under a `svc` label go to the traffic
// manager; single labels too (the manager applies the client's namespace search path); `name.namespace` is
// ambiguous — it is asked of the cluster first and, if the cluster says NXDOMAIN, of the original resolver, so
// non-cluster names keep working. Reverse lookups of cluster addresses go to the cluster.
import { prefixContains, type IpPrefix } from '../../netstack/wire/ip-address.js';
import { nameEndsWith, textToName, type DnsName } from '../../dns/dns-message.js';

export type NameRoute = 'cluster' | 'cluster-then-upstream' | 'upstream';

export interface ClusterDnsFacts {
  clusterDomain: string;
  /** Subnets whose reverse (PTR) names are the cluster's. */
  subnets: readonly IpPrefix[];
}

const IN_ADDR = ['in-addr', 'arpa'];
const IP6 = ['ip6', 'arpa'];

function reverseAddress(name: DnsName): Uint8Array | null {
  const lower = name.map((l) => l.toLowerCase());
  if (nameEndsWith(lower, IN_ADDR) && lower.length === 6) {
    const bytes = lower.slice(0, 4).reverse().map(Number);
    return bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 255) ? Uint8Array.from(bytes) : null;
  }
  if (nameEndsWith(lower, IP6) && lower.length === 34) {
    const nibbles = lower.slice(0, 32).reverse();
    if (!nibbles.every((n) => /^[0-9a-f]$/.test(n))) return null;
    const out = new Uint8Array(16);
    for (let i = 0; i < 16; i++) out[i] = parseInt(nibbles[2 * i]! + nibbles[2 * i + 1]!, 16);
    return out;
  }
  return null;
}

export function routeName(name: DnsName, facts: ClusterDnsFacts): NameRoute {
  if (name.length === 0) return 'upstream';
  if (nameEndsWith(name, textToName(facts.clusterDomain))) return 'cluster';
  const reverse = reverseAddress(name);
  if (reverse !== null) return facts.subnets.some((s) => prefixContains(s, reverse)) ? 'cluster' : 'upstream';
  if (name.length === 1) return 'cluster';
  if (name.length === 3 && name[2]!.toLowerCase() === 'svc') return 'cluster';
  if (name.length === 2) return 'cluster-then-upstream';
  return 'upstream';
}
