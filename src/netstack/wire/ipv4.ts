// IPv4 header (RFC 791): parse into an Ipv4Repr, emit a 20-byte header without options.

import { finishChecksum, onesComplementSum } from './checksum.js';
import { WireError, type IpAddress, type Ipv4Repr } from './reprs.js';

export const IPV4_HEADER_LEN = 20;

const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const OFFSET_MASK = 0x1fff;

/**
 * Parses an IPv4 header. Options are skipped; the payload is a view of the bytes up to the total length
 * (link-layer padding after it is dropped). Addresses are copies, so they outlive the packet buffer.
 */
export function parseIpv4(buf: Buffer, verifyChecksum = true): Ipv4Repr {
  if (buf.length < IPV4_HEADER_LEN) {
    throw new WireError('TRUNCATED', `IPv4 packet of ${buf.length} bytes is shorter than its 20-byte header.`);
  }
  const version = buf[0]! >>> 4;
  if (version !== 4) throw new WireError('BAD_VERSION', `IP version ${version} in a packet parsed as IPv4.`);
  const headerLength = (buf[0]! & 0x0f) * 4;
  if (headerLength < IPV4_HEADER_LEN) {
    throw new WireError('BAD_HEADER_LENGTH', `IPv4 header length ${headerLength} is below the minimum of 20.`);
  }
  const totalLength = buf.readUInt16BE(2);
  if (totalLength < headerLength) {
    throw new WireError('BAD_LENGTH', `IPv4 total length ${totalLength} is shorter than its header (${headerLength}).`);
  }
  if (totalLength > buf.length) {
    throw new WireError('TRUNCATED', `IPv4 total length ${totalLength} exceeds the ${buf.length} bytes received.`);
  }
  if (verifyChecksum && onesComplementSum(buf, 0, headerLength) !== 0xffff) {
    throw new WireError('BAD_CHECKSUM', 'IPv4 header checksum does not match.');
  }
  const fragment = buf.readUInt16BE(6);
  return {
    src: address4(buf, 12),
    dst: address4(buf, 16),
    protocol: buf[9]!,
    ttl: buf[8]!,
    identification: buf.readUInt16BE(4),
    dontFragment: (fragment & FLAG_DF) !== 0,
    moreFragments: (fragment & FLAG_MF) !== 0,
    fragmentOffset: (fragment & OFFSET_MASK) * 8,
    tos: buf[1]!,
    headerLength,
    payload: buf.subarray(headerLength, totalLength),
  };
}

/** A copy of the 4 bytes at `at`: one allocation per packet, not two (a view, then its copy). */
function address4(buf: Buffer, at: number): Uint8Array {
  const a = new Uint8Array(4);
  a[0] = buf[at]!;
  a[1] = buf[at + 1]!;
  a[2] = buf[at + 2]!;
  a[3] = buf[at + 3]!;
  return a;
}

export interface Ipv4HeaderFields {
  src: IpAddress;
  dst: IpAddress;
  protocol: number;
  ttl: number;
  identification?: number;
  dontFragment?: boolean;
  moreFragments?: boolean;
  /** In bytes; a multiple of 8. */
  fragmentOffset?: number;
  tos?: number;
  /** Bytes that follow the header. */
  payloadLength: number;
}

/** Writes a 20-byte IPv4 header (no options) with its checksum at `offset`; returns 20. */
export function emitIpv4Header(h: Ipv4HeaderFields, out: Buffer, offset: number): number {
  const totalLength = IPV4_HEADER_LEN + h.payloadLength;
  if (totalLength > 0xffff) {
    throw new WireError('BAD_LENGTH', `IPv4 payload of ${h.payloadLength} bytes does not fit a 65535-byte packet.`);
  }
  const fragmentOffset = h.fragmentOffset ?? 0;
  if (fragmentOffset % 8 !== 0 || fragmentOffset > OFFSET_MASK * 8) {
    throw new WireError('BAD_FRAGMENT', `IPv4 fragment offset ${fragmentOffset} is not a multiple of 8 below 65536.`);
  }
  if (h.src.length !== 4 || h.dst.length !== 4) {
    throw new WireError('BAD_VERSION', 'An IPv4 header needs 4-byte source and destination addresses.');
  }
  out[offset] = 0x45;
  out[offset + 1] = h.tos ?? 0;
  out.writeUInt16BE(totalLength, offset + 2);
  out.writeUInt16BE(h.identification ?? 0, offset + 4);
  const flags = (h.dontFragment ? FLAG_DF : 0) | (h.moreFragments ? FLAG_MF : 0);
  out.writeUInt16BE(flags | (fragmentOffset / 8), offset + 6);
  out[offset + 8] = h.ttl;
  out[offset + 9] = h.protocol;
  out[offset + 10] = 0;
  out[offset + 11] = 0;
  out.set(h.src, offset + 12);
  out.set(h.dst, offset + 16);
  out.writeUInt16BE(finishChecksum(onesComplementSum(out, offset, IPV4_HEADER_LEN)), offset + 10);
  return IPV4_HEADER_LEN;
}
