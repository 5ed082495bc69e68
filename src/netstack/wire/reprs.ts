// What a packet means, as plain values (smoltcp's "repr"). Parsers in this folder produce these and emitters
// consume them; the rest of the stack never touches header bytes. Payloads are views into the packet's buffer.

/** An IP address as its network-order bytes: 4 for IPv4, 16 for IPv6. */
export type IpAddress = Uint8Array;

export const IpProtocol = {
  HOP_BY_HOP: 0,
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  IPV6_ROUTING: 43,
  IPV6_FRAGMENT: 44,
  ICMPV6: 58,
  IPV6_NO_NEXT: 59,
  IPV6_DEST_OPTS: 60,
} as const;

export type WireErrorCode =
  | 'TRUNCATED'
  | 'BAD_VERSION'
  | 'BAD_HEADER_LENGTH'
  | 'BAD_LENGTH'
  | 'BAD_CHECKSUM'
  | 'BAD_OPTION'
  | 'BAD_FRAGMENT'
  | 'UNSUPPORTED';

/** Malformed input. Parsers throw only this; the stack catches it, counts it by code and drops the packet. */
export class WireError extends Error {
  constructor(
    readonly code: WireErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'WireError';
  }
}

/** How an emitter fills a transport checksum. */
export type ChecksumMode =
  /** The complete checksum, computed in JS. */
  | 'full'
  /** The folded pseudo-header sum, not complemented: the device (virtio-net offload) completes it. */
  | 'partial';

export interface Ipv4Repr {
  src: IpAddress;
  dst: IpAddress;
  protocol: number;
  ttl: number;
  identification: number;
  dontFragment: boolean;
  moreFragments: boolean;
  /** In bytes (the header field times 8). */
  fragmentOffset: number;
  /** DSCP and ECN, the former TOS byte. */
  tos: number;
  /** Header length in bytes including options (options are skipped, not interpreted). */
  headerLength: number;
  /** The bytes after the header up to the total length (never trailing padding). */
  payload: Buffer;
}

export interface Ipv6FragmentInfo {
  /** In bytes. */
  offset: number;
  moreFragments: boolean;
  identification: number;
}

export interface Ipv6Repr {
  src: IpAddress;
  dst: IpAddress;
  /** The upper-layer protocol after every extension header was walked (or IPV6_FRAGMENT's inner header). */
  nextHeader: number;
  hopLimit: number;
  trafficClass: number;
  flowLabel: number;
  /** Present when a fragment header was found; payload is then the fragment's data. */
  fragment?: Ipv6FragmentInfo;
  /** The upper-layer bytes (after all extension headers). */
  payload: Buffer;
}

export const TcpFlags = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

export interface TcpOptions {
  mss?: number;
  windowScale?: number;
  sackPermitted?: boolean;
  /** SACK blocks as [left, right) sequence numbers, at most 4 (3 with timestamps). */
  sack?: Array<[number, number]>;
  timestamp?: { value: number; echo: number };
}

export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  /** Unsigned 32-bit sequence numbers. */
  seq: number;
  ack: number;
  /** Bitwise OR of TcpFlags. */
  flags: number;
  /** The raw 16-bit window field (unscaled). */
  window: number;
  urgent: number;
  options: TcpOptions;
  payload: Buffer;
}

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

/** ICMPv4 and ICMPv6 share this shape; type numbers differ by version (see icmp.ts). */
export type IcmpRepr =
  | { kind: 'echo-request' | 'echo-reply'; identifier: number; sequence: number; data: Buffer }
  | {
      kind: 'dest-unreachable';
      code: number;
      /** The start of the packet that caused it (IP header and at least 8 bytes of its payload). */
      invoking: Buffer;
    }
  | {
      /** ICMPv4 destination unreachable code 4, "fragmentation needed" (RFC 1191), or ICMPv6 packet too big
       *  (RFC 4443 §3.2): the next hop takes packets of at most `mtu` bytes. */
      kind: 'packet-too-big';
      mtu: number;
      invoking: Buffer;
    }
  | { kind: 'other'; type: number; code: number; body: Buffer };
