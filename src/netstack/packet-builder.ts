// Turns the stack's reprs into complete IP packets for the device, with the virtio-net header in front when the
// device uses one. With checksum offload the transport checksum is left for the kernel to finish (CHECKSUM_PARTIAL)
// and segments larger than the MSS are marked for the kernel to segment (GSO), so the stack hands over 64 KiB at a
// time instead of doing per-MSS work in JavaScript.
import { pseudoHeaderSum } from './wire/checksum.js';
import { emitIcmpv4, emitIcmpv6, icmpLength } from './wire/icmp.js';
import { emitIpv4Header, IPV4_HEADER_LEN } from './wire/ipv4.js';
import { emitIpv6Header, IPV6_HEADER_LEN } from './wire/ipv6.js';
import { IpProtocol, type IcmpRepr, type IpAddress, type TcpRepr, type UdpRepr } from './wire/reprs.js';
import { emitTcp, tcpHeaderLength } from './wire/tcp.js';
import { emitUdp } from './wire/udp.js';
import { emitVirtioNetHdr, VIRTIO_NET_HDR_LEN, VirtioGsoType, VirtioNetFlags } from './wire/virtio-net-hdr.js';

const TTL = 64;
/** RFC 1812: an ICMPv4 error quotes as much of the packet as fits in 576 bytes. */
const ICMPV4_ERROR_MAX = 576;
/** RFC 4443: an ICMPv6 error must fit in the minimum MTU. */
const ICMPV6_ERROR_MAX = 1280;
const TCP_CSUM_OFFSET = 16;
const UDP_CSUM_OFFSET = 6;
const UDP_HEADER_LEN = 8;

export interface PacketBuilderOptions {
  /** Where packet memory comes from (default: a fresh buffer per packet). */
  allocate?: (size: number) => Buffer;
  /** Every packet starts with a virtio_net_hdr (the device was opened with IFF_VNET_HDR). */
  vnetHeader: boolean;
  /** Leave transport checksums and segmentation to the kernel (requires vnetHeader). */
  offload: boolean;
  /** Without vnetHeader: the device fills in TCP/UDP checksums (the TUN addon's checksum option). */
  deviceChecksum?: boolean;
}

export class PacketBuilder {
  private readonly prefix: number;
  private readonly offload: boolean;
  /** TCP/UDP checksums are left for someone else: the kernel (offload) or the device (deviceChecksum). */
  private readonly checksumMode: 'full' | 'partial';
  private readonly allocate: (size: number) => Buffer;
  private ipv4Id = 0;

  constructor(options: PacketBuilderOptions) {
    this.prefix = options.vnetHeader ? VIRTIO_NET_HDR_LEN : 0;
    this.offload = options.vnetHeader && options.offload;
    this.checksumMode = this.offload || (!options.vnetHeader && options.deviceChecksum === true) ? 'partial' : 'full';
    this.allocate = options.allocate ?? Buffer.allocUnsafe;
  }

  /** The fixed bytes in front of every IP packet this builder makes (the virtio-net header, if any). */
  get headerPrefix(): number {
    return this.prefix;
  }

  /** @param gsoSize the MSS the kernel segments at when the payload is larger (offload only).
   *  @param detached the packet ends with the TCP header: the device sends seg.payload right behind it. */
  tcp(src: IpAddress, dst: IpAddress, seg: TcpRepr, gsoSize: number, detached = false): Buffer {
    const ipLen = src.length === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
    const tcpHeaderLen = tcpHeaderLength(seg.options);
    const tcpLen = tcpHeaderLen + seg.payload.length;
    const packet = this.allocate(this.prefix + ipLen + (detached ? tcpHeaderLen : tcpLen));
    const ipStart = this.prefix;
    this.emitIpHeader(src, dst, IpProtocol.TCP, tcpLen, packet, ipStart);
    const pseudo = pseudoHeaderSum(src, dst, IpProtocol.TCP, tcpLen);
    emitTcp(seg, packet, ipStart + ipLen, pseudo, this.checksumMode, detached);
    if (this.prefix > 0) {
      const segmented = this.offload && seg.payload.length > gsoSize;
      emitVirtioNetHdr(
        {
          flags: this.offload ? VirtioNetFlags.NEEDS_CSUM : 0,
          gsoType: segmented ? (src.length === 4 ? VirtioGsoType.TCPV4 : VirtioGsoType.TCPV6) : VirtioGsoType.NONE,
          hdrLen: segmented ? ipLen + tcpHeaderLen : 0,
          gsoSize: segmented ? gsoSize : 0,
          csumStart: this.offload ? ipLen : 0,
          csumOffset: this.offload ? TCP_CSUM_OFFSET : 0,
        },
        packet,
        0,
      );
    }
    return packet;
  }

