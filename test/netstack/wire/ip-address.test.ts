import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  formatIp,
  formatPrefix,
  ipEquals,
  ipKey,
  parseIp,
  parsePrefix,
  prefixContains,
} from '../../../src/netstack/wire/ip-address.js';
import { WireError } from '../../../src/netstack/wire/reprs.js';

const address = fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 }));
/** IPv6 addresses with long zero runs, where compression rules matter. */
const sparseV6 = fc
  .array(fc.constantFrom(0, 0, 0, 1, 0xffff, 0xabc), { minLength: 8, maxLength: 8 })
  .map((groups) => Uint8Array.from(groups.flatMap((g) => [g >>> 8, g & 0xff])));

test('RFC 5952 examples format as the RFC says', () => {
  const cases: Array<[string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['fd10:96:0:0:0:0:0:A', 'fd10:96::a'],
    ['::ffff:198.18.0.1', '::ffff:198.18.0.1'],
    ['1::', '1::'],
  ];
  for (const [input, expected] of cases) assert.equal(formatIp(parseIp(input)), expected, input);
  assert.equal(formatIp(parseIp('10.96.0.15')), '10.96.0.15');
});

test('every address formats and parses back to itself', () => {
  fc.assert(
    fc.property(fc.oneof(address, sparseV6), (addr) => {
      assert.ok(ipEquals(parseIp(formatIp(addr)), addr));
    }),
  );
});

test('malformed text is refused with a WireError', () => {
  for (const text of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', 'a.b.c.d', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', ':::', 'fe80::1%eth0', '1:2:3:4:5:6:7', '::1.2.3']) {
    assert.throws(() => parseIp(text), WireError, text);
  }
});

test('arbitrary strings parse or throw only WireError', () => {
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'0123456789abcdef:.x/'.split('')), maxLength: 45 }), (text) => {
      try {
        parseIp(text);
        parsePrefix(text);
      } catch (error) {
        assert.ok(error instanceof WireError, String(error));
      }
    }),
  );
});

test('ipKey is equal exactly when the addresses are', () => {
  fc.assert(
    fc.property(address, address, (a, b) => {
      assert.equal(ipKey(a) === ipKey(b), ipEquals(a, b));
      assert.equal(ipKey(a), ipKey(Uint8Array.from(a)));
    }),
  );
});

test('prefixes clear host bits and contain exactly the addresses that share the prefix bits', () => {
  const p = parsePrefix('10.96.7.9/12');
  assert.equal(formatPrefix(p), '10.96.0.0/12');
  assert.ok(prefixContains(p, parseIp('10.111.255.255')));
  assert.ok(!prefixContains(p, parseIp('10.112.0.0')));
  assert.ok(!prefixContains(p, parseIp('::ffff:10.96.0.1')));
  assert.equal(formatPrefix(parsePrefix('fd10:244::1/56')), 'fd10:244::/56');
  assert.equal(formatPrefix(parsePrefix('fd10:96::5')), 'fd10:96::5/128');
  assert.ok(prefixContains(parsePrefix('0.0.0.0/0'), parseIp('198.18.0.1')));
  for (const text of ['10.0.0.0/33', '10.0.0.0/', '10.0.0.0/-1', 'fd10::/129', '10.0.0.0/08']) {
    assert.throws(() => parsePrefix(text), WireError, text);
  }
});

test('prefixContains agrees with a bit-by-bit comparison', () => {
  fc.assert(
    fc.property(address, fc.nat(128), fc.nat(128), (addr, rawLength, flip) => {
      const length = rawLength % (addr.length * 8 + 1);
      const prefix = parsePrefix(`${formatIp(addr)}/${length}`);
      const other = Uint8Array.from(addr);
      const bit = flip % (addr.length * 8);
      other[bit >>> 3]! ^= 0x80 >>> (bit & 7);
      assert.ok(prefixContains(prefix, addr));
      assert.equal(prefixContains(prefix, other), bit >= length);
    }),
  );
});
