import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { finishChecksum, onesComplementSum, pseudoHeaderSum } from '../../../src/netstack/wire/checksum.js';
import { formatIp } from '../../../src/netstack/wire/ip-address.js';
import { parseIpv4 } from '../../../src/netstack/wire/ipv4.js';
import { IpProtocol, TcpFlags, WireError, type TcpOptions, type TcpRepr } from '../../../src/netstack/wire/reprs.js';
import { emitTcp, parseTcp, tcpHeaderLength } from '../../../src/netstack/wire/tcp.js';

const u32 = fc.nat({ max: 0xffffffff });
const options: fc.Arbitrary<TcpOptions> = fc
  .record(
    {
      mss: fc.nat(0xffff),
      windowScale: fc.nat(14),
      sackPermitted: fc.constant(true),
      sack: fc.array(fc.tuple(u32, u32), { minLength: 1, maxLength: 4 }),
      timestamp: fc.record({ value: u32, echo: u32 }, { noNullPrototype: true }),
    },
    { requiredKeys: [], noNullPrototype: true },
  )
  .filter((o) => {
    try {
      tcpHeaderLength(o);
      return true;
    } catch {
      return false;
    }
  });
const segment: fc.Arbitrary<TcpRepr> = fc.record({
  srcPort: fc.nat(0xffff),
  dstPort: fc.nat(0xffff),
  seq: u32,
  ack: u32,
  flags: fc.nat(0xff),
  window: fc.nat(0xffff),
  urgent: fc.nat(0xffff),
  options,
  payload: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
});
const addresses = fc.oneof(
  fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 4, maxLength: 4 })),
  fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 16, maxLength: 16 })),
);

function plain(repr: TcpRepr): object {
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

// 10.0.0.1:54321 → 10.96.0.15:80, SYN with MSS 1460, SACK-permitted, TS 1000/0, NOP, WS 7 (Linux order);
// both checksums were computed by an independent Python implementation.
const SYN_HEX =
  '4500003cbeef40004006675d0a0000010a60000f' +
  'd43100501234567800000000a002faf0f7890000020405b40402080a000003e80000000001030307';

test('known answer: a captured-style SYN with options parses and verifies', () => {
  const ip = parseIpv4(Buffer.from(SYN_HEX, 'hex'));
  assert.equal(formatIp(ip.src), '10.0.0.1');
  const repr = parseTcp(ip.payload, pseudoHeaderSum(ip.src, ip.dst, IpProtocol.TCP, ip.payload.length));
  assert.deepEqual(plain(repr), {
    srcPort: 54321,
    dstPort: 80,
    seq: 0x12345678,
    ack: 0,
    flags: TcpFlags.SYN,
    window: 64240,
    urgent: 0,
    options: { mss: 1460, sackPermitted: true, timestamp: { value: 1000, echo: 0 }, windowScale: 7 },
    payload: [],
  });
});

test('known answer: emitting the SYN reproduces Linux\'s option layout byte for byte, checksum f789', () => {
  const ip = parseIpv4(Buffer.from(SYN_HEX, 'hex'));
  const repr = parseTcp(ip.payload, null);
  const out = Buffer.alloc(tcpHeaderLength(repr.options));
  emitTcp(repr, out, 0, pseudoHeaderSum(ip.src, ip.dst, IpProtocol.TCP, out.length), 'full');
  assert.equal(out.readUInt16BE(16), 0xf789);
  assert.equal(out.toString('hex'), ip.payload.toString('hex'));
});

test('emit then parse gives back the segment, with a valid checksum, at any offset', () => {
  fc.assert(
    fc.property(segment, addresses, fc.nat(7), (repr, [src, dst], at) => {
      const length = tcpHeaderLength(repr.options) + repr.payload.length;
      const out = Buffer.alloc(at + length);
      const pseudo = pseudoHeaderSum(src, dst, IpProtocol.TCP, length);
      assert.equal(emitTcp(repr, out, at, pseudo, 'full'), length);
      assert.deepEqual(plain(parseTcp(out.subarray(at), pseudo)), plain(repr));
    }),
  );
});

test('a flipped bit anywhere in the segment fails the checksum', () => {
  fc.assert(
    fc.property(segment, addresses, fc.nat(), (repr, [src, dst], seed) => {
      const length = tcpHeaderLength(repr.options) + repr.payload.length;
      const out = Buffer.alloc(length);
      const pseudo = pseudoHeaderSum(src, dst, IpProtocol.TCP, length);
      emitTcp(repr, out, 0, pseudo, 'full');
      const bit = seed % (length * 8);
      out[bit >>> 3]! ^= 0x80 >>> (bit & 7);
      assert.throws(() => parseTcp(out, pseudo), WireError);
    }),
  );
});

test("'partial' mode writes the folded pseudo-header sum, which completes to the full checksum", () => {
  fc.assert(
    fc.property(segment, addresses, (repr, [src, dst]) => {
      const length = tcpHeaderLength(repr.options) + repr.payload.length;
      const pseudo = pseudoHeaderSum(src, dst, IpProtocol.TCP, length);
      const partial = Buffer.alloc(length);
      emitTcp(repr, partial, 0, pseudo, 'partial');
      assert.equal(partial.readUInt16BE(16), pseudo);
      // What the device does: checksum from the TCP header on, with the field holding the pseudo sum.
      const full = Buffer.alloc(length);
      emitTcp(repr, full, 0, pseudo, 'full');
      const deviceSum = finishChecksum(onesComplementSum(partial, 0, length));
      assert.equal(deviceSum, full.readUInt16BE(16));
    }),
  );
});

test('a payload already in place is left as is', () => {
  const out = Buffer.alloc(20 + 5);
  out.write('hello', 20);
  const repr: TcpRepr = { srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TcpFlags.ACK, window: 5, urgent: 0, options: {}, payload: out.subarray(20) };
  emitTcp(repr, out, 0, 0, 'full');
  assert.equal(parseTcp(out, 0).payload.toString(), 'hello');
});

test('unknown options are skipped, NOP and EOL honoured', () => {
  const out = Buffer.alloc(32);
  out[12] = 8 << 4;
  Buffer.from([1, 0xfe, 4, 0xaa, 0xbb, 2, 4, 0x05, 0xb4, 0, 3, 3]).copy(out, 20);
  assert.deepEqual(parseTcp(out, null).options, { mss: 1460 });
});

/** A 20-byte header (data offset set, nothing else) followed by `optionBytes` padded with EOL to a multiple of 4. */
function withOptions(optionBytes: Uint8Array): Buffer {
  const out = Buffer.alloc(20 + Math.ceil(optionBytes.length / 4) * 4);
  out[12] = (out.length / 4) << 4;
  Buffer.from(optionBytes).copy(out, 20);
  return out;
}

test('RFC 9293 §3.1 (MUST-64), as Linux: a malformed option is ignored and the segment kept with its other options', () => {
  const cases: Array<[number[], TcpOptions]> = [
    [[2, 3, 0, 1, 3, 3, 7], { windowScale: 7 }], // MSS of length 3, then NOP and window scale
    [[3, 4, 7, 1, 2, 4, 0x05, 0xb4], { mss: 1460 }], // window scale of length 4
    [[4, 3, 0, 2, 4, 0x05, 0xb4], { mss: 1460 }], // SACK-permitted of length 3
    [[5, 2, 2, 4, 0x05, 0xb4], { mss: 1460 }], // SACK with no block
    [[5, 9, 0, 0, 0, 0, 0, 0, 0, 3, 3, 7], { windowScale: 7 }], // SACK with a partial block
    [[8, 6, 0, 0, 0, 0, 2, 4, 0x05, 0xb4], { mss: 1460 }], // timestamp of length 6
    // The list cannot be read past a missing or impossible length: it ends there, what came before stays.
    [[2, 4, 0x05, 0xb4, 3], { mss: 1460 }], // no length byte
    [[2, 4, 0x05, 0xb4, 3, 0, 7, 1, 1, 3, 3, 9], { mss: 1460 }], // length below 2
    [[2, 4, 0x05, 0xb4, 0xfe, 12, 0, 0], { mss: 1460 }], // an unknown option past the header
    [[2, 4, 0x05, 0xb4, 3, 12, 7, 0], { mss: 1460 }], // a known option past the header
  ];
  for (const [option, expected] of cases) {
    const out = withOptions(Uint8Array.from(option));
    const repr = parseTcp(Buffer.concat([out, Buffer.from('data')]), null);
    assert.deepEqual(repr.options, expected, JSON.stringify(option));
    assert.equal(repr.payload.toString(), 'data');
  }
});

test('RFC 9293 §3.1: parseTcp never throws on any option bytes after a valid header', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (optionBytes) => {
      parseTcp(withOptions(optionBytes), null);
    }),
    { numRuns: 2000 },
  );
});

