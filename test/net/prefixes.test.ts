import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { prefixContains, formatPrefix, parsePrefix, type IpPrefix } from '../../src/netstack/wire/ip-address.js';
import { prefixCovers, prefixesOverlap, subtractPrefixes } from '../../src/net/prefixes.js';

const v4Prefix = fc
  .tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 8, max: 28 }))
  .map(([bytes, length]) => parsePrefix(`${bytes.join('.')}/${length}`));

function addressesOf(p: IpPrefix, sample: number[]): Uint8Array[] {
  // Sample addresses inside p by setting host bits from the given numbers.
  const base = new DataView(p.address.buffer, p.address.byteOffset, 4).getUint32(0);
  const hostBits = 32 - p.length;
  return sample.map((n) => {
    const host = hostBits === 0 ? 0 : n % 2 ** hostBits;
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, (base + host) >>> 0);
    return out;
  });
}

test('subtracting leaves exactly the addresses in from and in none of remove, as disjoint prefixes', () => {
  fc.assert(
    fc.property(v4Prefix, fc.array(v4Prefix, { maxLength: 3 }), fc.array(fc.nat(), { minLength: 20, maxLength: 20 }), (from, remove, sample) => {
      const rest = subtractPrefixes(from, remove);
      for (const address of addressesOf(from, sample)) {
        const removed = remove.some((r) => prefixContains(r, address));
        const kept = rest.filter((p) => prefixContains(p, address)).length;
        assert.equal(kept, removed ? 0 : 1, `${address.join('.')} in ${rest.map(formatPrefix)}`);
      }
      for (const p of rest) assert.ok(prefixCovers(from, p));
    }),
  );
});

test('subtraction examples', () => {
  const f = (s: string): IpPrefix => parsePrefix(s);
  assert.deepEqual(subtractPrefixes(f('10.96.0.0/12'), [f('10.96.0.0/12')]), []);
  assert.deepEqual(subtractPrefixes(f('10.96.0.0/12'), [f('192.168.0.0/16')]).map(formatPrefix), ['10.96.0.0/12']);
  assert.deepEqual(subtractPrefixes(f('10.0.0.0/8'), [f('10.128.0.0/9')]).map(formatPrefix), ['10.0.0.0/9']);
  assert.equal(subtractPrefixes(f('10.96.0.0/12'), [f('10.100.1.0/24')]).length, 12);
});

test('overlap is symmetric and means a common address', () => {
  const f = (s: string): IpPrefix => parsePrefix(s);
  assert.ok(prefixesOverlap(f('10.0.0.0/8'), f('10.96.0.0/12')));
  assert.ok(prefixesOverlap(f('10.96.0.0/12'), f('10.0.0.0/8')));
  assert.ok(!prefixesOverlap(f('10.96.0.0/12'), f('10.244.0.0/16')));
  assert.ok(!prefixesOverlap(f('10.0.0.0/8'), f('fd10::/64')));
});
