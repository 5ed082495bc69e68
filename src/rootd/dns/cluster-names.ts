// Which DNS names belong to the cluster: names under the cluster domain, names ending in a `svc` label, reverse
// names of the cluster's subnets, and `name.namespace` for a namespace the manager reported — unless the name is
// under a public suffix (a Service `google` in a namespace `com` must never answer for google.com). Nothing else
// ever leaves for the cluster: a bare single label goes upstream too, since glibc applies the search list itself.
import { prefixContains, type IpPrefix } from '../../netstack/wire/ip-address.js';
import { lowerAscii, nameEndsWith, textToName, type DnsName } from '../../dns/dns-message.js';

export type NameRoute = 'cluster' | 'upstream';

export interface ClusterDnsFacts {
  clusterDomain: string;
  /** Subnets whose reverse (PTR) names are the cluster's. */
  subnets: readonly IpPrefix[];
  /** The cluster's namespaces as the manager reported them; none: no `name.namespace` goes to the cluster. */
  namespaces?: readonly string[];
}

/** Telepresence's default `dns.excludeSuffixes`: top-level domains no cluster name may shadow. */
export const EXCLUDED_SUFFIXES: readonly string[] = ['arpa', 'com', 'io', 'net', 'org', 'ru'];
const EXCLUDED = new Set(EXCLUDED_SUFFIXES);

const IN_ADDR = ['in-addr', 'arpa'];
const IP6 = ['ip6', 'arpa'];

function reverseAddress(name: DnsName): Uint8Array | null {
  const lower = name.map(lowerAscii);
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

/** The reported namespaces as a set, built once per list the manager sent (facts are read for every query). */
const namespaceSets = new WeakMap<readonly string[], ReadonlySet<string>>();
function namespaceSet(namespaces: readonly string[]): ReadonlySet<string> {
  let set = namespaceSets.get(namespaces);
  if (set === undefined) {
    set = new Set(namespaces.map(lowerAscii));
    namespaceSets.set(namespaces, set);
  }
  return set;
}

export function routeName(name: DnsName, facts: ClusterDnsFacts): NameRoute {
  if (name.length < 2) return 'upstream';
  if (nameEndsWith(name, textToName(facts.clusterDomain))) return 'cluster';
  const reverse = reverseAddress(name);
  if (reverse !== null) return facts.subnets.some((s) => prefixContains(s, reverse)) ? 'cluster' : 'upstream';
  const last = lowerAscii(name[name.length - 1]!);
  if (last === 'svc') return 'cluster';
  if (EXCLUDED.has(last)) return 'upstream';
  return facts.namespaces !== undefined && namespaceSet(facts.namespaces).has(last) ? 'cluster' : 'upstream';
}
