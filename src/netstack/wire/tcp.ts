// TCP header (RFC 9293) with the options the stack uses: MSS, window scale and timestamps (RFC 7323),
// SACK-permitted and SACK (RFC 2018). Other options, and malformed ones, are skipped when parsing.

import { finishChecksum, onesComplementSum } from './checksum.js';
import { WireError, type ChecksumMode, type TcpOptions, type TcpRepr } from './reprs.js';

const HEADER_LEN = 20;
const MAX_OPTIONS_LEN = 40;
const CHECKSUM_AT = 16;

const Kind = { EOL: 0, NOP: 1, MSS: 2, WINDOW_SCALE: 3, SACK_PERMITTED: 4, SACK: 5, TIMESTAMP: 8 } as const;

function badOption(why: string): WireError {
  return new WireError('BAD_OPTION', `TCP option ${why}.`);
}

/**
 * Lenient as Linux's tcp_parse_options: a known option with the wrong length is ignored and the rest of the list
 * still read; a length byte that is missing, below 2 or past the header ends the list (nothing after it can be
 * found). Either way the segment is kept with the options read so far.
 */
function parseOptions(buf: Buffer, start: number, end: number): TcpOptions {
  const options: TcpOptions = {};
  let at = start;
  while (at < end) {
    const kind = buf[at]!;
    if (kind === Kind.EOL) break;
    if (kind === Kind.NOP) {
      at++;
      continue;
    }
    if (at + 1 >= end) break;
    const length = buf[at + 1]!;
    if (length < 2 || at + length > end) break;
    switch (kind) {
      case Kind.MSS:
        if (length === 4) options.mss = buf.readUInt16BE(at + 2);
        break;
      case Kind.WINDOW_SCALE:
        if (length === 3) options.windowScale = buf[at + 2]!;
        break;
      case Kind.SACK_PERMITTED:
        if (length === 2) options.sackPermitted = true;
        break;
      case Kind.SACK: {
        // 40 bytes of options hold at most 4 blocks, so a length that fits the header is never more.
        if (length < 10 || (length - 2) % 8 !== 0) break;
        const blocks = (length - 2) / 8;
        const sack: Array<[number, number]> = [];
        for (let i = 0; i < blocks; i++) {
          sack.push([buf.readUInt32BE(at + 2 + i * 8), buf.readUInt32BE(at + 6 + i * 8)]);
        }
        options.sack = sack;
        break;
      }
      case Kind.TIMESTAMP:
        if (length === 10) options.timestamp = { value: buf.readUInt32BE(at + 2), echo: buf.readUInt32BE(at + 6) };
        break;
      default:
        break;
    }
    at += length;
  }
  return options;
}

/**
 * Parses a TCP segment: `buf` is exactly the IP payload. `pseudoSum` is pseudoHeaderSum(src, dst, 6,
 * buf.length), or null when the device already vouched for the checksum.
 */
export function parseTcp(buf: Buffer, pseudoSum: number | null): TcpRepr {
  if (buf.length < HEADER_LEN) {
    throw new WireError('TRUNCATED', `TCP segment of ${buf.length} bytes is shorter than its 20-byte header.`);
  }
  const headerLength = (buf[12]! >>> 4) * 4;
  if (headerLength < HEADER_LEN) {
    throw new WireError('BAD_HEADER_LENGTH', `TCP data offset ${headerLength} is below the minimum of 20.`);
  }
  if (headerLength > buf.length) {
    throw new WireError('TRUNCATED', `TCP header of ${headerLength} bytes exceeds the ${buf.length}-byte segment.`);
  }
  if (pseudoSum !== null && onesComplementSum(buf, 0, buf.length, pseudoSum) !== 0xffff) {
    throw new WireError('BAD_CHECKSUM', 'TCP checksum does not match.');
  }
  return {
    srcPort: buf.readUInt16BE(0),
    dstPort: buf.readUInt16BE(2),
    seq: buf.readUInt32BE(4),
    ack: buf.readUInt32BE(8),
    flags: buf[13]!,
    window: buf.readUInt16BE(14),
    urgent: buf.readUInt16BE(18),
    options: headerLength > HEADER_LEN ? parseOptions(buf, HEADER_LEN, headerLength) : {},
    payload: buf.subarray(headerLength),
  };
}

/**
 * Emitted layout, each piece 4-byte aligned as Linux lays them out: MSS; SACK-permitted and timestamps
 * together (NOP-padded when one is absent); NOP + window scale; NOP NOP + SACK blocks.
 */
function optionsLength(options: TcpOptions): number {
  let length = 0;
  if (options.mss !== undefined) length += 4;
  if (options.timestamp) length += 12;
  else if (options.sackPermitted) length += 4;
  if (options.windowScale !== undefined) length += 4;
  if (options.sack && options.sack.length > 0) length += 4 + 8 * options.sack.length;
  return length;
}

