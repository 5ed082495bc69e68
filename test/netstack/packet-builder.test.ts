import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PacketBuilder } from '../../src/netstack/packet-builder.js';
import { onesComplementSum, pseudoHeaderSum } from '../../src/netstack/wire/checksum.js';
import { parseIp } from '../../src/netstack/wire/ip-address.js';
import { parseIpv4 } from '../../src/netstack/wire/ipv4.js';
import { IpProtocol, TcpFlags, type TcpRepr } from '../../src/netstack/wire/reprs.js';
import { parseTcp } from '../../src/netstack/wire/tcp.js';
import { parseVirtioNetHdr, VirtioGsoType, VirtioNetFlags } from '../../src/netstack/wire/virtio-net-hdr.js';

const SRC = parseIp('198.18.10.7');
const DST = parseIp('198.18.0.1');

function segment(payloadLength: number): TcpRepr {
  return { srcPort: 80, dstPort: 40000, seq: 1, ack: 2, flags: TcpFlags.ACK, window: 100, urgent: 0, options: {}, payload: Buffer.alloc(payloadLength, 7) };
}

test('with offload, a segment larger than the MSS is marked for kernel segmentation with a partial checksum', () => {
  const packet = new PacketBuilder({ vnetHeader: true, offload: true }).tcp(SRC, DST, segment(20_000), 1460);
  const hdr = parseVirtioNetHdr(packet);
  assert.deepEqual(hdr, { flags: VirtioNetFlags.NEEDS_CSUM, gsoType: VirtioGsoType.TCPV4, hdrLen: 40, gsoSize: 1460, csumStart: 20, csumOffset: 16 });
  const ip = parseIpv4(packet.subarray(10));
  // The TCP checksum field holds the folded pseudo-header sum, which the kernel completes.
  assert.equal(ip.payload.readUInt16BE(16), pseudoHeaderSum(SRC, DST, IpProtocol.TCP, ip.payload.length));
});

test('with offload, a small segment is not marked for segmentation', () => {
  const packet = new PacketBuilder({ vnetHeader: true, offload: true }).tcp(SRC, DST, segment(100), 1460);
  assert.equal(parseVirtioNetHdr(packet).gsoType, VirtioGsoType.NONE);
});

test('without offload the checksum is complete and verifies', () => {
  const packet = new PacketBuilder({ vnetHeader: false, offload: false }).tcp(SRC, DST, segment(999), 1460);
  const ip = parseIpv4(packet);
  const sum = onesComplementSum(ip.payload, 0, ip.payload.length, pseudoHeaderSum(SRC, DST, IpProtocol.TCP, ip.payload.length));
  assert.equal(sum, 0xffff);
  assert.equal(parseTcp(ip.payload, pseudoHeaderSum(SRC, DST, IpProtocol.TCP, ip.payload.length)).payload.length, 999);
});

test('with deviceChecksum the TCP/UDP checksum is left to the device (no vnet header, no JS sum)', () => {
  const builder = new PacketBuilder({ vnetHeader: false, offload: false, deviceChecksum: true });
  const tcp = parseIpv4(builder.tcp(SRC, DST, segment(999), 1460));
  assert.equal(tcp.payload.readUInt16BE(16), pseudoHeaderSum(SRC, DST, IpProtocol.TCP, tcp.payload.length));
  const udp = parseIpv4(builder.udp(SRC, DST, { srcPort: 53, dstPort: 40000, payload: Buffer.alloc(33, 1) }));
  assert.equal(udp.payload.readUInt16BE(6), pseudoHeaderSum(SRC, DST, IpProtocol.UDP, udp.payload.length));
});

test('an ICMP error quotes at most what fits in 576 bytes (IPv4)', () => {
  const invoking = Buffer.alloc(2000, 1);
  const packet = new PacketBuilder({ vnetHeader: false, offload: false }).unreachable(DST, SRC, invoking, 1);
  assert.equal(packet.length, 576);
});

test('a detached TCP payload (gather write): header + payload are byte for byte the packet built in one piece, in every checksum mode, any options and payload length', () => {
  const configs = [
    { vnetHeader: false, offload: false },
    { vnetHeader: false, offload: false, deviceChecksum: true },
    { vnetHeader: true, offload: true },
  ];
  fc.assert(
    fc.property(
      fc.constantFrom(...configs),
      fc.uint8Array({ minLength: 0, maxLength: 3000 }),
      fc.boolean(),
      fc.array(fc.tuple(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff })), { maxLength: 3 }),
      (config, bytes, timestamps, sack) => {
        const seg = segment(0);
        seg.payload = Buffer.from(bytes);
        seg.options = { ...(timestamps ? { timestamp: { value: 7, echo: 9 } } : {}), ...(sack.length > 0 ? { sack } : {}) };
        const whole = new PacketBuilder(config).tcp(SRC, DST, seg, 1460);
        const header = new PacketBuilder(config).tcp(SRC, DST, seg, 1460, true);
        assert.deepEqual(Buffer.concat([header, seg.payload]), whole);
      },
    ),
  );
});
