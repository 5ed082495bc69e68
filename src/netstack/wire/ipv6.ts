// IPv6 header (RFC 8200): parse, walking the extension headers to the upper layer; emit the fixed header.

import { IpProtocol, WireError, type IpAddress, type Ipv6FragmentInfo, type Ipv6Repr } from './reprs.js';

export const IPV6_HEADER_LEN = 40;

/** More extension headers than this is an attack or a broken sender, not a packet worth walking. */
const MAX_EXTENSION_HEADERS = 8;
const FRAGMENT_HEADER_LEN = 8;

/**
 * Parses an IPv6 packet. Hop-by-hop (first only), routing, destination options and fragment headers are
 * walked; the repr's nextHeader is the first header after them (AH, ESP and unknown headers are reported
 * as they are). A fragment header that starts or continues a fragmented datagram stops the walk: its payload
 * is the fragment's data and nextHeader the header after the fragment header (only the offset-0 fragment's
 * counts, and parseIpv6Fragmentable walks on from it after reassembly). An atomic fragment (offset 0, no more
 * fragments; RFC 6946) is walked past and not reported. Addresses are copies.
 */
export function parseIpv6(buf: Buffer): Ipv6Repr {
  if (buf.length < IPV6_HEADER_LEN) {
    throw new WireError('TRUNCATED', `IPv6 packet of ${buf.length} bytes is shorter than its 40-byte header.`);
  }
  const version = buf[0]! >>> 4;
  if (version !== 6) throw new WireError('BAD_VERSION', `IP version ${version} in a packet parsed as IPv6.`);
  const payloadLength = buf.readUInt16BE(4);
  let nextHeader = buf[6]!;
  if (payloadLength === 0 && nextHeader === IpProtocol.HOP_BY_HOP) {
    throw new WireError('UNSUPPORTED', 'IPv6 jumbograms (payload length 0 with hop-by-hop options) are not supported.');
  }
  const end = IPV6_HEADER_LEN + payloadLength;
  if (end > buf.length) {
    throw new WireError('TRUNCATED', `IPv6 payload length ${payloadLength} exceeds the ${buf.length - 40} bytes received.`);
  }
  let at = IPV6_HEADER_LEN;
  let fragment: Ipv6FragmentInfo | undefined;
  for (let count = 0; ; count++) {
    const isOptionsOrRouting =
      nextHeader === IpProtocol.HOP_BY_HOP ||
      nextHeader === IpProtocol.IPV6_ROUTING ||
      nextHeader === IpProtocol.IPV6_DEST_OPTS;
    if (!isOptionsOrRouting && nextHeader !== IpProtocol.IPV6_FRAGMENT) break;
    if (count >= MAX_EXTENSION_HEADERS) {
      throw new WireError('UNSUPPORTED', `IPv6 packet has more than ${MAX_EXTENSION_HEADERS} extension headers.`);
    }
    if (nextHeader === IpProtocol.HOP_BY_HOP && count > 0) {
      throw new WireError('BAD_OPTION', 'IPv6 hop-by-hop options header must come first (RFC 8200 §4.3).');
    }
    if (at + 2 > end) throw new WireError('TRUNCATED', 'IPv6 extension header is cut off by the payload length.');
    const headerLength = isOptionsOrRouting ? (buf[at + 1]! + 1) * 8 : FRAGMENT_HEADER_LEN;
    if (at + headerLength > end) {
      throw new WireError('TRUNCATED', 'IPv6 extension header is cut off by the payload length.');
    }
    const following = buf[at]!;
    if (nextHeader === IpProtocol.IPV6_FRAGMENT) {
      const field = buf.readUInt16BE(at + 2);
      const offset = field & 0xfff8;
      const moreFragments = (field & 1) !== 0;
      if (offset !== 0 || moreFragments) {
        fragment = { offset, moreFragments, identification: buf.readUInt32BE(at + 4) };
        nextHeader = following;
        at += headerLength;
        break;
      }
    }
    nextHeader = following;
    at += headerLength;
  }
  const repr: Ipv6Repr = {
    src: new Uint8Array(buf.subarray(8, 24)),
    dst: new Uint8Array(buf.subarray(24, 40)),
    nextHeader,
    hopLimit: buf[7]!,
    trafficClass: ((buf[0]! & 0x0f) << 4) | (buf[1]! >>> 4),
    flowLabel: buf.readUInt32BE(0) & 0xfffff,
    payload: buf.subarray(at, end),
  };
  if (fragment) repr.fragment = fragment;
  return repr;
}

/**
 * The upper layer of a reassembled IPv6 datagram (RFC 8200 §4.5): its fragmentable part may start with
 * routing and destination-options headers after the fragment header; `nextHeader` is the one the offset-0
 * fragment's fragment header named. Returns the upper-layer protocol and its bytes (a view of `payload`).
 */
export function parseIpv6Fragmentable(payload: Buffer, nextHeader: number): { nextHeader: number; payload: Buffer } {
  let at = 0;
  for (let count = 0; nextHeader === IpProtocol.IPV6_ROUTING || nextHeader === IpProtocol.IPV6_DEST_OPTS; count++) {
    if (count >= MAX_EXTENSION_HEADERS) {
      throw new WireError('UNSUPPORTED', `IPv6 datagram has more than ${MAX_EXTENSION_HEADERS} extension headers.`);
    }
    if (at + 2 > payload.length) throw new WireError('TRUNCATED', 'IPv6 extension header is cut off by the datagram.');
    const headerLength = (payload[at + 1]! + 1) * 8;
    if (at + headerLength > payload.length) {
      throw new WireError('TRUNCATED', 'IPv6 extension header is cut off by the datagram.');
    }
    nextHeader = payload[at]!;
    at += headerLength;
  }
  if (nextHeader === IpProtocol.HOP_BY_HOP || nextHeader === IpProtocol.IPV6_FRAGMENT) {
    throw new WireError('BAD_FRAGMENT', `IPv6 header ${nextHeader} inside a fragmented datagram (RFC 8200 §4.1).`);
  }
  return { nextHeader, payload: payload.subarray(at) };
}

export interface Ipv6HeaderFields {
  src: IpAddress;
  dst: IpAddress;
  nextHeader: number;
  hopLimit: number;
  trafficClass?: number;
  flowLabel?: number;
  /** Bytes that follow the fixed header. */
  payloadLength: number;
}

/** Writes the 40-byte fixed IPv6 header at `offset`; returns 40. */
export function emitIpv6Header(h: Ipv6HeaderFields, out: Buffer, offset: number): number {
  if (h.payloadLength > 0xffff) {
    throw new WireError('BAD_LENGTH', `IPv6 payload of ${h.payloadLength} bytes needs a jumbogram, which is unsupported.`);
  }
  if (h.src.length !== 16 || h.dst.length !== 16) {
    throw new WireError('BAD_VERSION', 'An IPv6 header needs 16-byte source and destination addresses.');
  }
  const trafficClass = h.trafficClass ?? 0;
  const flowLabel = h.flowLabel ?? 0;
  out.writeUInt32BE(((6 << 28) | ((trafficClass & 0xff) << 20) | (flowLabel & 0xfffff)) >>> 0, offset);
  out.writeUInt16BE(h.payloadLength, offset + 4);
  out[offset + 6] = h.nextHeader;
  out[offset + 7] = h.hopLimit;
  out.set(h.src, offset + 8);
  out.set(h.dst, offset + 24);
  return IPV6_HEADER_LEN;
}
