// Covering prefixes for the IPs the manager sees (pod IPs, ClusterIPs), in the manner of Telepresence's
// coverPodIPs: IPs are grouped by their /16 (IPv4) or /64 (IPv6), each group becomes the longest prefix holding all
// of its IPs but never longer than /24 (/120), since clusters hand out addresses in blocks and one new pod in the
// same block should not change the routes. The result is then aggregated: prefixes inside others dropped, sibling
// halves merged, so the client gets the fewest routes for exactly the same addresses.
import { prefixCovers, splitPrefix } from '../../net/prefixes.js';
import { ipKey, maskAddress, type IpPrefix } from '../../netstack/wire/ip-address.js';
import type { IpAddress } from '../../netstack/wire/reprs.js';

/** The group size and the longest prefix a group may narrow to, per address family (by byte length). */
const FAMILY: Record<number, { group: number; longest: number }> = {
  4: { group: 16, longest: 24 },
  16: { group: 64, longest: 120 },
};

function bit(address: IpAddress, index: number): number {
  return (address[index >> 3]! >> (7 - (index & 7))) & 1;
}

const masked = (address: IpAddress, length: number): IpAddress => maskAddress(Uint8Array.from(address), length);

function prefixKey(p: IpPrefix): string {
  return `${ipKey(p.address)}/${p.length}`;
}

/** Orders IPv4 before IPv6, then by address, then shorter prefixes first. */
export function comparePrefixes(a: IpPrefix, b: IpPrefix): number {
  if (a.address.length !== b.address.length) return a.address.length - b.address.length;
  for (let i = 0; i < a.address.length; i++) {
    if (a.address[i] !== b.address[i]) return a.address[i]! - b.address[i]!;
  }
  return a.length - b.length;
}

/** The fewest prefixes holding exactly the addresses of the given ones: covered ones dropped, siblings merged. */
export function aggregatePrefixes(prefixes: readonly IpPrefix[]): IpPrefix[] {
  const unique = new Map<string, IpPrefix>();
  for (const p of prefixes) {
    const clean = { address: masked(p.address, p.length), length: p.length };
    unique.set(prefixKey(clean), clean);
  }
  // Shorter first: each prefix is kept only if nothing kept before covers it.
  const sorted = [...unique.values()].sort((a, b) => a.length - b.length || comparePrefixes(a, b));
  let kept: IpPrefix[] = [];
  for (const p of sorted) if (!kept.some((k) => prefixCovers(k, p))) kept.push(p);
  // Merge sibling halves until none are left; a merge can create a new pair one level up.
  for (let merged = true; merged; ) {
    merged = false;
    const byKey = new Map(kept.map((p) => [prefixKey(p), p]));
    for (const p of kept) {
      if (p.length === 0 || !byKey.has(prefixKey(p))) continue;
      const parent = { address: masked(p.address, p.length - 1), length: p.length - 1 };
      const [lowKey, highKey] = splitPrefix(parent).map(prefixKey) as [string, string];
      if (byKey.has(lowKey) && byKey.has(highKey)) {
        byKey.delete(lowKey);
        byKey.delete(highKey);
        byKey.set(prefixKey(parent), parent);
        merged = true;
      }
    }
    kept = [...byKey.values()];
  }
  return kept.sort(comparePrefixes);
}

/** Prefixes covering every given IP (see the file comment for their size); duplicates are fine. */
export function coverIps(ips: readonly IpAddress[]): IpPrefix[] {
  const groups = new Map<string, { first: IpAddress; length: number }>();
  for (const ip of ips) {
    const family = FAMILY[ip.length];
    if (family === undefined) continue;
    const key = `${ip.length}:${ipKey(masked(ip, family.group))}`;
    const group = groups.get(key);
    if (group === undefined) {
      groups.set(key, { first: ip, length: family.longest });
      continue;
    }
    // Shorten the group's prefix to the bits this IP shares with the group's first IP.
    let length = family.group;
    while (length < group.length && bit(ip, length) === bit(group.first, length)) length++;
    group.length = length;
  }
  return aggregatePrefixes([...groups.values()].map((g) => ({ address: masked(g.first, g.length), length: g.length })));
}
