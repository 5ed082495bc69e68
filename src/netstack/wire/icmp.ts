// ICMPv4 (RFC 792) and ICMPv6 (RFC 4443): echo request/reply, destination unreachable and packet too big
// (ICMPv4's "fragmentation needed", RFC 1191) are understood; every other message is kept as type, code and
// body so it round-trips unchanged.

import { finishChecksum, onesComplementSum } from './checksum.js';
import { WireError, type IcmpRepr } from './reprs.js';

export const Icmpv4UnreachableCode = { NET: 0, HOST: 1, PROTOCOL: 2, PORT: 3, ADMIN_PROHIBITED: 13 } as const;
export const Icmpv6UnreachableCode = { NO_ROUTE: 0, ADMIN_PROHIBITED: 1, ADDRESS: 3, PORT: 4 } as const;
/** ICMPv4 destination unreachable's "fragmentation needed and DF set": the next-hop MTU is in bytes 6-7. */
const ICMPV4_FRAGMENTATION_NEEDED = 4;
const ICMPV6_PACKET_TOO_BIG = 2;

interface TypeNumbers {
  echoRequest: number;
  echoReply: number;
  unreachable: number;
  name: string;
}

const V4: TypeNumbers = { echoRequest: 8, echoReply: 0, unreachable: 3, name: 'ICMPv4' };
const V6: TypeNumbers = { echoRequest: 128, echoReply: 129, unreachable: 1, name: 'ICMPv6' };

const HEADER_LEN = 8;
const CHECKSUM_AT = 2;

/**
 * Echo messages with a non-zero code, unreachable messages whose "unused" bytes are not zero (such as RFC 4884
 * lengths) and ICMPv6 packet-too-big with a non-zero code are reported as 'other', so no field is lost: their
 * body starts at byte 4.
 */
function parseIcmp(buf: Buffer, types: TypeNumbers, pseudoSum: number | null): IcmpRepr {
  if (buf.length < HEADER_LEN) {
    throw new WireError('TRUNCATED', `${types.name} message of ${buf.length} bytes is shorter than its 8-byte header.`);
  }
  if (pseudoSum !== null && onesComplementSum(buf, 0, buf.length, pseudoSum) !== 0xffff) {
    throw new WireError('BAD_CHECKSUM', `${types.name} checksum does not match.`);
  }
  const type = buf[0]!;
  const code = buf[1]!;
  if ((type === types.echoRequest || type === types.echoReply) && code === 0) {
    return {
      kind: type === types.echoRequest ? 'echo-request' : 'echo-reply',
      identifier: buf.readUInt16BE(4),
      sequence: buf.readUInt16BE(6),
      data: buf.subarray(HEADER_LEN),
    };
  }
  if (type === types.unreachable) {
    if (types === V4 && code === ICMPV4_FRAGMENTATION_NEEDED && buf.readUInt16BE(4) === 0) {
      return { kind: 'packet-too-big', mtu: buf.readUInt16BE(6), invoking: buf.subarray(HEADER_LEN) };
    }
    if (buf.readUInt32BE(4) === 0) return { kind: 'dest-unreachable', code, invoking: buf.subarray(HEADER_LEN) };
  }
  if (types === V6 && type === ICMPV6_PACKET_TOO_BIG && code === 0) {
    return { kind: 'packet-too-big', mtu: buf.readUInt32BE(4), invoking: buf.subarray(HEADER_LEN) };
  }
  return { kind: 'other', type, code, body: buf.subarray(4) };
}

export function parseIcmpv4(buf: Buffer, verifyChecksum = true): IcmpRepr {
  return parseIcmp(buf, V4, verifyChecksum ? 0 : null);
}

/** `pseudoSum` is pseudoHeaderSum(src, dst, 58, buf.length), or null when the device vouched. */
export function parseIcmpv6(buf: Buffer, pseudoSum: number | null): IcmpRepr {
  return parseIcmp(buf, V6, pseudoSum);
}

export function icmpLength(repr: IcmpRepr): number {
  switch (repr.kind) {
    case 'echo-request':
    case 'echo-reply':
      return HEADER_LEN + repr.data.length;
    case 'dest-unreachable':
    case 'packet-too-big':
      return HEADER_LEN + repr.invoking.length;
    case 'other':
      return 4 + repr.body.length;
  }
}

function emitIcmp(repr: IcmpRepr, types: TypeNumbers, out: Buffer, offset: number, pseudoSum: number): number {
  const length = icmpLength(repr);
  switch (repr.kind) {
    case 'echo-request':
    case 'echo-reply':
      out[offset] = repr.kind === 'echo-request' ? types.echoRequest : types.echoReply;
      out[offset + 1] = 0;
      out.writeUInt16BE(repr.identifier, offset + 4);
      out.writeUInt16BE(repr.sequence, offset + 6);
      repr.data.copy(out, offset + HEADER_LEN);
      break;
    case 'dest-unreachable':
      out[offset] = types.unreachable;
      out[offset + 1] = repr.code;
      out.writeUInt32BE(0, offset + 4);
      repr.invoking.copy(out, offset + HEADER_LEN);
      break;
    case 'packet-too-big':
      if (types === V4) {
        out[offset] = types.unreachable;
        out[offset + 1] = ICMPV4_FRAGMENTATION_NEEDED;
        out.writeUInt16BE(0, offset + 4);
        out.writeUInt16BE(repr.mtu, offset + 6);
      } else {
        out[offset] = ICMPV6_PACKET_TOO_BIG;
        out[offset + 1] = 0;
        out.writeUInt32BE(repr.mtu, offset + 4);
      }
      repr.invoking.copy(out, offset + HEADER_LEN);
      break;
    case 'other':
      out[offset] = repr.type;
      out[offset + 1] = repr.code;
      repr.body.copy(out, offset + 4);
      break;
  }
  out.writeUInt16BE(0, offset + CHECKSUM_AT);
  out.writeUInt16BE(finishChecksum(onesComplementSum(out, offset, length, pseudoSum)), offset + CHECKSUM_AT);
  return length;
}

/** Writes the message with its checksum at `offset`; returns icmpLength(repr). */
export function emitIcmpv4(repr: IcmpRepr, out: Buffer, offset: number): number {
  return emitIcmp(repr, V4, out, offset, 0);
}

/** `pseudoSum` is pseudoHeaderSum(src, dst, 58, icmpLength(repr)). */
export function emitIcmpv6(repr: IcmpRepr, out: Buffer, offset: number, pseudoSum: number): number {
  return emitIcmp(repr, V6, out, offset, pseudoSum);
}
