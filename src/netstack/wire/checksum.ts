// The Internet checksum (RFC 1071): a ones' complement sum of 16-bit big-endian words, complemented.
// Summing 32-bit words and folding once at the end gives the same result (RFC 1071 §2 (B)), and
// DataView reads of 32-bit words are several times faster in V8 than byte-pair arithmetic.

import type { IpAddress } from './reprs.js';

/** Below this length a DataView costs more than it saves (headers, small ICMP messages). */
const SMALL = 128;
/** Bytes summed before an intermediate fold, so the sum stays an exact double (2^53 > 2^32 * 2^20). */
const CHUNK = 1 << 22;

/** Folds any non-negative sum below 2^53 to 16 bits with end-around carry. */
function fold(sum: number): number {
  while (sum > 0xffffffff) sum = (sum % 0x100000000) + Math.floor(sum / 0x100000000);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function sumSmall(buf: Uint8Array, offset: number, length: number): number {
  let sum = 0;
  const end = offset + (length & ~1);
  for (let i = offset; i < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (length & 1) sum += buf[end]! << 8;
  return sum;
}

function sumWords(buf: Uint8Array, offset: number, length: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset + offset, length);
  // Four independent accumulators let the CPU overlap the additions.
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  let i = 0;
  const end32 = length & ~31;
  for (; i < end32; i += 32) {
    a += view.getUint32(i) + view.getUint32(i + 4);
    b += view.getUint32(i + 8) + view.getUint32(i + 12);
    c += view.getUint32(i + 16) + view.getUint32(i + 20);
    d += view.getUint32(i + 24) + view.getUint32(i + 28);
  }
  let sum = a + b + c + d;
  const end4 = length & ~3;
  for (; i < end4; i += 4) sum += view.getUint32(i);
  if (length - i >= 2) {
    sum += view.getUint16(i);
    i += 2;
  }
  if (i < length) sum += view.getUint8(i) << 8;
  return sum;
}

/**
 * The ones' complement sum of `length` bytes at `offset`, plus `initial` (a previous partial sum), folded
 * to 16 bits and not complemented. An odd trailing byte is padded with zero, so only the last piece of a
 * message may have an odd length.
 */
export function onesComplementSum(buf: Uint8Array, offset: number, length: number, initial = 0): number {
  if (length < SMALL) return fold(initial + sumSmall(buf, offset, length));
  let sum = initial;
  while (length > CHUNK) {
    sum = fold(sum + sumWords(buf, offset, CHUNK));
    offset += CHUNK;
    length -= CHUNK;
  }
  return fold(sum + sumWords(buf, offset, length));
}

/** The checksum field value for a folded sum: its ones' complement. */
export function finishChecksum(sum: number): number {
  return ~sum & 0xffff;
}

/**
 * The folded sum of the TCP/UDP/ICMPv6 pseudo-header: RFC 793 for IPv4 (4-byte addresses), RFC 8200 §8.1
 * for IPv6 (16-byte addresses). `upperLength` is the transport header plus payload length.
 */
export function pseudoHeaderSum(src: IpAddress, dst: IpAddress, protocol: number, upperLength: number): number {
  const sum = sumSmall(src, 0, src.length) + sumSmall(dst, 0, dst.length) + protocol;
  // IPv6 carries a 32-bit length; IPv4 a 16-bit one. Adding both halves covers either.
  return fold(sum + (upperLength >>> 16) + (upperLength & 0xffff));
}
