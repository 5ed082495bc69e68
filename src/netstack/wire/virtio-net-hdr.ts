// struct virtio_net_hdr (virtio spec §5.1.6), prepended to each packet by a Linux TUN opened with
// IFF_VNET_HDR. Fields are little-endian, as the TUN uses them on little-endian hosts (TUNSETVNETLE).

import { WireError } from './reprs.js';

export const VIRTIO_NET_HDR_LEN = 10;

export const VirtioNetFlags = { NEEDS_CSUM: 1, DATA_VALID: 2 } as const;
export const VirtioGsoType = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, ECN: 0x80 } as const;

export interface VirtioNetHdr {
  /** VirtioNetFlags bits. */
  flags: number;
  /** A VirtioGsoType, possibly ORed with ECN. */
  gsoType: number;
  /** Length of the headers to copy onto each segment (Ethernet-less: IP plus transport). */
  hdrLen: number;
  /** Payload bytes per segment when the packet is to be segmented. */
  gsoSize: number;
  /** Where checksumming starts (NEEDS_CSUM) … */
  csumStart: number;
  /** … and where, relative to csumStart, the result goes. */
  csumOffset: number;
}

export function parseVirtioNetHdr(buf: Buffer): VirtioNetHdr {
  if (buf.length < VIRTIO_NET_HDR_LEN) {
    throw new WireError('TRUNCATED', `virtio-net header of ${buf.length} bytes is shorter than 10.`);
  }
  return {
    flags: buf[0]!,
    gsoType: buf[1]!,
    hdrLen: buf.readUInt16LE(2),
    gsoSize: buf.readUInt16LE(4),
    csumStart: buf.readUInt16LE(6),
    csumOffset: buf.readUInt16LE(8),
  };
}

/** Writes the 10-byte header at `offset`; returns 10. */
export function emitVirtioNetHdr(h: VirtioNetHdr, out: Buffer, offset: number): number {
  out[offset] = h.flags;
  out[offset + 1] = h.gsoType;
  out.writeUInt16LE(h.hdrLen, offset + 2);
  out.writeUInt16LE(h.gsoSize, offset + 4);
  out.writeUInt16LE(h.csumStart, offset + 6);
  out.writeUInt16LE(h.csumOffset, offset + 8);
  return VIRTIO_NET_HDR_LEN;
}
