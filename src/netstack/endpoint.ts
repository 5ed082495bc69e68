import { formatIp } from './wire/ip-address.js';
import type { IpAddress } from './wire/reprs.js';

/** One side of a transport flow. */
export interface Endpoint {
  readonly address: IpAddress;
  readonly port: number;
}

export function formatEndpoint(e: Endpoint): string {
  return e.address.length === 4 ? `${formatIp(e.address)}:${e.port}` : `[${formatIp(e.address)}]:${e.port}`;
}

/** A map key for a flow: the two endpoints as the packet carried them. Cheap enough for the per-packet path. */
export function flowKey(src: IpAddress, srcPort: number, dst: IpAddress, dstPort: number): string {
  if (src.length === 4) {
    // Two 32-bit addresses and two ports as numbers: no per-byte string work for IPv4.
    const s = ((src[0]! << 24) | (src[1]! << 16) | (src[2]! << 8) | src[3]!) >>> 0;
    const d = ((dst[0]! << 24) | (dst[1]! << 16) | (dst[2]! << 8) | dst[3]!) >>> 0;
    return `${s}:${srcPort}>${d}:${dstPort}`;
  }
  return `${Buffer.from(src.buffer, src.byteOffset, 16).toString('hex')}:${srcPort}>${Buffer.from(dst.buffer, dst.byteOffset, 16).toString('hex')}:${dstPort}`;
}
