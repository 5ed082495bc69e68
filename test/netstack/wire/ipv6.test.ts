import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatIp, parseIp } from '../../../src/netstack/wire/ip-address.js';
import { emitIpv6Header, IPV6_HEADER_LEN, parseIpv6, parseIpv6Fragmentable } from '../../../src/netstack/wire/ipv6.js';
import { IpProtocol, WireError } from '../../../src/netstack/wire/reprs.js';

const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const header = fc.record({
  src: v6,
  dst: v6,
  nextHeader: fc.constantFrom(IpProtocol.TCP, IpProtocol.UDP, IpProtocol.ICMPV6, IpProtocol.IPV6_NO_NEXT, 50, 51, 200),
  hopLimit: fc.nat(255),
  trafficClass: fc.nat(255),
  flowLabel: fc.nat(0xfffff),
});

function code(run: () => unknown): string {
  try {
    run();
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof WireError, `threw ${String(error)}`);
    return error.code;
  }
}

/** An options or routing header: next header, length in 8-byte units minus one, then padding bytes. */
function optionsHeader(next: number, units: number): Buffer {
  const h = Buffer.alloc((units + 1) * 8);
  h[0] = next;
  h[1] = units;
  h[2] = 1; // PadN covering the rest
  h[3] = h.length - 4;
  return h;
}

function fragmentHeader(next: number, offset: number, more: boolean, id: number): Buffer {
  const h = Buffer.alloc(8);
  h[0] = next;
  h.writeUInt16BE(offset | (more ? 1 : 0), 2);
  h.writeUInt32BE(id, 4);
  return h;
}

function packet(firstNext: number, rest: Buffer): Buffer {
  const out = Buffer.alloc(IPV6_HEADER_LEN + rest.length);
  emitIpv6Header({ src: parseIp('fd10::1'), dst: parseIp('fd10:96::a'), nextHeader: firstNext, hopLimit: 64, payloadLength: rest.length }, out, 0);
  rest.copy(out, IPV6_HEADER_LEN);
  return out;
}

test('known answer: a DNS query behind hop-by-hop and destination options (checksum from Python)', () => {
  const hex =
    '612abcde00350040fd100000000000000000000000000001fd10009600000000000000000000000a3c00010400000000' +
    '1100010400000000cf0800350025ba68abcd01000001000000000000076578616d706c6503636f6d0000010001';
  const repr = parseIpv6(Buffer.from(hex, 'hex'));
  assert.equal(formatIp(repr.src), 'fd10::1');
  assert.equal(formatIp(repr.dst), 'fd10:96::a');
  assert.equal(repr.nextHeader, IpProtocol.UDP);
  assert.equal(repr.trafficClass, 0x12);
  assert.equal(repr.flowLabel, 0xabcde);
  assert.equal(repr.hopLimit, 64);
  assert.equal(repr.payload.length, 37);
  assert.equal(repr.payload.readUInt16BE(2), 53);
  assert.equal(repr.fragment, undefined);
});

test('emit then parse gives back every field', () => {
  fc.assert(
    fc.property(header, fc.uint8Array({ maxLength: 64 }), fc.nat(6), (h, payload, padding) => {
      const out = Buffer.alloc(IPV6_HEADER_LEN + payload.length + padding);
      assert.equal(emitIpv6Header({ ...h, payloadLength: payload.length }, out, 0), 40);
      out.set(payload, 40);
      const { src, dst, payload: parsed, ...rest } = parseIpv6(out);
      assert.deepEqual(rest, { nextHeader: h.nextHeader, hopLimit: h.hopLimit, trafficClass: h.trafficClass, flowLabel: h.flowLabel });
      assert.deepEqual([...src, ...dst], [...h.src, ...h.dst]);
      assert.deepEqual([...parsed], [...payload]);
    }),
  );
});

test('any chain of routing and destination options headers is walked to the upper layer', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom(IpProtocol.IPV6_ROUTING, IpProtocol.IPV6_DEST_OPTS), fc.nat(3)), { maxLength: 7 }),
      fc.boolean(),
      fc.uint8Array({ maxLength: 20 }),
      (chain, hopByHop, upper) => {
        const kinds = [...(hopByHop ? [[IpProtocol.HOP_BY_HOP, 0] as const] : []), ...chain];
        const parts = kinds.map(([, units], i) => optionsHeader(kinds[i + 1]?.[0] ?? IpProtocol.TCP, units));
        const repr = parseIpv6(packet(kinds[0]?.[0] ?? IpProtocol.TCP, Buffer.concat([...parts, upper])));
        assert.equal(repr.nextHeader, IpProtocol.TCP);
        assert.deepEqual([...repr.payload], [...upper]);
      },
    ),
  );
});

test('a fragment header reports offset, more-fragments and id and stops the walk', () => {
  const data = Buffer.from('fragment data...');
  const p = packet(IpProtocol.HOP_BY_HOP, Buffer.concat([optionsHeader(IpProtocol.IPV6_FRAGMENT, 0), fragmentHeader(IpProtocol.UDP, 1448, true, 0xdeadbeef), data]));
  const repr = parseIpv6(p);
  assert.deepEqual(repr.fragment, { offset: 1448, moreFragments: true, identification: 0xdeadbeef });
  assert.equal(repr.nextHeader, IpProtocol.UDP);
  assert.equal(repr.payload.toString(), data.toString());
});

