// Set arithmetic on IP prefixes: which cluster subnets overlap local routes, and what is left of a subnet once
// some parts are excluded (`--never-proxy`). Prefixes are compared as bit strings; IPv4 and IPv6 never overlap.
import { prefixContains, type IpPrefix } from '../netstack/wire/ip-address.js';

/** a and b share at least one address: one contains the other's network address and is no longer than it. */
export function prefixesOverlap(a: IpPrefix, b: IpPrefix): boolean {
  if (a.address.length !== b.address.length) return false;
  return a.length <= b.length ? prefixContains(a, b.address) : prefixContains(b, a.address);
}

/** a contains every address of b. */
export function prefixCovers(a: IpPrefix, b: IpPrefix): boolean {
  return a.address.length === b.address.length && a.length <= b.length && prefixContains(a, b.address);
}

function withBit(p: IpPrefix, bitIndex: number, value: 0 | 1): Uint8Array {
  const address = Uint8Array.from(p.address);
  const byte = bitIndex >> 3;
  const mask = 0x80 >> (bitIndex & 7);
  address[byte] = value === 1 ? address[byte]! | mask : address[byte]! & ~mask;
  return address;
}

/** The two halves of a prefix one bit longer. */
export function splitPrefix(p: IpPrefix): [IpPrefix, IpPrefix] {
  return [
    { address: withBit(p, p.length, 0), length: p.length + 1 },
    { address: withBit(p, p.length, 1), length: p.length + 1 },
  ];
}

/** The addresses of `from` that are in none of `remove`, as the fewest prefixes. */
export function subtractPrefixes(from: IpPrefix, remove: readonly IpPrefix[]): IpPrefix[] {
  const relevant = remove.filter((r) => prefixesOverlap(from, r));
  if (relevant.length === 0) return [from];
  if (relevant.some((r) => prefixCovers(r, from))) return [];
  const [low, high] = splitPrefix(from);
  return [...subtractPrefixes(low, relevant), ...subtractPrefixes(high, relevant)];
}
