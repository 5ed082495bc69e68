import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatIp } from '../../../src/netstack/wire/ip-address.js';
import { emitIpv4Header, IPV4_HEADER_LEN, parseIpv4, type Ipv4HeaderFields } from '../../../src/netstack/wire/ipv4.js';
import { IpProtocol, WireError } from '../../../src/netstack/wire/reprs.js';

const v4 = fc.uint8Array({ minLength: 4, maxLength: 4 });
const fields = fc.record({
  src: v4,
  dst: v4,
  protocol: fc.nat(255),
  ttl: fc.nat(255),
  identification: fc.nat(0xffff),
  dontFragment: fc.boolean(),
  moreFragments: fc.boolean(),
  fragmentOffset: fc.nat(0x1fff).map((n) => n * 8),
  tos: fc.nat(255),
});

function onlyWireErrors(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof WireError, `threw ${String(error)}`);
  }
}

test('Wikipedia/RFC 1071 example header: checksum b861 verifies and is reproduced', () => {
  const packet = Buffer.alloc(0x73);
  Buffer.from('450000730000400040' + '11b861c0a80001c0a800c7', 'hex').copy(packet);
  const repr = parseIpv4(packet);
  assert.equal(formatIp(repr.src), '192.168.0.1');
  assert.equal(formatIp(repr.dst), '192.168.0.199');
  assert.equal(repr.protocol, IpProtocol.UDP);
  assert.ok(repr.dontFragment);
  assert.equal(repr.payload.length, 0x73 - 20);
  const out = Buffer.alloc(20);
  emitIpv4Header({ ...repr, payloadLength: repr.payload.length }, out, 0);
  assert.equal(out.toString('hex'), packet.subarray(0, 20).toString('hex'));
});

test('emit then parse gives back every field, and the payload stops at the total length', () => {
  fc.assert(
    fc.property(fields, fc.uint8Array({ maxLength: 64 }), fc.nat(5), fc.nat(8), (h, payload, padding, at) => {
      const out = Buffer.alloc(at + IPV4_HEADER_LEN + payload.length + padding, 0xee);
      const full: Ipv4HeaderFields = { ...h, payloadLength: payload.length };
      assert.equal(emitIpv4Header(full, out, at), 20);
      out.set(payload, at + 20);
      const repr = parseIpv4(out.subarray(at));
      const { payload: parsed, headerLength, ...rest } = repr;
      assert.deepEqual({ ...rest, src: [...rest.src], dst: [...rest.dst] }, { ...h, src: [...h.src], dst: [...h.dst] });
      assert.equal(headerLength, 20);
      assert.deepEqual([...parsed], [...payload]);
    }),
  );
});

test('a flipped header bit fails the checksum unless verification is off', () => {
  fc.assert(
    fc.property(fields, fc.nat(20 * 8 - 1), (h, bit) => {
      const out = Buffer.alloc(20);
      emitIpv4Header({ ...h, payloadLength: 0 }, out, 0);
      out[bit >>> 3]! ^= 0x80 >>> (bit & 7);
      // Bits in version, header length and total length fail earlier checks; all must throw.
      assert.throws(() => parseIpv4(out), WireError);
      if (bit >= 32) assert.ok(parseIpv4(out, false));
    }),
  );
});

test('options are skipped: the payload starts after the header length', () => {
  const packet = Buffer.alloc(24 + 4);
  emitIpv4Header({ src: Uint8Array.of(1, 2, 3, 4), dst: Uint8Array.of(5, 6, 7, 8), protocol: 6, ttl: 64, payloadLength: 8 }, packet, 0);
  packet[0] = 0x46;
  packet.writeUInt32BE(0x94040000, 20); // Router Alert
  packet.write('data', 24);
  packet.writeUInt16BE(0, 10);
  let sum = 0;
  for (let i = 0; i < 24; i += 2) sum += packet.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  packet.writeUInt16BE(~sum & 0xffff, 10);
  const repr = parseIpv4(packet);
  assert.equal(repr.headerLength, 24);
  assert.equal(repr.payload.toString(), 'data');
});

test('truncated and inconsistent headers are refused with their codes', () => {
  const good = Buffer.alloc(28);
  emitIpv4Header({ src: Uint8Array.of(1, 2, 3, 4), dst: Uint8Array.of(5, 6, 7, 8), protocol: 17, ttl: 1, payloadLength: 8 }, good, 0);
  const code = (buf: Buffer) => {
    try {
      parseIpv4(buf, false);
      return 'ok';
    } catch (error) {
      return (error as WireError).code;
    }
  };
  assert.equal(code(good), 'ok');
  assert.equal(code(good.subarray(0, 19)), 'TRUNCATED');
  assert.equal(code(good.subarray(0, 27)), 'TRUNCATED');
  const v6 = Buffer.from(good);
  v6[0] = 0x65;
  assert.equal(code(v6), 'BAD_VERSION');
  const shortIhl = Buffer.from(good);
  shortIhl[0] = 0x44;
  assert.equal(code(shortIhl), 'BAD_HEADER_LENGTH');
  const longIhl = Buffer.from(good);
  longIhl[0] = 0x48;
  assert.equal(code(longIhl), 'BAD_LENGTH');
});

test('random bytes throw nothing but WireError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (bytes, verify) => {
      const buf = Buffer.from(bytes);
      if (buf.length > 0) buf[0] = (buf[0]! & 0x0f) | 0x40;
      onlyWireErrors(() => parseIpv4(buf, verify));
    }),
  );
});

test('emit refuses what the header cannot express', () => {
  const h = { src: Uint8Array.of(1, 2, 3, 4), dst: Uint8Array.of(5, 6, 7, 8), protocol: 6, ttl: 64 };
  const out = Buffer.alloc(20);
  assert.throws(() => emitIpv4Header({ ...h, payloadLength: 65516 }, out, 0), WireError);
  assert.throws(() => emitIpv4Header({ ...h, payloadLength: 0, fragmentOffset: 4 }, out, 0), WireError);
  assert.throws(() => emitIpv4Header({ ...h, src: new Uint8Array(16), payloadLength: 0 }, out, 0), WireError);
});
