// UDP header (RFC 768).

import { finishChecksum, onesComplementSum } from './checksum.js';
import { WireError, type ChecksumMode, type UdpRepr } from './reprs.js';

const HEADER_LEN = 8;
const CHECKSUM_AT = 6;

/**
 * Parses a UDP datagram from the IP payload `buf`; the payload ends at the UDP length field. `pseudoSum` is
 * pseudoHeaderSum(src, dst, 17, buf.length), or null when the device vouched. A zero checksum field means the
 * sender computed none (allowed for IPv4; IPv6 senders must not send it, and it is accepted here as well).
 */
export function parseUdp(buf: Buffer, pseudoSum: number | null): UdpRepr {
  if (buf.length < HEADER_LEN) {
    throw new WireError('TRUNCATED', `UDP datagram of ${buf.length} bytes is shorter than its 8-byte header.`);
  }
  const length = buf.readUInt16BE(4);
  if (length < HEADER_LEN) throw new WireError('BAD_LENGTH', `UDP length ${length} is below the minimum of 8.`);
  if (length > buf.length) {
    throw new WireError('TRUNCATED', `UDP length ${length} exceeds the ${buf.length} bytes received.`);
  }
  if (pseudoSum !== null && buf.readUInt16BE(CHECKSUM_AT) !== 0) {
    // The pseudo-header carries the UDP length (RFC 8200 §8.1); swap it in if the IP payload was longer.
    const sum = length === buf.length ? pseudoSum : pseudoSum + (~buf.length & 0xffff) + length;
    if (onesComplementSum(buf, 0, length, sum) !== 0xffff) {
      throw new WireError('BAD_CHECKSUM', 'UDP checksum does not match.');
    }
  }
  return { srcPort: buf.readUInt16BE(0), dstPort: buf.readUInt16BE(2), payload: buf.subarray(HEADER_LEN, length) };
}

/**
 * Writes header and payload at `offset`; returns the bytes written. `pseudoSum` is pseudoHeaderSum(src, dst,
 * 17, written length). A computed checksum of 0 is sent as 0xffff, since 0 means "no checksum". In 'partial'
 * mode the field holds pseudoSum for the device to complete. A payload already in place is not copied.
 */
export function emitUdp(repr: UdpRepr, out: Buffer, offset: number, pseudoSum: number, mode: ChecksumMode): number {
  const length = HEADER_LEN + repr.payload.length;
  if (length > 0xffff) {
    throw new WireError('BAD_LENGTH', `UDP payload of ${repr.payload.length} bytes does not fit the 16-bit length.`);
  }
  out.writeUInt16BE(repr.srcPort, offset);
  out.writeUInt16BE(repr.dstPort, offset + 2);
  out.writeUInt16BE(length, offset + 4);
  out.writeUInt16BE(0, offset + CHECKSUM_AT);
  const payload = repr.payload;
  if (payload.buffer !== out.buffer || payload.byteOffset !== out.byteOffset + offset + HEADER_LEN) {
    payload.copy(out, offset + HEADER_LEN);
  }
  let checksum = pseudoSum;
  if (mode === 'full') checksum = finishChecksum(onesComplementSum(out, offset, length, pseudoSum)) || 0xffff;
  out.writeUInt16BE(checksum, offset + CHECKSUM_AT);
  return length;
}
