import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { finishChecksum, onesComplementSum, pseudoHeaderSum } from '../../../src/netstack/wire/checksum.js';
import { parseIpv4 } from '../../../src/netstack/wire/ipv4.js';
import { parseIpv6 } from '../../../src/netstack/wire/ipv6.js';
import { parseTcp } from '../../../src/netstack/wire/tcp.js';
import { VIRTIO_NET_HDR_LEN, VirtioGsoType } from '../../../src/netstack/wire/virtio-net-hdr.js';
import { tsoLayout, tsoSegment } from '../../../src/sandbox/wan/tso-segments.js';

const FIN = 0x01;
const PSH = 0x08;
const CWR = 0x80;

interface Tso {
  v6: boolean;
  gsoSize: number;
  optionWords: number;
  payload: Uint8Array;
  seq: number;
  id: number;
  flags: number;
  ecn: boolean;
}

/** A TSO packet as a TUN device with offload hands it over: the checksum field holds the pseudo-header's sum. */
function tsoPacket(p: Tso): Buffer {
  const ipLen = p.v6 ? 40 : 20;
  const tcpLen = 20 + p.optionWords * 4;
  const packet = Buffer.alloc(VIRTIO_NET_HDR_LEN + ipLen + tcpLen + p.payload.length);
  packet[0] = 1;
  packet[1] = (p.v6 ? VirtioGsoType.TCPV6 : VirtioGsoType.TCPV4) | (p.ecn ? VirtioGsoType.ECN : 0);
  packet.writeUInt16LE(ipLen + tcpLen, 2);
  packet.writeUInt16LE(p.gsoSize, 4);
  packet.writeUInt16LE(ipLen, 6);
  packet.writeUInt16LE(16, 8);
  const ip = VIRTIO_NET_HDR_LEN;
  const src = p.v6 ? Buffer.from('20010002000000000000000000000002', 'hex') : Buffer.from([198, 18, 0, 2]);
  const dst = p.v6 ? Buffer.from('20010002000000000000000000000001', 'hex') : Buffer.from([198, 18, 0, 1]);
  if (p.v6) {
    packet[ip] = 0x60;
    packet.writeUInt16BE(tcpLen + p.payload.length, ip + 4);
    packet[ip + 6] = 6;
    packet[ip + 7] = 64;
    src.copy(packet, ip + 8);
    dst.copy(packet, ip + 24);
  } else {
    packet[ip] = 0x45;
    packet.writeUInt16BE(Math.min(0xffff, ipLen + tcpLen + p.payload.length), ip + 2);
    packet.writeUInt16BE(p.id, ip + 4);
    packet[ip + 8] = 64;
    packet[ip + 9] = 6;
    src.copy(packet, ip + 12);
    dst.copy(packet, ip + 16);
    packet.writeUInt16BE(finishChecksum(onesComplementSum(packet, ip, 20)), ip + 10);
  }
  const tcp = ip + ipLen;
  packet.writeUInt16BE(40000, tcp);
  packet.writeUInt16BE(80, tcp + 2);
  packet.writeUInt32BE(p.seq, tcp + 4);
  packet[tcp + 12] = (tcpLen / 4) << 4;
  packet[tcp + 13] = p.flags | 0x10;
  packet.writeUInt16BE(1000, tcp + 14);
  for (let i = 0; i < p.optionWords * 4; i++) packet[tcp + 20 + i] = 1;
  packet.writeUInt16BE(pseudoHeaderSum(src, dst, 6, tcpLen + p.payload.length), tcp + 16);
  Buffer.from(p.payload).copy(packet, tcp + tcpLen);
  return packet;
}

/** What the receiving kernel does with NEEDS_CSUM: sums from csum_start and stores the result. */
function completeChecksum(segment: Buffer): Buffer {
  const start = VIRTIO_NET_HDR_LEN + segment.readUInt16LE(6);
  const field = start + segment.readUInt16LE(8);
  segment.writeUInt16BE(finishChecksum(onesComplementSum(segment, start, segment.length - start)), field);
  return segment;
}

