// The wire segments of a packet read from a TUN device with a virtio-net header and TSO offload: a TCP packet of
// up to 64 KiB that the kernel would have cut into MTU-sized segments (gso_size payload bytes each). The link
// emulator loses and queues per wire segment, so when some of a packet's segments are dropped it cuts the packet
// as a NIC would, and sends the survivors on with their checksums still to be completed (NEEDS_CSUM), which the
// receiving kernel treats as a checksummed local packet.

import { onesComplementSum, pseudoHeaderSum, finishChecksum } from '../../netstack/wire/checksum.js';
import { VIRTIO_NET_HDR_LEN, VirtioGsoType, VirtioNetFlags } from '../../netstack/wire/virtio-net-hdr.js';

const TCP = 6;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

/** How a packet (virtio-net header included) crosses the wire. */
export interface TsoLayout {
  /** 1 unless it is a TCP TSO packet. */
  segments: number;
  /** Wire bytes of one segment (IP packet, headers included); the last may be shorter. */
  segmentBytes: number;
  /** Offset of the TCP header, and of the payload (both counted from the packet's start), for splitting. */
  tcpStart: number;
  payloadStart: number;
  gsoSize: number;
}

/** The packet's layout; a packet this cannot cut (not TCP over IPv4/IPv6, malformed) counts as one segment. */
export function tsoLayout(packet: Buffer): TsoLayout {
  const whole: TsoLayout = { segments: 1, segmentBytes: Math.max(0, packet.length - VIRTIO_NET_HDR_LEN), tcpStart: 0, payloadStart: 0, gsoSize: 0 };
  if (packet.length < VIRTIO_NET_HDR_LEN + 20) return whole;
  const gsoType = packet[1]! & ~VirtioGsoType.ECN;
  const gsoSize = packet.readUInt16LE(4);
  if ((gsoType !== VirtioGsoType.TCPV4 && gsoType !== VirtioGsoType.TCPV6) || gsoSize === 0) return whole;
  const ip = VIRTIO_NET_HDR_LEN;
  const version = packet[ip]! >> 4;
  let tcpStart: number;
  if (version === 4 && packet[ip + 9] === TCP) tcpStart = ip + (packet[ip]! & 0x0f) * 4;
  else if (version === 6 && packet[ip + 6] === TCP) tcpStart = ip + 40;
  else return whole;
  if (packet.length < tcpStart + 20) return whole;
  const payloadStart = tcpStart + (packet[tcpStart + 12]! >> 4) * 4;
  const payload = packet.length - payloadStart;
  if (payload <= gsoSize) return { ...whole, tcpStart, payloadStart, gsoSize };
  return { segments: Math.ceil(payload / gsoSize), segmentBytes: payloadStart - ip + gsoSize, tcpStart, payloadStart, gsoSize };
}

/**
 * Segment `index` of a TSO packet as its headers (a fresh buffer, virtio-net header first) and its payload (a view
 * of `packet`): written together, as TunDevice.write's packet and tail, they are the segment the kernel would
 * have sent.
 */
export function tsoSegment(packet: Buffer, layout: TsoLayout, index: number): { head: Buffer; payload: Buffer } {
  const { tcpStart, payloadStart, gsoSize, segments } = layout;
  const ip = VIRTIO_NET_HDR_LEN;
  const from = payloadStart + index * gsoSize;
  const payload = packet.subarray(from, Math.min(packet.length, from + gsoSize));
  const head = Buffer.from(packet.subarray(0, payloadStart));
  const tcpLength = payloadStart - tcpStart + payload.length;
  // virtio-net header: one segment, checksum still to be completed where the TSO packet's was.
  head[0] = VirtioNetFlags.NEEDS_CSUM;
  head[1] = VirtioGsoType.NONE;
  head.writeUInt16LE(payloadStart - ip, 2);
  head.writeUInt16LE(0, 4);
  head.writeUInt16LE(tcpStart - ip, 6);
  head.writeUInt16LE(16, 8);
  let pseudo: number;
  if (head[ip]! >> 4 === 4) {
    head.writeUInt16BE(tcpStart - ip + tcpLength, ip + 2);
    head.writeUInt16BE((head.readUInt16BE(ip + 4) + index) & 0xffff, ip + 4);
    head.writeUInt16BE(0, ip + 10);
    head.writeUInt16BE(finishChecksum(onesComplementSum(head, ip, tcpStart - ip)), ip + 10);
    pseudo = pseudoHeaderSum(head.subarray(ip + 12, ip + 16), head.subarray(ip + 16, ip + 20), TCP, tcpLength);
  } else {
    head.writeUInt16BE(tcpLength, ip + 4);
    pseudo = pseudoHeaderSum(head.subarray(ip + 8, ip + 24), head.subarray(ip + 24, ip + 40), TCP, tcpLength);
  }
  head.writeUInt32BE((head.readUInt32BE(tcpStart + 4) + index * gsoSize) >>> 0, tcpStart + 4);
  let flags = head[tcpStart + 13]!;
  if (index < segments - 1) flags &= ~(TCP_FIN | TCP_PSH);
  if (index > 0) flags &= ~TCP_CWR;
  head[tcpStart + 13] = flags;
  // With NEEDS_CSUM the field holds the pseudo-header's sum; the receiver adds the rest.
  head.writeUInt16BE(pseudo, tcpStart + 16);
  return { head, payload };
}