  udp(src: IpAddress, dst: IpAddress, datagram: UdpRepr): Buffer {
    const ipLen = src.length === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
    const udpLen = UDP_HEADER_LEN + datagram.payload.length;
    const packet = Buffer.allocUnsafe(this.prefix + ipLen + udpLen);
    this.emitIpHeader(src, dst, IpProtocol.UDP, udpLen, packet, this.prefix);
    const pseudo = pseudoHeaderSum(src, dst, IpProtocol.UDP, udpLen);
    emitUdp(datagram, packet, this.prefix + ipLen, pseudo, this.checksumMode);
    this.emitPlainVnetHeader(packet, ipLen, UDP_CSUM_OFFSET);
    return packet;
  }

  icmp(src: IpAddress, dst: IpAddress, message: IcmpRepr): Buffer {
    const v4 = src.length === 4;
    const ipLen = v4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
    const icmpLen = icmpLength(message);
    const packet = Buffer.allocUnsafe(this.prefix + ipLen + icmpLen);
    const protocol = v4 ? IpProtocol.ICMP : IpProtocol.ICMPV6;
    this.emitIpHeader(src, dst, protocol, icmpLen, packet, this.prefix);
    if (v4) emitIcmpv4(message, packet, this.prefix + ipLen);
    else emitIcmpv6(message, packet, this.prefix + ipLen, pseudoHeaderSum(src, dst, protocol, icmpLen));
    // ICMP checksums are always complete: no partial-checksum flag.
    this.emitPlainVnetHeader(packet, 0, 0);
    return packet;
  }

  /**
   * An ICMP destination-unreachable error about `invoking` (an IP packet without device prefix), sent from the
   * address the invoking packet was for.
   */
  unreachable(invokingSrc: IpAddress, invokingDst: IpAddress, invoking: Buffer, code: number): Buffer {
    const v4 = invokingSrc.length === 4;
    const room = (v4 ? ICMPV4_ERROR_MAX - IPV4_HEADER_LEN : ICMPV6_ERROR_MAX - IPV6_HEADER_LEN) - 8;
    const quoted = invoking.subarray(0, Math.min(invoking.length, room));
    return this.icmp(invokingDst, invokingSrc, { kind: 'dest-unreachable', code, invoking: quoted });
  }

  private emitIpHeader(
    src: IpAddress,
    dst: IpAddress,
    protocol: number,
    payloadLength: number,
    out: Buffer,
    offset: number,
  ): void {
    if (src.length === 4) {
      this.ipv4Id = (this.ipv4Id + 1) & 0xffff;
      emitIpv4Header(
        { src, dst, protocol, ttl: TTL, identification: this.ipv4Id, dontFragment: true, payloadLength },
        out,
        offset,
      );
    } else {
      emitIpv6Header({ src, dst, nextHeader: protocol, hopLimit: TTL, payloadLength }, out, offset);
    }
  }

  private emitPlainVnetHeader(packet: Buffer, csumStart: number, csumOffset: number): void {
    if (this.prefix === 0) return;
    const partial = this.offload && csumOffset > 0;
    emitVirtioNetHdr(
      {
        flags: partial ? VirtioNetFlags.NEEDS_CSUM : 0,
        gsoType: VirtioGsoType.NONE,
        hdrLen: 0,
        gsoSize: 0,
        csumStart: partial ? csumStart : 0,
        csumOffset: partial ? csumOffset : 0,
      },
      packet,
      0,
    );
  }
}