/** 20 plus the emitted options (already a multiple of 4). Throws BAD_OPTION when they exceed 40 bytes. */
export function tcpHeaderLength(options: TcpOptions): number {
  const length = optionsLength(options);
  if (length > MAX_OPTIONS_LEN) throw badOption(`space of ${length} bytes exceeds the 40 a header can carry`);
  if (options.sack && options.sack.length > 4) throw badOption(`SACK with ${options.sack.length} blocks exceeds 4`);
  return HEADER_LEN + length;
}

function emitOptions(options: TcpOptions, out: Buffer, at: number): void {
  if (options.mss !== undefined) {
    out[at] = Kind.MSS;
    out[at + 1] = 4;
    out.writeUInt16BE(options.mss, at + 2);
    at += 4;
  }
  if (options.timestamp) {
    if (options.sackPermitted) {
      out[at] = Kind.SACK_PERMITTED;
      out[at + 1] = 2;
    } else {
      out[at] = Kind.NOP;
      out[at + 1] = Kind.NOP;
    }
    out[at + 2] = Kind.TIMESTAMP;
    out[at + 3] = 10;
    out.writeUInt32BE(options.timestamp.value >>> 0, at + 4);
    out.writeUInt32BE(options.timestamp.echo >>> 0, at + 8);
    at += 12;
  } else if (options.sackPermitted) {
    out[at] = Kind.NOP;
    out[at + 1] = Kind.NOP;
    out[at + 2] = Kind.SACK_PERMITTED;
    out[at + 3] = 2;
    at += 4;
  }
  if (options.windowScale !== undefined) {
    out[at] = Kind.NOP;
    out[at + 1] = Kind.WINDOW_SCALE;
    out[at + 2] = 3;
    out[at + 3] = options.windowScale;
    at += 4;
  }
  if (options.sack && options.sack.length > 0) {
    out[at] = Kind.NOP;
    out[at + 1] = Kind.NOP;
    out[at + 2] = Kind.SACK;
    out[at + 3] = 2 + 8 * options.sack.length;
    at += 4;
    for (const [left, right] of options.sack) {
      out.writeUInt32BE(left >>> 0, at);
      out.writeUInt32BE(right >>> 0, at + 4);
      at += 8;
    }
  }
}

/**
 * Writes header, options and payload at `offset`; returns the bytes written. `pseudoSum` is
 * pseudoHeaderSum(src, dst, 6, segment length). In 'partial' mode the checksum field holds pseudoSum for
 * the device to complete (virtio-net NEEDS_CSUM). A payload already in place in `out` is not copied; with
 * `detached` it is not written at all (the device sends it from where it is, right behind the header), but
 * the checksum still covers it.
 */
export function emitTcp(repr: TcpRepr, out: Buffer, offset: number, pseudoSum: number, mode: ChecksumMode, detached = false): number {
  const headerLength = tcpHeaderLength(repr.options);
  const length = headerLength + repr.payload.length;
  out.writeUInt16BE(repr.srcPort, offset);
  out.writeUInt16BE(repr.dstPort, offset + 2);
  out.writeUInt32BE(repr.seq >>> 0, offset + 4);
  out.writeUInt32BE(repr.ack >>> 0, offset + 8);
  out[offset + 12] = (headerLength / 4) << 4;
  out[offset + 13] = repr.flags;
  out.writeUInt16BE(repr.window, offset + 14);
  out.writeUInt16BE(0, offset + CHECKSUM_AT);
  out.writeUInt16BE(repr.urgent, offset + 18);
  emitOptions(repr.options, out, offset + HEADER_LEN);
  let checksum = pseudoSum;
  if (detached) {
    // The header's length is a multiple of 4, so the two sums compose.
    if (mode === 'full') checksum = finishChecksum(onesComplementSum(repr.payload, 0, repr.payload.length, onesComplementSum(out, offset, headerLength, pseudoSum)));
    out.writeUInt16BE(checksum, offset + CHECKSUM_AT);
    return headerLength;
  }
  copyPayload(repr.payload, out, offset + headerLength);
  if (mode === 'full') checksum = finishChecksum(onesComplementSum(out, offset, length, pseudoSum));
  out.writeUInt16BE(checksum, offset + CHECKSUM_AT);
  return length;
}

/** Copies `payload` to `out[at]` unless it already is there (a segment built in place). */
function copyPayload(payload: Buffer, out: Buffer, at: number): void {
  if (payload.buffer === out.buffer && payload.byteOffset === out.byteOffset + at) return;
  payload.copy(out, at);
}