test('RFC 9293 §3.1: valid options round-trip, also behind a malformed option that is ignored', () => {
  const malformed = fc.constantFrom([2, 3, 0], [2, 2], [3, 2], [3, 4, 1, 1], [4, 3, 0], [5, 2], [5, 6, 0, 0, 0, 0], [8, 2], [8, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  fc.assert(
    fc.property(options, malformed, (opts, bad) => {
      const emitted = Buffer.alloc(60);
      const seg: TcpRepr = { srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0, window: 5, urgent: 0, options: opts, payload: Buffer.alloc(0) };
      const length = emitTcp(seg, emitted, 0, 0, 'full');
      assert.deepEqual(parseTcp(emitted.subarray(0, length), null).options, opts);
      const optionBytes = Buffer.concat([Buffer.from(bad), emitted.subarray(20, length)]);
      fc.pre(optionBytes.length <= 40);
      assert.deepEqual(parseTcp(withOptions(optionBytes), null).options, opts);
    }),
  );
});

test('truncated headers and bad data offsets are refused', () => {
  assert.equal(code(() => parseTcp(Buffer.alloc(19), null)), 'TRUNCATED');
  const out = Buffer.alloc(24);
  out[12] = 4 << 4;
  assert.equal(code(() => parseTcp(out, null)), 'BAD_HEADER_LENGTH');
  out[12] = 7 << 4;
  assert.equal(code(() => parseTcp(out, null)), 'TRUNCATED');
});

test('tcpHeaderLength pads to 4 and refuses more than 40 bytes of options', () => {
  assert.equal(tcpHeaderLength({}), 20);
  assert.equal(tcpHeaderLength({ mss: 1460, sackPermitted: true, timestamp: { value: 1, echo: 0 }, windowScale: 7 }), 40);
  assert.equal(tcpHeaderLength({ timestamp: { value: 1, echo: 2 }, sack: [[1, 2], [3, 4], [5, 6]] }), 60);
  assert.throws(() => tcpHeaderLength({ timestamp: { value: 1, echo: 2 }, sack: [[1, 2], [3, 4], [5, 6], [7, 8]] }), WireError);
});

test('random bytes throw nothing but WireError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(15), fc.option(fc.nat(0xffff)), (bytes, dataOffset, pseudo) => {
      const buf = Buffer.from(bytes);
      if (buf.length > 12) buf[12] = dataOffset << 4;
      code(() => parseTcp(buf, pseudo));
    }),
  );
});
