// Valid packets built with the stack's own emitters (the seeds the wire fuzzers mutate), and the transport checks
// both the transport fuzzers and the IP fuzzers (on what they parsed, as the stack does) run.

import { assertSame } from './fuzz-harness.js';
import { finishChecksum, onesComplementSum, pseudoHeaderSum } from '../../src/netstack/wire/checksum.js';
import { emitIcmpv4, emitIcmpv6, icmpLength, parseIcmpv4, parseIcmpv6 } from '../../src/netstack/wire/icmp.js';
import { parseIp } from '../../src/netstack/wire/ip-address.js';
import { emitIpv4Header, IPV4_HEADER_LEN } from '../../src/netstack/wire/ipv4.js';
import { emitIpv6Header, IPV6_HEADER_LEN } from '../../src/netstack/wire/ipv6.js';
import { IpProtocol, TcpFlags, WireError, type IcmpRepr, type IpAddress, type TcpOptions } from '../../src/netstack/wire/reprs.js';
import { emitTcp, parseTcp, tcpHeaderLength } from '../../src/netstack/wire/tcp.js';
import { emitUdp, parseUdp } from '../../src/netstack/wire/udp.js';

export const V4_SRC = parseIp('10.1.2.3');
export const V4_DST = parseIp('10.96.0.10');
export const V6_SRC = parseIp('fd10::1');
export const V6_DST = parseIp('fd10:96::a');

export function isWireError(error: unknown): boolean {
  return error instanceof WireError;
}

const PAYLOADS = [Buffer.alloc(0), Buffer.from('x'), Buffer.from('GET / HTTP/1.1\r\nHost: echo\r\n\r\n'), Buffer.alloc(1400, 0xa5)];

const TCP_OPTIONS: TcpOptions[] = [
  {},
  { mss: 1460 },
  { mss: 1460, sackPermitted: true, timestamp: { value: 1, echo: 0 }, windowScale: 7 },
  { sackPermitted: true },
  { timestamp: { value: 0xffffffff, echo: 0x80000000 } },
  { timestamp: { value: 5, echo: 6 }, sack: [[1, 2], [3, 4], [5, 6]] },
  { sack: [[1, 2], [3, 4], [5, 6], [7, 8]] },
];

export function tcpSegments(src: IpAddress, dst: IpAddress): Buffer[] {
  const out: Buffer[] = [];
  for (const options of TCP_OPTIONS) {
    for (const payload of PAYLOADS.slice(0, 3)) {
      const length = tcpHeaderLength(options) + payload.length;
      const buf = Buffer.alloc(length);
      const repr = { srcPort: 40000, dstPort: 80, seq: 0xfffffff0, ack: 7, flags: TcpFlags.SYN | TcpFlags.ACK, window: 65535, urgent: 0, options, payload };
      emitTcp(repr, buf, 0, pseudoHeaderSum(src, dst, IpProtocol.TCP, length), 'full');
      out.push(buf);
    }
  }
  return out;
}

export function udpDatagrams(src: IpAddress, dst: IpAddress): Buffer[] {
  return PAYLOADS.map((payload) => {
    const buf = Buffer.alloc(8 + payload.length);
    emitUdp({ srcPort: 53, dstPort: 5353, payload }, buf, 0, pseudoHeaderSum(src, dst, IpProtocol.UDP, buf.length), 'full');
    return buf;
  });
}

function icmpReprs(): IcmpRepr[] {
  return [
    { kind: 'echo-request', identifier: 1, sequence: 2, data: Buffer.from('ping') },
    { kind: 'echo-reply', identifier: 0xffff, sequence: 0, data: Buffer.alloc(56, 1) },
    { kind: 'dest-unreachable', code: 3, invoking: Buffer.alloc(28, 0x45) },
    { kind: 'other', type: 3, code: 4, body: Buffer.from('000005dc4500', 'hex') },
    { kind: 'other', type: 11, code: 0, body: Buffer.alloc(8) },
  ];
}

export function icmpv4Messages(): Buffer[] {
  return icmpReprs().map((repr) => {
    const buf = Buffer.alloc(icmpLength(repr));
    emitIcmpv4(repr, buf, 0);
    return buf;
  });
}

export function icmpv6Messages(src: IpAddress, dst: IpAddress): Buffer[] {
  return icmpReprs().map((repr) => {
    const v6 = repr.kind === 'other' ? { ...repr, type: repr.type === 3 ? 2 : 3 } : repr;
    const buf = Buffer.alloc(icmpLength(v6));
    emitIcmpv6(v6, buf, 0, pseudoHeaderSum(src, dst, IpProtocol.ICMPV6, buf.length));
    return buf;
  });
}

interface Ipv4Extras {
  identification?: number;
  moreFragments?: boolean;
  fragmentOffset?: number;
  /** Bytes of (NOP) options, a multiple of 4. */
  options?: number;
}

export function ipv4Packet(protocol: number, payload: Buffer, extras: Ipv4Extras = {}): Buffer {
  const options = extras.options ?? 0;
  const buf = Buffer.alloc(IPV4_HEADER_LEN + options + payload.length);
  const { options: _ignored, ...fields } = extras;
  emitIpv4Header({ src: V4_SRC, dst: V4_DST, protocol, ttl: 64, ...fields, payloadLength: options + payload.length }, buf, 0);
  if (options > 0) {
    // The emitter writes no options: widen the header by hand, NOP-filled, and fix its checksum.
    buf.fill(1, IPV4_HEADER_LEN, IPV4_HEADER_LEN + options);
    buf[0] = 0x40 | ((IPV4_HEADER_LEN + options) / 4);
    fixIpv4Checksum(buf);
  }
  payload.copy(buf, IPV4_HEADER_LEN + options);
  return buf;
}