test('an atomic fragment is walked past and not reported', () => {
  const repr = parseIpv6(packet(IpProtocol.IPV6_FRAGMENT, Buffer.concat([fragmentHeader(IpProtocol.IPV6_DEST_OPTS, 0, false, 7), optionsHeader(IpProtocol.TCP, 0), Buffer.from('x')])));
  assert.equal(repr.fragment, undefined);
  assert.equal(repr.nextHeader, IpProtocol.TCP);
  assert.equal(repr.payload.toString(), 'x');
});

test('AH, ESP and unknown headers are reported as they are', () => {
  for (const next of [50, 51, 253]) {
    const repr = parseIpv6(packet(IpProtocol.IPV6_DEST_OPTS, Buffer.concat([optionsHeader(next, 0), Buffer.from('opaque')])));
    assert.equal(repr.nextHeader, next);
    assert.equal(repr.payload.toString(), 'opaque');
  }
});

test('truncated, misplaced, too many and jumbo headers are refused with their codes', () => {
  const good = packet(IpProtocol.UDP, Buffer.alloc(8));
  assert.equal(code(() => parseIpv6(good)), 'ok');
  assert.equal(code(() => parseIpv6(good.subarray(0, 39))), 'TRUNCATED');
  assert.equal(code(() => parseIpv6(good.subarray(0, 47))), 'TRUNCATED');
  const v4 = Buffer.from(good);
  v4[0] = 0x45;
  assert.equal(code(() => parseIpv6(v4)), 'BAD_VERSION');
  const cutExtension = packet(IpProtocol.IPV6_ROUTING, optionsHeader(IpProtocol.TCP, 2).subarray(0, 16));
  assert.equal(code(() => parseIpv6(cutExtension)), 'TRUNCATED');
  assert.equal(code(() => parseIpv6(packet(IpProtocol.IPV6_FRAGMENT, Buffer.alloc(4)))), 'TRUNCATED');
  const lateHopByHop = packet(IpProtocol.IPV6_DEST_OPTS, Buffer.concat([optionsHeader(IpProtocol.HOP_BY_HOP, 0), optionsHeader(IpProtocol.TCP, 0)]));
  assert.equal(code(() => parseIpv6(lateHopByHop)), 'BAD_OPTION');
  const many = Array.from({ length: 9 }, (_, i) => optionsHeader(i < 8 ? IpProtocol.IPV6_DEST_OPTS : IpProtocol.TCP, 0));
  assert.equal(code(() => parseIpv6(packet(IpProtocol.IPV6_DEST_OPTS, Buffer.concat(many)))), 'UNSUPPORTED');
  const jumbo = packet(IpProtocol.HOP_BY_HOP, optionsHeader(IpProtocol.TCP, 0));
  jumbo.writeUInt16BE(0, 4);
  assert.equal(code(() => parseIpv6(jumbo)), 'UNSUPPORTED');
});

test('random bytes throw nothing but WireError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(0, 43, 44, 60, 6), (bytes, next) => {
      const buf = Buffer.from(bytes);
      if (buf.length >= 40) {
        buf[0] = (buf[0]! & 0x0f) | 0x60;
        buf[6] = next;
        buf.writeUInt16BE(Math.min(buf.readUInt16BE(4), buf.length - 40), 4);
      }
      code(() => parseIpv6(buf));
    }),
  );
});

test('RFC 8200 §4.5: a reassembled datagram\'s routing and destination options headers are walked to the upper layer', () => {
  const dest = Buffer.from([IpProtocol.IPV6_ROUTING, 0, 1, 4, 0, 0, 0, 0]);
  const routing = Buffer.from([IpProtocol.UDP, 1, 0, 0, 0, 0, 0, 0, ...Buffer.alloc(8)]);
  const upper = Buffer.from('udp header and data');
  const walked = parseIpv6Fragmentable(Buffer.concat([dest, routing, upper]), IpProtocol.IPV6_DEST_OPTS);
  assert.equal(walked.nextHeader, IpProtocol.UDP);
  assert.deepEqual(walked.payload, upper);
  assert.deepEqual(parseIpv6Fragmentable(upper, IpProtocol.TCP), { nextHeader: IpProtocol.TCP, payload: upper });
});

test('RFC 8200 §4.1/§4.5: hop-by-hop or a second fragment header inside a fragmented datagram, and cut-off headers, are refused', () => {
  const dest = (next: number) => Buffer.from([next, 0, 1, 4, 0, 0, 0, 0]);
  assert.equal(code(() => parseIpv6Fragmentable(dest(IpProtocol.IPV6_FRAGMENT), IpProtocol.IPV6_DEST_OPTS)), 'BAD_FRAGMENT');
  assert.equal(code(() => parseIpv6Fragmentable(Buffer.alloc(8), IpProtocol.HOP_BY_HOP)), 'BAD_FRAGMENT');
  assert.equal(code(() => parseIpv6Fragmentable(Buffer.from([IpProtocol.UDP, 1, 0, 0, 0, 0, 0, 0]), IpProtocol.IPV6_DEST_OPTS)), 'TRUNCATED');
  assert.equal(code(() => parseIpv6Fragmentable(Buffer.from([IpProtocol.UDP]), IpProtocol.IPV6_ROUTING)), 'TRUNCATED');
  const chain = Buffer.concat(Array.from({ length: 9 }, () => dest(IpProtocol.IPV6_DEST_OPTS)));
  assert.equal(code(() => parseIpv6Fragmentable(chain, IpProtocol.IPV6_DEST_OPTS)), 'UNSUPPORTED');
});

test('RFC 8200 §4.5: random reassembled payloads throw nothing but WireError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat(255), (bytes, next) => {
      code(() => parseIpv6Fragmentable(Buffer.from(bytes), next));
    }),
  );
});
