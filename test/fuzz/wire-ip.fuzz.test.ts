// Fuzzes the IPv4 and IPv6 parsers (options, extension headers, fragments) and then the transport parser the
// stack would run on the payload; the virtio-net header the TUN puts in front; and the IP address and prefix text parsers
// (cluster CIDRs come from the traffic manager). Only WireError may be thrown, and no input is slow.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertSame, fuzz } from './fuzz-harness.js';
import {
  checkTransport,
  fixIpv4Checksum,
  icmpv4Messages,
  icmpv6Messages,
  ipv4Packet,
  ipv6FragmentHeader,
  ipv6OptionsHeader,
  ipv6Packet,
  isWireError,
  tcpSegments,
  udpDatagrams,
  V4_DST,
  V4_SRC,
  V6_DST,
  V6_SRC,
} from './wire-corpus.js';
import { formatPrefix, parsePrefix } from '../../src/netstack/wire/ip-address.js';
import { parseIpv4 } from '../../src/netstack/wire/ipv4.js';
import { parseIpv6 } from '../../src/netstack/wire/ipv6.js';
import { IpProtocol } from '../../src/netstack/wire/reprs.js';
import { emitVirtioNetHdr, parseVirtioNetHdr, VIRTIO_NET_HDR_LEN } from '../../src/netstack/wire/virtio-net-hdr.js';

/** The payload must be a view inside the packet: a parser never reads or hands out bytes it was not given. */
function assertInside(payload: Buffer, packet: Buffer): void {
  assert.equal(payload.buffer, packet.buffer);
  assert.ok(payload.byteOffset >= packet.byteOffset && payload.byteOffset + payload.length <= packet.byteOffset + packet.length);
}

/** Parsed with its checksum made right (mutations would fail it otherwise), then its transport as the stack does. */
function checkIpv4(input: Buffer): void {
  const fixed = Buffer.from(input);
  fixIpv4Checksum(fixed);
  const repr = parseIpv4(fixed);
  assertInside(repr.payload, fixed);
  assert.equal(repr.headerLength + repr.payload.length, fixed.readUInt16BE(2));
  if (!repr.moreFragments && repr.fragmentOffset === 0) checkTransport(repr.src, repr.dst, repr.protocol, repr.payload);
}

function checkIpv6(input: Buffer): void {
  const repr = parseIpv6(input);
  assertInside(repr.payload, input);
  if (repr.fragment) assert.equal(repr.fragment.offset % 8, 0);
  else checkTransport(repr.src, repr.dst, repr.nextHeader, repr.payload);
}

function ipv4Corpus(): Buffer[] {
  const transports: Array<[number, Buffer[]]> = [
    [IpProtocol.TCP, tcpSegments(V4_SRC, V4_DST)],
    [IpProtocol.UDP, udpDatagrams(V4_SRC, V4_DST)],
    [IpProtocol.ICMP, icmpv4Messages()],
  ];
  const packets = transports.flatMap(([protocol, payloads]) => payloads.map((p) => ipv4Packet(protocol, p)));
  const udp = udpDatagrams(V4_SRC, V4_DST)[3]!;
  packets.push(
    ipv4Packet(IpProtocol.UDP, udp, { options: 4 }),
    ipv4Packet(IpProtocol.TCP, tcpSegments(V4_SRC, V4_DST)[1]!, { options: 40 }),
    ipv4Packet(IpProtocol.UDP, udp.subarray(0, 800), { identification: 7, moreFragments: true }),
    ipv4Packet(IpProtocol.UDP, udp.subarray(800), { identification: 7, fragmentOffset: 800 }),
  );
  return packets;
}