const tso: fc.Arbitrary<Tso> = fc.record({
  v6: fc.boolean(),
  gsoSize: fc.integer({ min: 500, max: 1460 }),
  optionWords: fc.integer({ min: 0, max: 10 }),
  payload: fc.uint8Array({ minLength: 1, maxLength: 20_000 }),
  seq: fc.nat({ max: 0xffffffff }),
  id: fc.nat({ max: 0xffff }),
  flags: fc.constantFrom(0, FIN, PSH, FIN | PSH, CWR, CWR | PSH),
  ecn: fc.boolean(),
});

test('property: the wire segments of a TSO packet are valid packets whose payloads and sequence numbers tile its own', () => {
  fc.assert(
    fc.property(tso, (p) => {
      const packet = tsoPacket(p);
      const layout = tsoLayout(packet);
      assert.equal(layout.segments, Math.max(1, Math.ceil(p.payload.length / p.gsoSize)));
      if (layout.segments === 1) return;
      const payloads: Buffer[] = [];
      for (let i = 0; i < layout.segments; i++) {
        const { head, payload } = tsoSegment(packet, layout, i);
        assert.equal(head[1], VirtioGsoType.NONE);
        const wire = completeChecksum(Buffer.concat([head, payload]));
        const ipPacket = wire.subarray(VIRTIO_NET_HDR_LEN);
        let tcpBytes: Buffer;
        let pseudo: number;
        if (p.v6) {
          const ip6 = parseIpv6(ipPacket);
          tcpBytes = ip6.payload;
          pseudo = pseudoHeaderSum(ip6.src, ip6.dst, 6, tcpBytes.length);
        } else {
          const ip4 = parseIpv4(ipPacket, true);
          assert.equal(ipPacket.readUInt16BE(4), (p.id + i) & 0xffff);
          tcpBytes = ip4.payload;
          pseudo = pseudoHeaderSum(ip4.src, ip4.dst, 6, tcpBytes.length);
        }
        const segment = parseTcp(tcpBytes, pseudo);
        assert.equal(segment.seq, (p.seq + i * p.gsoSize) >>> 0);
        const last = i === layout.segments - 1;
        assert.equal(segment.flags & (FIN | PSH), last ? p.flags & (FIN | PSH) : 0);
        assert.equal(segment.flags & CWR, i === 0 ? p.flags & CWR : 0);
        assert.equal(segment.payload.length, last ? p.payload.length - i * p.gsoSize : p.gsoSize);
        payloads.push(segment.payload);
      }
      assert.deepEqual(Buffer.concat(payloads), Buffer.from(p.payload));
      assert.equal(layout.segmentBytes, (p.v6 ? 40 : 20) + 20 + p.optionWords * 4 + p.gsoSize);
    }),
    { numRuns: 300 },
  );
});

test('a packet that is not TCP TSO (UDP, ICMP, a plain segment, garbage) is one wire segment of its own length', () => {
  const plain = tsoPacket({ v6: false, gsoSize: 1000, optionWords: 0, payload: new Uint8Array(3000), seq: 1, id: 1, flags: 0, ecn: false });
  plain[1] = VirtioGsoType.NONE;
  assert.deepEqual([tsoLayout(plain).segments, tsoLayout(plain).segmentBytes], [1, plain.length - VIRTIO_NET_HDR_LEN]);
  const udp = tsoPacket({ v6: false, gsoSize: 1000, optionWords: 0, payload: new Uint8Array(3000), seq: 1, id: 1, flags: 0, ecn: false });
  udp[VIRTIO_NET_HDR_LEN + 9] = 17;
  assert.equal(tsoLayout(udp).segments, 1);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => tsoLayout(Buffer.from(bytes)).segments >= 1));
});