/** Makes the IPv4 header checksum right again after a mutation, so the parse gets past it. */
export function fixIpv4Checksum(buf: Buffer): void {
  const headerLength = (buf[0]! & 0x0f) * 4;
  if (headerLength < IPV4_HEADER_LEN || headerLength > buf.length) return;
  buf.writeUInt16BE(0, 10);
  let sum = 0;
  for (let i = 0; i < headerLength; i += 2) sum += buf.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  buf.writeUInt16BE(~sum & 0xffff, 10);
}

export function ipv6Packet(nextHeader: number, rest: Buffer): Buffer {
  const buf = Buffer.alloc(IPV6_HEADER_LEN + rest.length);
  emitIpv6Header({ src: V6_SRC, dst: V6_DST, nextHeader, hopLimit: 64, trafficClass: 0x12, flowLabel: 0xabcde, payloadLength: rest.length }, buf, 0);
  rest.copy(buf, IPV6_HEADER_LEN);
  return buf;
}

/** An options or routing header of (units + 1) * 8 bytes, PadN-filled. */
export function ipv6OptionsHeader(next: number, units: number): Buffer {
  const h = Buffer.alloc((units + 1) * 8);
  h[0] = next;
  h[1] = units;
  h[2] = 1;
  h[3] = h.length - 4;
  return h;
}

export function ipv6FragmentHeader(next: number, offset: number, more: boolean, id: number): Buffer {
  const h = Buffer.alloc(8);
  h[0] = next;
  h.writeUInt16BE(offset | (more ? 1 : 0), 2);
  h.writeUInt32BE(id, 4);
  return h;
}

/**
 * A copy of `buf` whose 16-bit checksum at `at` is right over its first `length` bytes for `initial`: mutated
 * bytes would otherwise fail the checksum and never reach the parsing behind it.
 */
function withChecksum(buf: Buffer, at: number, initial: number, length = buf.length): Buffer {
  const copy = Buffer.from(buf);
  if (length < at + 2) return copy;
  copy.writeUInt16BE(0, at);
  copy.writeUInt16BE(finishChecksum(onesComplementSum(copy, 0, length, initial)), at);
  return copy;
}

/** TCP, checksum verified: what parses emits and parses back to the same repr. */
export function checkTcp(buf: Buffer, src: IpAddress, dst: IpAddress): void {
  const sumFor = (length: number): number => pseudoHeaderSum(src, dst, IpProtocol.TCP, length);
  const repr = parseTcp(withChecksum(buf, 16, sumFor(buf.length)), sumFor(buf.length));
  let length: number;
  try {
    length = tcpHeaderLength(repr.options) + repr.payload.length;
  } catch (error) {
    // Options that parse but do not fit the emitter's layout (timestamps and four SACK blocks).
    if (error instanceof WireError && error.code === 'BAD_OPTION') return;
    throw error;
  }
  const out = Buffer.allocUnsafe(length);
  emitTcp(repr, out, 0, sumFor(length), 'full');
  assertSame(parseTcp(out, sumFor(length)), repr, 'TCP parse → emit → parse changed the segment');
}

/** UDP, checksum verified (over the UDP length, which may be shorter than the IP payload); round trip. */
export function checkUdp(buf: Buffer, src: IpAddress, dst: IpAddress): void {
  const sumFor = (length: number): number => pseudoHeaderSum(src, dst, IpProtocol.UDP, length);
  const udpLength = buf.length >= 8 ? Math.min(buf.readUInt16BE(4), buf.length) : buf.length;
  const repr = parseUdp(withChecksum(buf, 6, sumFor(udpLength), udpLength), sumFor(buf.length));
  const out = Buffer.allocUnsafe(8 + repr.payload.length);
  emitUdp(repr, out, 0, sumFor(out.length), 'full');
  assertSame(parseUdp(out, sumFor(out.length)), repr, 'UDP parse → emit → parse changed the datagram');
}

export function checkIcmpv4(buf: Buffer): void {
  const repr = parseIcmpv4(withChecksum(buf, 2, 0));
  const out = Buffer.allocUnsafe(icmpLength(repr));
  emitIcmpv4(repr, out, 0);
  assertSame(parseIcmpv4(out), repr, 'ICMPv4 parse → emit → parse changed the message');
}

export function checkIcmpv6(buf: Buffer, src: IpAddress, dst: IpAddress): void {
  const sumFor = (length: number): number => pseudoHeaderSum(src, dst, IpProtocol.ICMPV6, length);
  const repr = parseIcmpv6(withChecksum(buf, 2, sumFor(buf.length)), sumFor(buf.length));
  const out = Buffer.allocUnsafe(icmpLength(repr));
  emitIcmpv6(repr, out, 0, sumFor(out.length));
  assertSame(parseIcmpv6(out, sumFor(out.length)), repr, 'ICMPv6 parse → emit → parse changed the message');
}

/** The transport parse the stack runs on an IP payload; other protocols are not parsed by the stack. */
export function checkTransport(src: IpAddress, dst: IpAddress, protocol: number, payload: Buffer): void {
  if (protocol === IpProtocol.TCP) checkTcp(payload, src, dst);
  else if (protocol === IpProtocol.UDP) checkUdp(payload, src, dst);
  else if (protocol === IpProtocol.ICMP && src.length === 4) checkIcmpv4(payload);
  else if (protocol === IpProtocol.ICMPV6 && src.length === 16) checkIcmpv6(payload, src, dst);
}
