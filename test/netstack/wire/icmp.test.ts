import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { finishChecksum, onesComplementSum, pseudoHeaderSum } from '../../../src/netstack/wire/checksum.js';
import {
  emitIcmpv4,
  emitIcmpv6,
  icmpLength,
  Icmpv4UnreachableCode,
  parseIcmpv4,
  parseIcmpv6,
} from '../../../src/netstack/wire/icmp.js';
import { parseIp } from '../../../src/netstack/wire/ip-address.js';
import { IpProtocol, WireError, type IcmpRepr } from '../../../src/netstack/wire/reprs.js';

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));
const message = (version: 4 | 6): fc.Arbitrary<IcmpRepr> => {
  const known = version === 4 ? [0, 3, 8] : [1, 2, 128, 129];
  return fc.oneof(
    fc.record({ kind: fc.constantFrom('echo-request' as const, 'echo-reply' as const), identifier: fc.nat(0xffff), sequence: fc.nat(0xffff), data: bytes(100) }),
    // ICMPv4 unreachable code 4 is "fragmentation needed": with zero bytes it reads as packet-too-big, MTU 0.
    fc.record({ kind: fc.constant('dest-unreachable' as const), code: fc.nat(255).filter((c) => version === 6 || c !== 4), invoking: bytes(100) }),
    fc.record({ kind: fc.constant('packet-too-big' as const), mtu: fc.nat(version === 4 ? 0xffff : 0xffffffff), invoking: bytes(100) }),
    fc.record({
      kind: fc.constant('other' as const),
      type: fc.nat(255).filter((t) => !known.includes(t)),
      code: fc.nat(255),
      body: fc.uint8Array({ minLength: 4, maxLength: 60 }).map((b) => Buffer.from(b)),
    }),
  );
};

function plain(repr: IcmpRepr): object {
  const copy: Record<string, unknown> = { ...repr };
  for (const [k, v] of Object.entries(copy)) if (Buffer.isBuffer(v)) copy[k] = [...v];
  return copy;
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

const loopback = parseIp('::1');

/** The ICMPv4 checksum of `buf` (its checksum field zeroed). */
function finish(buf: Buffer, pseudo: number): number {
  return finishChecksum(onesComplementSum(buf, 0, buf.length, pseudo));
}

test('known answers: echo requests from Python with checksums 06fa (v4) and 8eb1 (v6)', () => {
  const echo = { kind: 'echo-request', identifier: 0x1234, sequence: 1, data: [...Buffer.from('ping')] };
  const v4 = Buffer.from('080006fa1234000170696e67', 'hex');
  assert.deepEqual(plain(parseIcmpv4(v4)), echo);
  const v6 = Buffer.from('80008eb11234000170696e67', 'hex');
  const pseudo = pseudoHeaderSum(loopback, loopback, IpProtocol.ICMPV6, v6.length);
  assert.deepEqual(plain(parseIcmpv6(v6, pseudo)), echo);
  const out = Buffer.alloc(12);
  emitIcmpv4(parseIcmpv4(v4), out, 0);
  assert.equal(out.toString('hex'), v4.toString('hex'));
  emitIcmpv6(parseIcmpv6(v6, null), out, 0, pseudo);
  assert.equal(out.toString('hex'), v6.toString('hex'));
});

test('ICMPv4: emit then parse gives back the message', () => {
  fc.assert(
    fc.property(message(4), fc.nat(5), (repr, at) => {
      const out = Buffer.alloc(at + icmpLength(repr));
      assert.equal(emitIcmpv4(repr, out, at), icmpLength(repr));
      assert.deepEqual(plain(parseIcmpv4(out.subarray(at))), plain(repr));
    }),
  );
});

test('ICMPv6: emit then parse gives back the message', () => {
  fc.assert(
    fc.property(message(6), fc.uint8Array({ minLength: 16, maxLength: 16 }), (repr, src) => {
      const out = Buffer.alloc(icmpLength(repr));
      const pseudo = pseudoHeaderSum(src, loopback, IpProtocol.ICMPV6, out.length);
      emitIcmpv6(repr, out, 0, pseudo);
      assert.deepEqual(plain(parseIcmpv6(out, pseudo)), plain(repr));
    }),
  );
});

test('a flipped bit fails the checksum (v4 and v6)', () => {
  fc.assert(
    fc.property(message(4), fc.nat(), fc.boolean(), (repr, seed, six) => {
      const out = Buffer.alloc(icmpLength(repr));
      const pseudo = pseudoHeaderSum(loopback, loopback, IpProtocol.ICMPV6, out.length);
      if (six) emitIcmpv6(repr, out, 0, pseudo);
      else emitIcmpv4(repr, out, 0);
      const bit = seed % (out.length * 8);
      out[bit >>> 3]! ^= 0x80 >>> (bit & 7);
      assert.throws(() => (six ? parseIcmpv6(out, pseudo) : parseIcmpv4(out)), WireError);
      assert.ok(six ? parseIcmpv6(out, null) : parseIcmpv4(out, false));
    }),
  );
});

test('RFC 1191 §4 / RFC 4443 §3.2: fragmentation-needed and packet-too-big carry the next-hop MTU', () => {
  const quote = Buffer.alloc(28, 0x45);
  const v4 = Buffer.concat([Buffer.from([3, 4, 0, 0, 0, 0, 0x05, 0x00]), quote]);
  v4.writeUInt16BE(0, 2);
  v4.writeUInt16BE(finish(v4, 0), 2);
  assert.deepEqual(plain(parseIcmpv4(v4)), { kind: 'packet-too-big', mtu: 1280, invoking: [...quote] });
  const v6 = Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0x05, 0x00]), quote]);
  assert.deepEqual(plain(parseIcmpv6(v6, null)), { kind: 'packet-too-big', mtu: 1280, invoking: [...quote] });
});

test('unreachable messages with non-zero unused bytes and coded echoes stay lossless as other', () => {
  const out = Buffer.alloc(8 + 28);
  emitIcmpv4({ kind: 'other', type: 3, code: 1, body: Buffer.concat([Buffer.from([0, 7, 0x05, 0xdc]), Buffer.alloc(28)]) }, out, 0);
  const repr = parseIcmpv4(out);
  assert.equal(repr.kind, 'other');
  assert.equal(repr.kind === 'other' && repr.body.readUInt16BE(2), 1500);
  emitIcmpv4({ kind: 'dest-unreachable', code: Icmpv4UnreachableCode.PORT, invoking: Buffer.alloc(28) }, out, 0);
  assert.equal(parseIcmpv4(out).kind, 'dest-unreachable');
});

test('truncated messages are refused', () => {
  assert.equal(code(() => parseIcmpv4(Buffer.alloc(7))), 'TRUNCATED');
  assert.equal(code(() => parseIcmpv6(Buffer.alloc(7), null)), 'TRUNCATED');
});

test('random bytes throw nothing but WireError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), fc.boolean(), fc.option(fc.nat(0xffff)), (raw, verify, pseudo) => {
      code(() => parseIcmpv4(Buffer.from(raw), verify));
      code(() => parseIcmpv6(Buffer.from(raw), pseudo));
    }),
  );
});