function ipv6Corpus(): Buffer[] {
  const transports: Array<[number, Buffer[]]> = [
    [IpProtocol.TCP, tcpSegments(V6_SRC, V6_DST)],
    [IpProtocol.UDP, udpDatagrams(V6_SRC, V6_DST)],
    [IpProtocol.ICMPV6, icmpv6Messages(V6_SRC, V6_DST)],
  ];
  const packets = transports.flatMap(([protocol, payloads]) => payloads.map((p) => ipv6Packet(protocol, p)));
  const udp = udpDatagrams(V6_SRC, V6_DST)[2]!;
  packets.push(
    ipv6Packet(IpProtocol.HOP_BY_HOP, Buffer.concat([ipv6OptionsHeader(IpProtocol.IPV6_ROUTING, 0), ipv6OptionsHeader(IpProtocol.IPV6_DEST_OPTS, 2), ipv6OptionsHeader(IpProtocol.UDP, 1), udp])),
    ipv6Packet(IpProtocol.IPV6_FRAGMENT, Buffer.concat([ipv6FragmentHeader(IpProtocol.UDP, 0, true, 0xdeadbeef), udp.subarray(0, 16)])),
    ipv6Packet(IpProtocol.IPV6_FRAGMENT, Buffer.concat([ipv6FragmentHeader(IpProtocol.UDP, 16, false, 0xdeadbeef), udp.subarray(16)])),
    ipv6Packet(IpProtocol.IPV6_FRAGMENT, Buffer.concat([ipv6FragmentHeader(IpProtocol.IPV6_DEST_OPTS, 0, false, 1), ipv6OptionsHeader(IpProtocol.UDP, 0), udp])),
  );
  return packets;
}

const IPV6_EXTENSION_TOKENS = [
  ipv6OptionsHeader(IpProtocol.IPV6_DEST_OPTS, 0),
  ipv6OptionsHeader(IpProtocol.IPV6_ROUTING, 1),
  ipv6OptionsHeader(IpProtocol.HOP_BY_HOP, 0),
  ipv6FragmentHeader(IpProtocol.IPV6_FRAGMENT, 8, true, 1),
  ipv6FragmentHeader(IpProtocol.IPV6_DEST_OPTS, 0, false, 2),
  Buffer.from([IpProtocol.HOP_BY_HOP, IpProtocol.IPV6_FRAGMENT, IpProtocol.IPV6_DEST_OPTS, IpProtocol.IPV6_ROUTING]),
];

test('fuzz: IPv4 header, options and the transport behind it', (t) => {
  fuzz({ name: 'ipv4', corpus: ipv4Corpus(), dictionary: [Buffer.from([1, 1, 1, 1]), Buffer.from([0x44, 0x0c, 0x05, 0x00])], maxLength: 0xffff, run: checkIpv4, isParserError: isWireError }, t);
});

test('fuzz: IPv6 header, extension headers, fragments and the transport behind them', (t) => {
  fuzz({ name: 'ipv6', corpus: ipv6Corpus(), dictionary: IPV6_EXTENSION_TOKENS, maxLength: 40 + 0xffff, run: checkIpv6, isParserError: isWireError }, t);
});

test('fuzz: virtio-net header', (t) => {
  const headers = [
    { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 },
    { flags: 1, gsoType: 1, hdrLen: 40, gsoSize: 1448, csumStart: 20, csumOffset: 16 },
    { flags: 2, gsoType: 0x84, hdrLen: 60, gsoSize: 1428, csumStart: 40, csumOffset: 6 },
  ];
  fuzz(
    {
      name: 'virtio-net',
      corpus: headers.map((h) => {
        const buf = Buffer.alloc(VIRTIO_NET_HDR_LEN + 20);
        emitVirtioNetHdr(h, buf, 0);
        return buf;
      }),
      maxLength: 256,
      run(input) {
        const parsed = parseVirtioNetHdr(input);
        const out = Buffer.alloc(VIRTIO_NET_HDR_LEN);
        emitVirtioNetHdr(parsed, out, 0);
        assert.ok(out.equals(input.subarray(0, VIRTIO_NET_HDR_LEN)), 'virtio-net header parse → emit changed it');
      },
      isParserError: isWireError,
    },
    t,
  );
});

test('fuzz: IP address and prefix text', (t) => {
  const texts = ['10.96.0.0/12', '0.0.0.0/0', '255.255.255.255', 'fd10::/64', '::', '::1', '::ffff:10.1.2.3', '1:2:3:4:5:6:7:8/128', 'fe80::1:2', '64:ff9b::192.0.2.33/96'];
  fuzz(
    {
      name: 'ip-text',
      corpus: texts.map((text) => Buffer.from(text, 'latin1')),
      dictionary: [':', '::', '.', '/', '%eth0', '0', '255', '256', 'ffff', '00', '1.2.3.4'].map((w) => Buffer.from(w, 'latin1')),
      maxLength: 256,
      run(input) {
        const text = input.toString('latin1');
        // parsePrefix reads a bare address as a host prefix, so this covers parseIp and formatIp too.
        const prefix = parsePrefix(text);
        assertSame(parsePrefix(formatPrefix(prefix)), prefix, 'prefix text → bytes → text → bytes changed the prefix');
      },
      isParserError: isWireError,
    },
    t,
  );
});
