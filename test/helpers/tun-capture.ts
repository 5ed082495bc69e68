// What the stack writes into its TUN device, seen two ways for the kernel tests' size checks: tcpdump on the
// device inside the test namespace (the kernel's view, for links without the virtio-net header), or a tap on
// NetStack.output (for the offload variant, where tcpdump only sees the GSO super-packet and not its gso_size).
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetStack } from '../../src/netstack/stack.js';
import { VIRTIO_NET_HDR_LEN, VirtioGsoType } from '../../src/netstack/wire/virtio-net-hdr.js';
import type { TestNetns } from './netns.js';

/** One TCP packet on the link: addresses, ports, flags and sizes. */
export interface TcpSeen {
  /** Addresses as formatAddress prints them (dotted quad, or eight hex groups: see canonicalAddress). */
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** The TCP flags byte (FIN 1, SYN 2, RST 4, ACK 16). */
  flags: number;
  /** IP packet length (header included); for a GSO super-packet, the whole super-packet. */
  ipLength: number;
  /** IP header plus TCP header with options. */
  headers: number;
  /** TCP option bytes. */
  options: number;
  /** Payload bytes; for a GSO super-packet, the payload of each segment but the last (gso_size). */
  payloadPerSegment: number;
  /** Whether the kernel segments this packet (virtio-net gso_type TCPV4/TCPV6). */
  gso: boolean;
}

/** The longest IP packet the link carries for `p`: the packet itself, or each segment of a GSO super-packet. */
export function wireLength(p: TcpSeen): number {
  return p.gso ? p.headers + p.payloadPerSegment : p.ipLength;
}

function formatAddress(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/** Parses an IP packet of `length` bytes on the link (of which `ip` may hold only the first snap bytes). */
function parseTcp(ip: Buffer, length: number, gsoSize: number): TcpSeen | null {
  if (ip.length < 1) return null;
  const version = ip[0]! >> 4;
  let ipHeader: number;
  let src: Buffer;
  let dst: Buffer;
  if (version === 4) {
    if (ip[9] !== 6) return null;
    ipHeader = (ip[0]! & 0x0f) * 4;
    src = ip.subarray(12, 16);
    dst = ip.subarray(16, 20);
  } else if (version === 6) {
    if (ip[6] !== 6) return null; // neither the stack nor the kernel's TCP here sends IPv6 extension headers
    ipHeader = 40;
    src = ip.subarray(8, 24);
    dst = ip.subarray(24, 40);
  } else {
    return null;
  }
  const tcpHeader = (ip[ipHeader + 12]! >> 4) * 4;
  const headers = ipHeader + tcpHeader;
  const payload = length - headers;
  return {
    src: formatAddress(src),
    dst: formatAddress(dst),
    srcPort: ip.readUInt16BE(ipHeader),
    dstPort: ip.readUInt16BE(ipHeader + 2),
    flags: ip[ipHeader + 13]!,
    ipLength: length,
    headers,
    options: tcpHeader - 20,
    payloadPerSegment: gsoSize > 0 ? Math.min(gsoSize, payload) : payload,
    gso: gsoSize > 0,
  };
}

/** Canonical form of an address as formatAddress prints it, for comparing with a test's address strings. */
export function canonicalAddress(address: string): string {
  if (!address.includes(':')) return address;
  const [head, tail] = address.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => parseInt(g, 16).toString(16)).join(':');
}

/** Reads a pcap file (LINKTYPE_RAW, as tcpdump writes for a TUN): one TcpSeen per TCP packet. */
export function parsePcap(file: Buffer): TcpSeen[] {
  if (file.length < 24) return [];
  const magic = file.readUInt32LE(0);
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error(`not a little-endian pcap file (magic ${magic.toString(16)})`);
  const linkType = file.readUInt32LE(20);
  if (linkType !== 101 && linkType !== 12) throw new Error(`pcap link type ${linkType}, expected raw IP`);
  const out: TcpSeen[] = [];
  for (let at = 24; at + 16 <= file.length; ) {
    const captured = file.readUInt32LE(at + 8);
    const length = file.readUInt32LE(at + 12);
    const data = file.subarray(at + 16, at + 16 + captured);
    at += 16 + captured;
    if (data.length < captured) break; // tcpdump was stopped mid-record
    const tcp = parseTcp(data, length, 0);
    if (tcp !== null) out.push(tcp);
  }
  return out;
}

let captures = 0;

/**
 * tcpdump on `device` in the namespace, packets the kernel receives from it only (what the stack wrote), the
 * first 128 bytes of each (all the headers), at most `count` packets. stop() ends it and returns what it saw.
 */
export async function captureOnTun(ns: TestNetns, device: string, count: number): Promise<{ stop(): Promise<TcpSeen[]> }> {
  const file = join(tmpdir(), `kubetun-capture-${process.pid}-${++captures}.pcap`);
  const child = ns.spawn('tcpdump', ['-i', device, '-Q', 'in', '-nn', '-U', '-s', '128', '-c', String(count), '-w', file]);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${stderr}`)), 10_000);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (stderr.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`tcpdump exited: ${stderr}`));
    });
  });
  return {
    async stop() {
      child.kill('SIGINT');
      await exited;
      try {
        return parsePcap(await readFile(file));
      } finally {
        await rm(file, { force: true });
      }
    },
  };
}

/** The IP packet behind an optional virtio-net header, and the header's gso_size for TCP GSO (else 0). */
/** `tailLength`: the payload bytes the device sends behind `packet` (NetStack.output's tails). */
function fromDevice(packet: Buffer, vnetHeader: boolean, tailLength = 0): TcpSeen | null {
  if (!vnetHeader) return parseTcp(packet, packet.length + tailLength, 0);
  if (packet.length <= VIRTIO_NET_HDR_LEN) return null;
  const gsoType = packet[1]! & ~VirtioGsoType.ECN;
  const tcpGso = gsoType === VirtioGsoType.TCPV4 || gsoType === VirtioGsoType.TCPV6;
  const ip = packet.subarray(VIRTIO_NET_HDR_LEN);
  return parseTcp(ip, ip.length + tailLength, tcpGso ? packet.readUInt16LE(4) : 0);
}

/** Taps NetStack.input: every TCP packet the kernel sends to the stack; untap() restores the stack's input. */
export function tapStackInput(stack: NetStack, vnetHeader: boolean): { packets: TcpSeen[]; untap(): void } {
  const packets: TcpSeen[] = [];
  const input = stack.input.bind(stack);
  stack.input = (packet, now) => {
    const tcp = fromDevice(packet, vnetHeader);
    if (tcp !== null) packets.push(tcp);
    input(packet, now);
  };
  return {
    packets,
    untap: () => {
      stack.input = input;
    },
  };
}

/**
 * Taps NetStack.output: every TCP packet the stack writes, with the virtio-net header's gso_size when the device
 * has one. Only the headers are read, so the tap costs little per packet; untap() restores the stack's output.
 */
export function tapStackOutput(stack: NetStack, vnetHeader: boolean): { packets: TcpSeen[]; untap(): void } {
  const packets: TcpSeen[] = [];
  const output = stack.output.bind(stack);
  stack.output = (now, out, tails) => {
    const first = out.length;
    output(now, out, tails);
    for (let i = first; i < out.length; i++) {
      const tcp = fromDevice(out[i]!, vnetHeader, tails?.[i]?.length ?? 0);
      if (tcp !== null) packets.push(tcp);
    }
  };
  return {
    packets,
    untap: () => {
      stack.output = output;
    },
  };
}
