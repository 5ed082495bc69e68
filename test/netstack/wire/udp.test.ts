import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { finishChecksum, onesComplementSum, pseudoHeaderSum } from '../../../src/netstack/wire/checksum.js';
import { parseIpv6 } from '../../../src/netstack/wire/ipv6.js';
import { IpProtocol, WireError, type UdpRepr } from '../../../src/netstack/wire/reprs.js';
import { emitUdp, parseUdp } from '../../../src/netstack/wire/udp.js';

const datagram: fc.Arbitrary<UdpRepr> = fc.record({
  srcPort: fc.nat(0xffff),
  dstPort: fc.nat(0xffff),
  payload: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
});
const addresses = fc.oneof(
  fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 4, maxLength: 4 })),
  fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 16, maxLength: 16 })),
);

function plain(repr: UdpRepr): object {
  return { ...repr, payload: [...repr.payload] };
}

function code(run: () => unknown): string {
  try {
    run();
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof WireError, `threw ${String(error)}`);
    return error.code;
  }
}

test('known answer: the DNS query in an IPv6 packet verifies (checksum ba68 from Python)', () => {
  const hex =
    '612abcde00350040fd100000000000000000000000000001fd10009600000000000000000000000a3c00010400000000' +
    '1100010400000000cf0800350025ba68abcd01000001000000000000076578616d706c6503636f6d0000010001';
  const ip = parseIpv6(Buffer.from(hex, 'hex'));
  const pseudo = pseudoHeaderSum(ip.src, ip.dst, IpProtocol.UDP, ip.payload.length);
  const repr = parseUdp(ip.payload, pseudo);
  assert.equal(repr.srcPort, 53000);
  assert.equal(repr.dstPort, 53);
  assert.equal(repr.payload.length, 29);
  const out = Buffer.alloc(37);
  emitUdp(repr, out, 0, pseudo, 'full');
  assert.equal(out.readUInt16BE(6), 0xba68);
});

test('emit then parse gives back the datagram, ignoring bytes after the UDP length', () => {
  fc.assert(
    fc.property(datagram, addresses, fc.nat(5), fc.nat(5), (repr, [src, dst], at, trailing) => {
      const length = 8 + repr.payload.length;
      const out = Buffer.alloc(at + length + trailing, 0xaa);
      assert.equal(emitUdp(repr, out, at, pseudoHeaderSum(src, dst, IpProtocol.UDP, length), 'full'), length);
      // The receiver knows only the IP payload length, trailing bytes included.
      const ipPayload = out.subarray(at);
      const parsed = parseUdp(ipPayload, pseudoHeaderSum(src, dst, IpProtocol.UDP, ipPayload.length));
      assert.deepEqual(plain(parsed), plain(repr));
    }),
  );
});

test('a flipped bit fails the checksum', () => {
  fc.assert(
    fc.property(datagram, addresses, fc.nat(), (repr, [src, dst], seed) => {
      const length = 8 + repr.payload.length;
      const out = Buffer.alloc(length);
      const pseudo = pseudoHeaderSum(src, dst, IpProtocol.UDP, length);
      emitUdp(repr, out, 0, pseudo, 'full');
      const bit = seed % (length * 8);
      out[bit >>> 3]! ^= 0x80 >>> (bit & 7);
      if (out.readUInt16BE(6) === 0) return; // the flip turned the checksum off: nothing to verify
      assert.throws(() => parseUdp(out, pseudo), WireError);
    }),
  );
});

test('a zero checksum field means none; a computed zero is sent as 0xffff', () => {
  const out = Buffer.alloc(10);
  emitUdp({ srcPort: 1, dstPort: 2, payload: Buffer.from('hi') }, out, 0, 0, 'full');
  out.writeUInt16BE(0, 6);
  assert.equal(parseUdp(out, 1234).payload.toString(), 'hi');
  // Choose a pseudo sum that makes the total sum 0xffff, so the checksum computes to 0.
  const payload = Buffer.alloc(2);
  const header = Buffer.from([0, 1, 0, 2, 0, 10, 0, 0]);
  const pseudo = finishChecksum(onesComplementSum(Buffer.concat([header, payload]), 0, 10));
  const zeroed = Buffer.alloc(10);
  emitUdp({ srcPort: 1, dstPort: 2, payload }, zeroed, 0, pseudo, 'full');
  assert.equal(zeroed.readUInt16BE(6), 0xffff);
  assert.equal(parseUdp(zeroed, pseudo).srcPort, 1);
});

test("'partial' mode writes the folded pseudo-header sum", () => {
  fc.assert(
    fc.property(datagram, addresses, (repr, [src, dst]) => {
      const length = 8 + repr.payload.length;
      const pseudo = pseudoHeaderSum(src, dst, IpProtocol.UDP, length);
      const out = Buffer.alloc(length);
      emitUdp(repr, out, 0, pseudo, 'partial');
      assert.equal(out.readUInt16BE(6), pseudo);
      const full = Buffer.alloc(length);
      emitUdp(repr, full, 0, pseudo, 'full');
      assert.equal(finishChecksum(onesComplementSum(out, 0, length)) || 0xffff, full.readUInt16BE(6));
    }),
  );
});

test('truncated and inconsistent lengths are refused', () => {
  assert.equal(code(() => parseUdp(Buffer.alloc(7), null)), 'TRUNCATED');
  const out = Buffer.alloc(12);
  out.writeUInt16BE(7, 4);
  assert.equal(code(() => parseUdp(out, null)), 'BAD_LENGTH');
  out.writeUInt16BE(13, 4);
  assert.equal(code(() => parseUdp(out, null)), 'TRUNCATED');
  out.writeUInt16BE(12, 4);
  assert.equal(code(() => parseUdp(out, null)), 'ok');
});

test('random bytes throw nothing but WireError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), fc.option(fc.nat(0xffff)), (bytes, pseudo) => {
      code(() => parseUdp(Buffer.from(bytes), pseudo));
    }),
  );
});
