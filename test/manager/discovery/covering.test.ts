// Covering prefixes for pod IPs and ClusterIPs (IPv4 and IPv6), and their aggregation, as properties.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { prefixesOverlap } from '../../../src/net/prefixes.js';
import { formatPrefix, parseIp, parsePrefix, prefixContains, type IpPrefix } from '../../../src/netstack/wire/ip-address.js';
import { aggregatePrefixes, coverIps } from '../../../src/manager/discovery/covering.js';

// Addresses drawn from a few /16s (and /64s) so that groups get several members and siblings occur.
const v4 = fc
  .tuple(fc.constantFrom(0, 1, 2, 3), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }))
  .map(([b, c, d]) => Uint8Array.of(10, 244 + b, c, d));
const v6 = fc
  .tuple(fc.constantFrom(0, 1), fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.boolean())
  .map(([b, tail, narrow]) => {
    const out = parseIp(`fd10:244:0:${b}::`);
    out.set(tail, 8);
    if (narrow) out.fill(0, 8, 14); // many addresses share a long prefix, as pod IPs do
    return out;
  });
const ips = fc.array(fc.oneof(v4, v6), { minLength: 1, maxLength: 40 });

const family = (p: IpPrefix): { group: number; longest: number } => (p.address.length === 4 ? { group: 16, longest: 24 } : { group: 64, longest: 120 });

function halves(p: IpPrefix): [IpPrefix, IpPrefix] {
  const high = Uint8Array.from(p.address);
  high[p.length >> 3]! |= 0x80 >> (p.length & 7);
  return [
    { address: p.address, length: p.length + 1 },
    { address: high, length: p.length + 1 },
  ];
}

function assertDisjoint(prefixes: IpPrefix[]): void {
  for (let i = 0; i < prefixes.length; i++) {
    for (let j = i + 1; j < prefixes.length; j++) {
      assert.ok(!prefixesOverlap(prefixes[i]!, prefixes[j]!), `${formatPrefix(prefixes[i]!)} overlaps ${formatPrefix(prefixes[j]!)}`);
    }
  }
}

function assertNoSiblings(prefixes: IpPrefix[]): void {
  const keys = new Set(prefixes.map(formatPrefix));
  for (const p of prefixes) {
    if (p.length === 0) continue;
    const parent = parsePrefix(`${formatPrefix({ address: p.address, length: p.length - 1 }).split('/')[0]}/${p.length - 1}`);
    const [low, high] = halves(parent);
    assert.ok(!(keys.has(formatPrefix(low)) && keys.has(formatPrefix(high))), `${formatPrefix(parent)} should be one prefix`);
  }
}

test('every IP is covered by exactly one prefix, and no two prefixes overlap or could merge', () => {
  fc.assert(
    fc.property(ips, (list) => {
      const cover = coverIps(list);
      for (const ip of list) assert.equal(cover.filter((p) => prefixContains(p, ip)).length, 1);
      assertDisjoint(cover);
      assertNoSiblings(cover);
    }),
  );
});

test('the cover is tight: a prefix shorter than /24 (/120) has IPs in both of its halves', () => {
  fc.assert(
    fc.property(ips, (list) => {
      for (const p of coverIps(list)) {
        if (p.length >= family(p).longest) continue;
        for (const half of halves(p)) {
          assert.ok(list.some((ip) => prefixContains(half, ip)), `${formatPrefix(half)} of ${formatPrefix(p)} holds no IP`);
        }
      }
    }),
  );
});

test('prefixes are never longer than /24 (/120), and the cover does not depend on the order of the IPs', () => {
  fc.assert(
    fc.property(ips, fc.nat(), (list, seed) => {
      const cover = coverIps(list);
      for (const p of cover) assert.ok(p.length <= family(p).longest);
      const shuffled = [...list].sort((a, b) => ((a[3]! * 31 + seed) % 7) - ((b[3]! * 31 + seed) % 7));
      assert.deepEqual(coverIps(shuffled).map(formatPrefix), cover.map(formatPrefix));
    }),
  );
});

test('examples: pods of one node give its /24, pods in two /16s give two prefixes, sibling /24s merge', () => {
  const cover = (texts: string[]): string[] => coverIps(texts.map(parseIp)).map(formatPrefix);
  assert.deepEqual(cover(['10.244.1.5', '10.244.1.9']), ['10.244.1.0/24']);
  assert.deepEqual(cover(['10.244.0.5', '10.244.1.9']), ['10.244.0.0/23']);
  assert.deepEqual(cover(['10.244.0.5', '10.244.3.9']), ['10.244.0.0/22']);
  assert.deepEqual(cover(['10.244.1.5', '10.245.1.9']), ['10.244.1.0/24', '10.245.1.0/24']);
  assert.deepEqual(cover(['10.244.1.5', '10.244.0.7', '10.244.2.1', '10.244.3.1']), ['10.244.0.0/22']);
  assert.deepEqual(cover(['fd10:244::1:5', 'fd10:244::1:9']), ['fd10:244::1:0/120']);
  assert.deepEqual(cover(['fd10:244::1:5', 'fd10:244::2:9']), ['fd10:244::/110']);
  assert.deepEqual(cover(['10.244.1.5', 'fd10:244::1:5']), ['10.244.1.0/24', 'fd10:244::1:0/120']);
  assert.deepEqual(cover([]), []);
});

test('aggregation keeps exactly the same addresses as the input, as disjoint prefixes with no mergeable pair', () => {
  const v4Prefix = fc
    .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 14, max: 26 }))
    .map(([b, c, length]) => parsePrefix(`10.${244 + b}.${c}.0/${length}`));
  fc.assert(
    fc.property(fc.array(v4Prefix, { maxLength: 12 }), fc.array(v4, { minLength: 30, maxLength: 30 }), (input, probes) => {
      const out = aggregatePrefixes(input);
      // Probe with addresses near and inside the inputs as well as random ones.
      const samples = [...probes, ...input.map((p) => p.address)];
      for (const ip of samples) {
        assert.equal(out.some((p) => prefixContains(p, ip)), input.some((p) => prefixContains(p, ip)), `${ip.join('.')}`);
      }
      assertDisjoint(out);
      assertNoSiblings(out);
      assert.deepEqual(aggregatePrefixes(out).map(formatPrefix), out.map(formatPrefix));
    }),
  );
});

test('aggregation examples: covered prefixes dropped, siblings merged repeatedly, IPv4 before IPv6', () => {
  const agg = (texts: string[]): string[] => aggregatePrefixes(texts.map(parsePrefix)).map(formatPrefix);
  assert.deepEqual(agg(['10.244.1.0/24', '10.244.0.0/16']), ['10.244.0.0/16']);
  assert.deepEqual(agg(['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/23']), ['10.244.0.0/22']);
  assert.deepEqual(agg(['fd10:244::/64', '10.244.0.0/24', '10.244.0.0/24']), ['10.244.0.0/24', 'fd10:244::/64']);
  assert.deepEqual(agg(['0.0.0.0/1', '128.0.0.0/1']), ['0.0.0.0/0']);
});
