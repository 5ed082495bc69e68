import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { finishChecksum, onesComplementSum, pseudoHeaderSum } from '../../../src/netstack/wire/checksum.js';
import { parseIp } from '../../../src/netstack/wire/ip-address.js';

/** RFC 1071 the slow way: 16-bit words, end-around carry after every addition. */
function naiveSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += (bytes[i]! << 8) | (i + 1 < bytes.length ? bytes[i + 1]! : 0);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return sum;
}

test('the sum equals the word-by-word RFC 1071 sum for any bytes, offset and initial value', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 600 }),
      fc.nat(7),
      fc.nat(0xffff),
      (bytes, pad, initial) => {
        const buf = new Uint8Array(pad + bytes.length);
        buf.set(bytes, pad);
        assert.equal(onesComplementSum(buf, pad, bytes.length, initial), naiveSum(bytes, initial));
      },
    ),
  );
});

test('the sum of large buffers (the word loop and its tail) matches the naive sum', () => {
  const buf = Buffer.alloc(65535 + 3);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 7919 + 13) & 0xff;
  for (const [offset, length] of [[0, 65535], [1, 65534], [2, 65533], [3, 1501], [0, 128], [1, 129]] as const) {
    assert.equal(onesComplementSum(buf, offset, length), naiveSum(buf.subarray(offset, offset + length)));
  }
});

test('sums over several fold chunks match the naive sum', () => {
  const buf = Buffer.alloc(3 * (1 << 22) + 1000, 0xff);
  assert.equal(onesComplementSum(buf, 0, buf.length), 0xffff);
  for (let i = 0; i < buf.length; i += 4099) buf[i] = i & 0xff;
  assert.equal(onesComplementSum(buf, 1, buf.length - 1, 0xfffe), naiveSum(buf.subarray(1), 0xfffe));
});

test('a buffer with its checksum written in sums to 0xffff', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 2, maxLength: 300 }), (bytes) => {
      const buf = Buffer.from(bytes);
      buf.writeUInt16BE(0, 0);
      buf.writeUInt16BE(finishChecksum(onesComplementSum(buf, 0, buf.length)), 0);
      assert.equal(onesComplementSum(buf, 0, buf.length), 0xffff);
    }),
  );
});

test('finishChecksum complements in 16 bits', () => {
  assert.equal(finishChecksum(0), 0xffff);
  assert.equal(finishChecksum(0xffff), 0);
  assert.equal(finishChecksum(0x1234), 0xedcb);
});

test('the IPv4 pseudo-header sum is the sum of src, dst, zero, protocol and 16-bit length', () => {
  const src = parseIp('10.0.0.1');
  const dst = parseIp('10.96.0.15');
  const header = Buffer.from([...src, ...dst, 0, 6, 0x01, 0x2c]);
  assert.equal(pseudoHeaderSum(src, dst, 6, 300), naiveSum(header));
});

test('the IPv6 pseudo-header sum uses a 32-bit length and 24 zero bits before the next header', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat(0x3ffff), (src, dst, length) => {
      const header = Buffer.alloc(40);
      header.set(src, 0);
      header.set(dst, 16);
      header.writeUInt32BE(length, 32);
      header[39] = 17;
      assert.equal(pseudoHeaderSum(src, dst, 17, length), naiveSum(header));
    }),
  );
});
