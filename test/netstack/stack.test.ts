// The stack with no device: packets built by hand go in with a fake clock, and what comes out is parsed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { PacketBuilder } from '../../src/netstack/packet-builder.js';
import { NetStack, type NetStackHandlers, type NetStackOptions, type TcpConnectRequest } from '../../src/netstack/stack.js';
import { parseIcmpv4, parseIcmpv6 } from '../../src/netstack/wire/icmp.js';
import { parseIp } from '../../src/netstack/wire/ip-address.js';
import type { TcpSocket, TcpSocketError } from '../../src/netstack/tcp-socket.js';
import { emitIpv4Header, parseIpv4 } from '../../src/netstack/wire/ipv4.js';
import { emitIpv6Header, parseIpv6 } from '../../src/netstack/wire/ipv6.js';
import { pseudoHeaderSum } from '../../src/netstack/wire/checksum.js';
import { IpProtocol, TcpFlags, type IcmpRepr, type IpAddress, type TcpOptions, type TcpRepr, type UdpRepr } from '../../src/netstack/wire/reprs.js';
import { parseTcp } from '../../src/netstack/wire/tcp.js';
import { emitUdp, parseUdp } from '../../src/netstack/wire/udp.js';
import { parseVirtioNetHdr, VIRTIO_NET_HDR_LEN, VirtioNetFlags } from '../../src/netstack/wire/virtio-net-hdr.js';

interface Parsed {
  src: string;
  dst: string;
  tcp?: TcpRepr;
  udp?: UdpRepr;
  icmp?: IcmpRepr;
}

const CLIENT4 = parseIp('198.18.0.1');
const SERVICE4 = parseIp('198.18.10.7');
const CLIENT6 = parseIp('2001:2::1');
const SERVICE6 = parseIp('2001:2:10::7');

function parse(raw: Buffer, prefix = 0): Parsed {
  const packet = raw.subarray(prefix);
  const v4 = packet[0]! >> 4 === 4;
  const ip = v4 ? parseIpv4(packet) : parseIpv6(packet);
  const protocol = v4 ? (ip as ReturnType<typeof parseIpv4>).protocol : (ip as ReturnType<typeof parseIpv6>).nextHeader;
  // With offload the device finishes the transport checksum: the packet holds only the pseudo-header sum.
  const offloaded = prefix > 0 && (raw[0]! & VirtioNetFlags.NEEDS_CSUM) !== 0;
  const pseudo = offloaded ? null : pseudoHeaderSum(ip.src, ip.dst, protocol, ip.payload.length);
  const result: Parsed = { src: ip.src.join('.'), dst: ip.dst.join('.') };
  if (protocol === IpProtocol.TCP) result.tcp = parseTcp(ip.payload, pseudo);
  else if (protocol === IpProtocol.UDP) result.udp = parseUdp(ip.payload, pseudo);
  else if (protocol === IpProtocol.ICMP) result.icmp = parseIcmpv4(ip.payload);
  else if (protocol === IpProtocol.ICMPV6) result.icmp = parseIcmpv6(ip.payload, pseudo ?? 0);
  return result;
}

/** Plays the kernel: builds packets for the stack and parses what it sends back, on a fake clock. */
class Harness {
  readonly stack: NetStack;
  readonly peer: PacketBuilder;
  /** The virtio-net header in front of every packet, when the stack uses one. */
  readonly prefix: number;
  now = 1000;
  wakes = 0;

  constructor(handlers: NetStackHandlers, options: Partial<NetStackOptions> = {}) {
    let iss = 1_000_000;
    this.stack = new NetStack({ mtu: 1500, random32: () => (iss += 1_000_000), ...options }, handlers);
    this.stack.onWake = () => this.wakes++;
    this.stack.onInternalError = (error) => assert.fail(error as Error);
    this.peer = new PacketBuilder({ vnetHeader: options.vnetHeader ?? false, offload: false });
    this.prefix = this.peer.headerPrefix;
  }

  tcp(src: IpAddress, dst: IpAddress, seg: Partial<TcpRepr>): void {
    const full: TcpRepr = {
      srcPort: 40000,
      dstPort: 80,
      seq: 5000,
      ack: 0,
      flags: TcpFlags.SYN,
      window: 65535,
      urgent: 0,
      options: {},
      payload: Buffer.alloc(0),
      ...seg,
    };
    this.stack.input(this.peer.tcp(src, dst, full, 1460), this.now);
  }

  output(): Parsed[] {
    return this.rawOutput().map((packet) => parse(packet, this.prefix));
  }

  /** What the stack sent, as the device would get it. */
  rawOutput(): Buffer[] {
    const out: Buffer[] = [];
    this.stack.output(this.now, out);
    return out;
  }

  advance(ms: number): Parsed[] {
    this.now += ms;
    return this.output();
  }
}

for (const [family, client, service] of [
  [4, CLIENT4, SERVICE4],
  [6, CLIENT6, SERVICE6],
] as const) {
  describe(`NetStack TCP two-phase accept, IPv${family}`, () => {
    test('a SYN is held, with nothing sent, until the application decides', () => {
      const requests: TcpConnectRequest[] = [];
      const h = new Harness({ tcpConnect: (r) => requests.push(r) });
      h.tcp(client, service, {});
      assert.equal(requests.length, 1);
      assert.deepEqual(requests[0]!.local, { address: service, port: 80 });
      assert.deepEqual(h.output(), []);
      assert.equal(h.stack.stats.pendingSyns, 1);
    });

    test('accept sends a SYN-ACK for the client SYN; then data flows to the socket and back', async () => {
      let socket: ReturnType<TcpConnectRequest['accept']> | undefined;
      const h = new Harness({ tcpConnect: (r) => (socket = r.accept()) });
      h.tcp(client, service, { seq: 5000, options: { mss: 1460 } });
      const [synAck] = h.output();
      assert.equal(synAck!.tcp!.flags & (TcpFlags.SYN | TcpFlags.ACK), TcpFlags.SYN | TcpFlags.ACK);
      assert.equal(synAck!.tcp!.ack, 5001);
      const serverIss = synAck!.tcp!.seq;
      h.tcp(client, service, { seq: 5001, ack: serverIss + 1, flags: TcpFlags.ACK });
      h.tcp(client, service, { seq: 5001, ack: serverIss + 1, flags: TcpFlags.ACK | TcpFlags.PSH, payload: Buffer.from('ping') });
      h.output();
      const got = await new Promise<Buffer>((resolve) => socket!.once('data', resolve));
      assert.equal(got.toString(), 'ping');
      socket!.write('pong');
      await new Promise((r) => setImmediate(r));
      const data = h.output().find((p) => p.tcp!.payload.length > 0);
      assert.equal(data?.tcp!.payload.toString(), 'pong');
      assert.equal(data?.tcp!.seq, serverIss + 1);
    });

    test('refuse answers with RST|ACK acknowledging the SYN', () => {
      const h = new Harness({ tcpConnect: (r) => r.refuse() });
      h.tcp(client, service, { seq: 777 });
      const [rst] = h.output();
      assert.equal(rst!.tcp!.flags & TcpFlags.RST, TcpFlags.RST);
      assert.equal(rst!.tcp!.ack, 778);
      assert.equal(h.stack.stats.tcpFlows, 0);
      assert.equal(h.stack.stats.pendingSyns, 0);
    });

    test('unreachable answers with ICMP destination unreachable quoting the SYN', () => {
      const h = new Harness({ tcpConnect: (r) => r.unreachable() });
      h.tcp(client, service, {});
      const [icmp] = h.output();
      assert.equal(icmp!.icmp!.kind, 'dest-unreachable');
      assert.equal(icmp!.src, service.join('.'));
      const quoted = icmp!.icmp!.kind === 'dest-unreachable' ? icmp!.icmp!.invoking : Buffer.alloc(0);
      assert.ok(quoted.length >= (family === 4 ? 28 : 48));
    });

    test('no decision within the accept timeout → unreachable, and a late decision throws', () => {
      let request: TcpConnectRequest | undefined;
      const h = new Harness({ tcpConnect: (r) => (request = r) }, { limits: { acceptTimeoutMs: 500 } });
      h.tcp(client, service, {});
      assert.deepEqual(h.advance(499), []);
      assert.equal(h.stack.pollAt(), 1500);
      const [icmp] = h.advance(1);
      assert.equal(icmp!.icmp!.kind, 'dest-unreachable');
      assert.throws(() => request!.accept(), /already decided or expired/);
    });

    test('a repeated SYN while undecided is absorbed; a RST withdraws the attempt', () => {
      const requests: TcpConnectRequest[] = [];
      const h = new Harness({ tcpConnect: (r) => requests.push(r) });
      h.tcp(client, service, {});
      h.tcp(client, service, {});
      assert.equal(requests.length, 1);
      h.tcp(client, service, { flags: TcpFlags.RST, seq: 5001 });
      assert.equal(h.stack.stats.tcpFlows, 0);
      assert.throws(() => requests[0]!.accept());
    });

    test('half-open SYNs beyond the limit are dropped and counted', () => {
      const h = new Harness({ tcpConnect: () => undefined }, { limits: { maxPendingSyns: 3 } });
      for (let port = 1; port <= 5; port++) h.tcp(client, service, { srcPort: port });
      assert.equal(h.stack.stats.pendingSyns, 3);
      assert.equal(h.stack.stats.dropped['syn-flood'], 2);
    });

    test('a segment for no connection gets a RST', () => {
      const h = new Harness({ tcpConnect: () => assert.fail('not a SYN') });
      h.tcp(client, service, { flags: TcpFlags.ACK, seq: 10, ack: 99 });
      const [rst] = h.output();
      assert.equal(rst!.tcp!.flags & TcpFlags.RST, TcpFlags.RST);
      assert.equal(rst!.tcp!.seq, 99);
    });
  });

  describe(`NetStack UDP and ICMP, IPv${family}`, () => {
    const udp = (h: Harness, payload: string, srcPort = 5353): void => {
      h.stack.input(h.peer.udp(client, service, { srcPort, dstPort: 53, payload: Buffer.from(payload) }), h.now);
    };

    test('without a UDP handler a datagram gets ICMP port unreachable', () => {
      const h = new Harness({ tcpConnect: () => undefined });
      udp(h, 'x');
      const [icmp] = h.output();
      assert.equal(icmp!.icmp!.kind, 'dest-unreachable');
      assert.equal((icmp!.icmp as { code: number }).code, family === 4 ? 3 : 4);
    });

    test('a flow receives datagrams and replies from the destination address; idle flows expire', () => {
      const got: string[] = [];
      let closed = 0;
      const h = new Harness(
        {
          tcpConnect: () => undefined,
          udpFlow: (flow) => {
            flow.on('datagram', (d) => {
              got.push(d.toString());
              flow.send(Buffer.from(`re:${d}`));
            });
            flow.on('close', () => closed++);
          },
        },
        { limits: { udpIdleMs: 5000 } },
      );
      udp(h, 'a');
      udp(h, 'b');
      assert.deepEqual(got, ['a', 'b']);
      const replies = h.output();
      assert.deepEqual(replies.map((p) => p.udp!.payload.toString()), ['re:a', 're:b']);
      assert.equal(replies[0]!.src, service.join('.'));
      assert.equal(replies[0]!.udp!.dstPort, 5353);
      h.advance(6000);
      h.advance(1000);
      assert.equal(closed, 1);
      assert.equal(h.stack.stats.udpFlows, 0);
    });

    test('a refused flow answers its last datagram with port unreachable', () => {
      const h = new Harness({ tcpConnect: () => undefined, udpFlow: (flow) => flow.refuse() });
      udp(h, 'q');
      const [icmp] = h.output();
      assert.equal(icmp!.icmp!.kind, 'dest-unreachable');
    });

    test('ICMP echo is answered only where the policy says so', () => {
      const h = new Harness({ tcpConnect: () => undefined, icmpEcho: (dst) => dst[dst.length - 1] === 7 });
      const echo: IcmpRepr = { kind: 'echo-request', identifier: 9, sequence: 1, data: Buffer.from('hi') };
      h.stack.input(h.peer.icmp(client, service, echo), h.now);
      const other = parseIp(family === 4 ? '198.18.10.8' : '2001:2:10::8');
      h.stack.input(h.peer.icmp(client, other, echo), h.now);
      const out = h.output();
      assert.equal(out.length, 1);
      assert.deepEqual(out[0]!.icmp, { kind: 'echo-reply', identifier: 9, sequence: 1, data: Buffer.from('hi') });
    });
  });
}

describe('NetStack input robustness', () => {
  test('malformed packets are counted by reason and never throw', () => {
    const h = new Harness({ tcpConnect: () => undefined });
    h.stack.input(Buffer.alloc(0), 0);
    h.stack.input(Buffer.from([0x45, 0, 0, 0]), 0);
    h.stack.input(Buffer.from([0x75, 1, 2, 3]), 0);
    const stats = h.stack.stats;
    assert.equal(stats.packetsIn, 3);
    assert.equal(stats.dropped.TRUNCATED! + stats.dropped.BAD_VERSION!, 3);
  });

  test('a corrupted TCP checksum is dropped; with a vnet header that vouches, it is not checked', () => {
    const requests: TcpConnectRequest[] = [];
    const h = new Harness({ tcpConnect: (r) => requests.push(r) }, { vnetHeader: true });
    const seg: TcpRepr = { srcPort: 1, dstPort: 80, seq: 1, ack: 0, flags: TcpFlags.SYN, window: 1000, urgent: 0, options: {}, payload: Buffer.alloc(0) };
    const plain = new PacketBuilder({ vnetHeader: true, offload: false }).tcp(CLIENT4, SERVICE4, seg, 1460);
    plain[10 + 20 + 16] ^= 0xff;
    h.stack.input(plain, 0);
    assert.equal(h.stack.stats.dropped.BAD_CHECKSUM, 1);
    const partial = new PacketBuilder({ vnetHeader: true, offload: true }).tcp(CLIENT4, SERVICE4, seg, 1460);
    h.stack.input(partial, 0);
    assert.equal(requests.length, 1);
  });

  test('IPv4 fragments of a UDP datagram are reassembled before delivery', () => {
    const got: Buffer[] = [];
    const h = new Harness({ tcpConnect: () => undefined, udpFlow: (f) => f.on('datagram', (d) => got.push(d)) });
    const payload = Buffer.alloc(3000, 0xab);
    const udpBytes = Buffer.alloc(8 + payload.length);
    emitUdp({ srcPort: 7, dstPort: 9, payload }, udpBytes, 0, pseudoHeaderSum(CLIENT4, SERVICE4, IpProtocol.UDP, udpBytes.length), 'full');
    const fragment = (offset: number, length: number, more: boolean): Buffer => {
      const packet = Buffer.alloc(20 + length);
      emitIpv4Header({ src: CLIENT4, dst: SERVICE4, protocol: IpProtocol.UDP, ttl: 64, identification: 42, moreFragments: more, fragmentOffset: offset, payloadLength: length }, packet, 0);
      udpBytes.copy(packet, 20, offset, offset + length);
      return packet;
    };
    h.stack.input(fragment(1480, udpBytes.length - 1480, false), 0);
    h.stack.input(fragment(0, 1480, true), 0);
    assert.equal(got.length, 1);
    assert.deepEqual(got[0], payload);
  });
});

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const { SYN, ACK, FIN, RST } = TcpFlags;

/** Sends the client's SYN, accepts it and completes the handshake; returns the socket and the stack's ISN. */
function establish(
  h: Harness,
  requests: TcpConnectRequest[],
  client: IpAddress,
  service: IpAddress,
  srcPort: number,
  options: TcpOptions = {},
): { socket: TcpSocket; iss: number; tsEcho: number } {
  h.tcp(client, service, { srcPort, seq: 5000, options: { mss: 1460, ...options } });
  const socket = requests[requests.length - 1]!.accept();
  const synAck = h.output().find((p) => p.tcp !== undefined && p.tcp.flags === (SYN | ACK))!;
  const iss = synAck.tcp!.seq;
  const tsEcho = synAck.tcp!.options.timestamp?.value ?? 0;
  const ts = options.timestamp !== undefined ? { timestamp: { value: options.timestamp.value + 1, echo: tsEcho } } : {};
  h.tcp(client, service, { srcPort, seq: 5001, ack: iss + 1, flags: ACK, options: ts });
  return { socket, iss, tsEcho };
}

/** A connection the stack closes first, taken to TIME-WAIT (client timestamps from `tsValue` if given). */
async function timeWait(
  h: Harness,
  requests: TcpConnectRequest[],
  client: IpAddress,
  service: IpAddress,
  srcPort: number,
  tsValue?: number,
): Promise<TcpSocket> {
  const { socket, iss, tsEcho } = establish(h, requests, client, service, srcPort, tsValue === undefined ? {} : { timestamp: { value: tsValue, echo: 0 } });
  socket.resume();
  socket.end();
  await tick();
  assert.ok(h.output().some((p) => p.tcp !== undefined && (p.tcp.flags & FIN) !== 0), 'the stack sends its FIN');
  const ts = tsValue === undefined ? {} : { timestamp: { value: tsValue + 2, echo: tsEcho } };
  h.tcp(client, service, { srcPort, seq: 5001, ack: iss + 2, flags: ACK | FIN, options: ts });
  h.output();
  assert.equal(socket.tcpState, 'TIME-WAIT');
  return socket;
}

function ipv6Fragment(src: IpAddress, dst: IpAddress, next: number, offset: number, more: boolean, data: Buffer): Buffer {
  const packet = Buffer.alloc(48 + data.length);
  emitIpv6Header({ src, dst, nextHeader: IpProtocol.IPV6_FRAGMENT, hopLimit: 64, payloadLength: 8 + data.length }, packet, 0);
  packet[40] = next;
  packet.writeUInt16BE(offset | (more ? 1 : 0), 42);
  packet.writeUInt32BE(0xdec0de, 44);
  data.copy(packet, 48);
  return packet;
}

function udpBytes(src: IpAddress, dst: IpAddress, payload: Buffer): Buffer {
  const out = Buffer.alloc(8 + payload.length);
  emitUdp({ srcPort: 7, dstPort: 9, payload }, out, 0, pseudoHeaderSum(src, dst, IpProtocol.UDP, out.length), 'full');
  return out;
}

for (const [family, client, service] of [
  [4, CLIENT4, SERVICE4],
  [6, CLIENT6, SERVICE6],
] as const) {
  const router = parseIp(family === 4 ? '198.18.0.254' : '2001:2::fe');
  const ipHeader = family === 4 ? 20 : 40;

  describe(`NetStack TIME-WAIT, IPv${family}`, () => {
    test('RFC 6191 §2: a SYN with a higher ISN for a 4-tuple in TIME-WAIT starts a new connection (two-phase accept)', async () => {
      const requests: TcpConnectRequest[] = [];
      const h = new Harness({ tcpConnect: (r) => requests.push(r) });
      await timeWait(h, requests, client, service, 40000);
      h.tcp(client, service, { srcPort: 40000, seq: 900_000, options: { mss: 1460 } });
      assert.equal(requests.length, 2, 'the SYN is offered to the application, not answered with an ACK');
      assert.deepEqual(h.output(), [], 'held until the application decides');
      requests[1]!.accept();
      const [synAck] = h.output();
      assert.equal(synAck!.tcp!.flags, SYN | ACK);
      assert.equal(synAck!.tcp!.ack, 900_001);
      assert.deepEqual([h.stack.stats.tcpFlows, h.stack.stats.tcpTimeWait], [1, 0]);
    });

    test('RFC 6191 §2: with timestamps, a SYN with a newer timestamp starts a new connection even with a lower ISN; an older one gets the TIME-WAIT ACK', async () => {
      const requests: TcpConnectRequest[] = [];
      const h = new Harness({ tcpConnect: (r) => requests.push(r) });
      await timeWait(h, requests, client, service, 40000, 1000);
      h.tcp(client, service, { srcPort: 40000, seq: 10, options: { mss: 1460, timestamp: { value: 500, echo: 0 } } });
      assert.equal(requests.length, 1);
      const [ack] = h.output();
      assert.equal(ack!.tcp!.flags, ACK);
      h.tcp(client, service, { srcPort: 40000, seq: 10, options: { mss: 1460, timestamp: { value: 2000, echo: 0 } } });
      assert.equal(requests.length, 2);
      requests[1]!.accept();
      assert.equal(h.output()[0]!.tcp!.ack, 11);
    });

    test('RFC 6191 §1 / RFC 9293 §3.6.1: TIME-WAIT flows never deny a new connection: at maxTcpFlows the oldest is recycled, and the total stays bounded', async () => {
      const requests: TcpConnectRequest[] = [];
      const h = new Harness({ tcpConnect: (r) => requests.push(r) }, { limits: { maxTcpFlows: 3 } });
      for (const port of [1001, 1002, 1003]) await timeWait(h, requests, client, service, port);
      assert.deepEqual([h.stack.stats.tcpFlows, h.stack.stats.tcpTimeWait], [3, 3]);
      h.tcp(client, service, { srcPort: 1004 });
      assert.equal(requests.length, 4, 'the new SYN is offered, not reset');
      assert.deepEqual([h.stack.stats.tcpFlows, h.stack.stats.tcpTimeWait, h.stack.stats.timeWaitRecycled], [3, 2, 1]);
      // The oldest (port 1001) is gone: its segments now meet a RST; port 1002 still answers from TIME-WAIT.
      h.tcp(client, service, { srcPort: 1001, seq: 5002, ack: 1, flags: ACK | FIN });
      h.tcp(client, service, { srcPort: 1002, seq: 5002, ack: 1, flags: ACK | FIN });
      const answers = h.output();
      assert.deepEqual(answers.map((p) => [p.tcp!.dstPort, p.tcp!.flags & RST]), [[1001, RST], [1002, 0]]);
      // Live connections are the limit: once no TIME-WAIT flow is left, a SYN is reset.
      h.tcp(client, service, { srcPort: 1005 });
      h.tcp(client, service, { srcPort: 1006 });
      assert.deepEqual([h.stack.stats.tcpFlows, h.stack.stats.tcpTimeWait, h.stack.stats.timeWaitRecycled], [3, 0, 3]);
      h.tcp(client, service, { srcPort: 1007 });
      assert.equal(h.stack.stats.dropped['flow-limit'], 1);
      assert.equal(h.output().find((p) => p.tcp!.dstPort === 1007)!.tcp!.flags & RST, RST);
    });
  });

  describe(`NetStack segment sizes without offload, IPv${family}`, () => {
    test('RFC 9293 §3.7.1 / RFC 6691 §2: data segments never exceed the peer\'s MSS less the timestamp option', async () => {
      const requests: TcpConnectRequest[] = [];
      const h = new Harness({ tcpConnect: (r) => requests.push(r) });
      const { socket } = establish(h, requests, client, service, 40000, { mss: 1200, timestamp: { value: 1, echo: 0 } });
      socket.write(Buffer.alloc(20_000));
      await tick();
      const payloads = h.output().map((p) => p.tcp!.payload.length);
      assert.equal(Math.max(...payloads), 1200 - 12);
      assert.ok(payloads.length >= 10, `${payloads.length} segments`);
    });
  });

  describe(`NetStack output robustness, IPv${family}`, () => {
    test('a UDP flow whose close listener throws in the idle sweep is counted as internal; the other idle flow still closes and the round\'s packets still go out', () => {
      const errors: unknown[] = [];
      let closed = 0;
      const h = new Harness(
        {
          tcpConnect: () => undefined,
          udpFlow: (flow) => {
            flow.on('datagram', (d) => flow.send(Buffer.from(`re:${d}`)));
            flow.on('close', () => {
              closed++;
              if (flow.remote.port === 5353) throw new Error('a bug in a close listener');
            });
          },
        },
        { limits: { udpIdleMs: 5000 } },
      );
      h.stack.onInternalError = (error) => errors.push(error);
      const send = (srcPort: number, payload: string): void =>
        h.stack.input(h.peer.udp(client, service, { srcPort, dstPort: 53, payload: Buffer.from(payload) }), h.now);
      send(5353, 'q');
      send(5354, 'q');
      h.output();
      h.advance(4500);
      send(5355, 'late');
      const out = h.advance(1000);
      assert.equal(closed, 2);
      assert.equal(errors.length, 1);
      assert.equal(h.stack.stats.dropped.internal, 1);
      assert.equal(h.stack.stats.udpFlows, 1, 'the flow of the late datagram');
      assert.deepEqual(out.map((p) => p.udp!.payload.toString()), ['re:late']);
    });

    test('connectTcp honours maxTcpFlows: at the bound it throws, naming the limit, and the table does not grow', () => {
      const h = new Harness({ tcpConnect: () => undefined }, { limits: { maxTcpFlows: 2 } });
      h.stack.connectTcp(service, { address: client, port: 7001 });
      h.stack.connectTcp(service, { address: client, port: 7002 });
      assert.throws(() => h.stack.connectTcp(service, { address: client, port: 7003 }), /maxTcpFlows \(2\)/);
      assert.equal(h.stack.stats.tcpFlows, 2);
    });

    test('a deadline whose work throws (test double: the accept-timeout ICMP) ends that flow only, counted as internal', () => {
      const errors: unknown[] = [];
      const h = new Harness({ tcpConnect: () => undefined }, { limits: { acceptTimeoutMs: 500 } });
      h.stack.onInternalError = (error) => errors.push(error);
      const stack = h.stack as unknown as { queueHostUnreachable(): void };
      stack.queueHostUnreachable = () => {
        throw new Error('a bug in a deadline');
      };
      h.tcp(client, service, { srcPort: 40001 });
      assert.doesNotThrow(() => h.advance(600));
      assert.equal(errors.length, 1);
      assert.equal(h.stack.stats.tcpFlows, 0);
      assert.equal(h.stack.stats.dropped.internal, 1);
    });

    test('one connection throwing in output is aborted and counted as internal; every other flow still sends (test double: that connection\'s transmit throws)', async () => {
      const requests: TcpConnectRequest[] = [];
      const h = new Harness({ tcpConnect: (r) => requests.push(r) });
      const errors: unknown[] = [];
      h.stack.onInternalError = (error) => errors.push(error);
      const sockets = [40001, 40002, 40003].map((port) => establish(h, requests, client, service, port).socket);
      const broken = (sockets[1] as unknown as { connection: { transmit(): void } }).connection;
      broken.transmit = () => {
        throw new Error('a bug in one connection');
      };
      const socketError = new Promise<TcpSocketError>((resolve) => sockets[1]!.once('error', resolve));
      for (const socket of sockets) socket.write('x');
      await tick();
      const sent = h.output().filter((p) => p.tcp!.payload.length > 0);
      assert.deepEqual(sent.map((p) => p.tcp!.dstPort).sort(), [40001, 40003]);
      assert.equal(h.stack.stats.dropped.internal, 1);
      assert.equal(errors.length, 1);
      assert.equal(h.stack.stats.tcpFlows, 2);
      assert.equal((await socketError).code, 'ECONNABORTED');
      // The removed flow's peer learns on its next segment.
      h.tcp(client, service, { srcPort: 40002, seq: 5001, ack: 1, flags: ACK });
      assert.equal(h.output()[0]!.tcp!.flags & RST, RST);
    });
  });

  describe(`NetStack ICMP errors received, IPv${family}`, () => {
    const mtu = 9000;
    const small = 1280;
    const vnet = (packet: Buffer) => parseVirtioNetHdr(packet);
    /** The IP packet inside a device packet. */
    const ipOf = (packet: Buffer) => packet.subarray(VIRTIO_NET_HDR_LEN);
    const icmpTo = (h: Harness, message: IcmpRepr, from = router): void => h.stack.input(h.peer.icmp(from, service, message), h.now);
    const quote = (packet: Buffer): Buffer => packet.subarray(0, family === 4 ? 548 : 1232);

    /** A connection sending bulk data with offload (the GSO size shows the MSS); returns its first data packet. */
    async function sending(): Promise<{ h: Harness; first: Buffer; sentEnd: number }> {
      const requests: TcpConnectRequest[] = [];
      const h = new Harness({ tcpConnect: (r) => requests.push(r) }, { mtu, vnetHeader: true, offload: true });
      const { socket, iss } = establish(h, requests, client, service, 40000, { mss: mtu - ipHeader - 20 });
      socket.write(Buffer.alloc(1 << 20));
      await tick();
      const data = h.rawOutput().filter((p) => parse(p, VIRTIO_NET_HDR_LEN).tcp!.payload.length > 0);
      assert.equal(vnet(data[0]!).gsoSize, mtu - ipHeader - 20);
      const sentEnd = Math.max(...data.map((p) => parse(p, VIRTIO_NET_HDR_LEN).tcp!).map((t) => t.seq + t.payload.length));
      assert.ok(sentEnd > iss + 1);
      return { h, first: data[0]!, sentEnd };
    }

    /** The largest packet on the wire each device packet becomes (after the kernel's segmentation). */
    function wireSizes(packets: Buffer[]): number[] {
      return packets.map((packet) => {
        const parsed = parse(packet, VIRTIO_NET_HDR_LEN);
        const headers = ipOf(packet).length - parsed.tcp!.payload.length;
        const hdr = vnet(packet);
        return headers + (hdr.gsoSize > 0 ? hdr.gsoSize : parsed.tcp!.payload.length);
      });
    }

    test(`RFC ${family === 4 ? '1191 §4' : '8201 §4'}: packet too big quoting a segment in flight lowers the MSS: what follows fits the next-hop MTU`, async () => {
      const { h, first, sentEnd } = await sending();
      icmpTo(h, { kind: 'packet-too-big', mtu: small, invoking: quote(ipOf(first)) });
      assert.deepEqual([h.stack.stats.icmpErrors, h.stack.stats.pathMtuDecreases], [1, 1]);
      // Acknowledge what went out and look at everything after.
      h.tcp(client, service, { seq: 5001, ack: sentEnd, flags: ACK, window: 65535 });
      const after = h.rawOutput();
      assert.ok(after.length > 0);
      assert.ok(Math.max(...wireSizes(after)) <= small, `wire packets of ${wireSizes(after).join(', ')} bytes`);
    });

    test('RFC 5927 §4.1: an ICMP error quoting a sequence number not in flight is ignored and counted', async () => {
      const { h, first } = await sending();
      const forged = Buffer.from(quote(ipOf(first)));
      forged.writeUInt32BE((forged.readUInt32BE(ipHeader + 4) + 10_000_000) >>> 0, ipHeader + 4);
      icmpTo(h, { kind: 'packet-too-big', mtu: small, invoking: forged });
      assert.equal(h.stack.stats.dropped['icmp-not-in-flight'], 1);
      assert.equal(h.stack.stats.pathMtuDecreases, 0);
    });

    test(`RFC ${family === 4 ? '1191 §4 / RFC 791' : '8201 §4'}: an MTU below the ${family === 4 ? '68' : '1280'}-byte minimum, or not below the link's, is ignored and counted`, async () => {
      const { h, first } = await sending();
      for (const bad of [family === 4 ? 67 : 1279, mtu, mtu + 1]) {
        icmpTo(h, { kind: 'packet-too-big', mtu: bad, invoking: quote(ipOf(first)) });
      }
      assert.equal(h.stack.stats.dropped['icmp-bad-mtu'], 3);
      assert.equal(h.stack.stats.pathMtuDecreases, 0);
    });

    test('RFC 1122 §4.2.3.9: a hard unreachable (port) ends an opening connection with EHOSTUNREACH; a soft one (host) does not', async () => {
      const h = new Harness({ tcpConnect: () => undefined });
      const errors: string[] = [];
      const soft = h.stack.connectTcp(service, { address: client, port: 7007 });
      const hard = h.stack.connectTcp(service, { address: client, port: 7008 });
      soft.on('error', (e: TcpSocketError) => errors.push(`soft ${e.code}`));
      hard.on('error', (e: TcpSocketError) => errors.push(`hard ${e.code}`));
      const syns = h.rawOutput();
      const synTo = (port: number) => syns.find((p) => parse(p).tcp!.dstPort === port)!;
      const codes = family === 4 ? { host: 1, port: 3 } : { host: 3, port: 4 };
      icmpTo(h, { kind: 'dest-unreachable', code: codes.host, invoking: quote(synTo(7007)) }, client);
      icmpTo(h, { kind: 'dest-unreachable', code: codes.port, invoking: quote(synTo(7008)) }, client);
      h.output();
      await tick();
      assert.deepEqual(errors, ['hard EHOSTUNREACH']);
      assert.equal(soft.tcpState, 'SYN-SENT');
      assert.equal(h.stack.stats.tcpFlows, 1);
    });

    test('ICMP errors with bad quotes, about UDP or about no flow are counted and ignored; arbitrary quotes never throw', async () => {
      const { h, first } = await sending();
      const ip = ipOf(first);
      icmpTo(h, { kind: 'dest-unreachable', code: 1, invoking: ip.subarray(0, ipHeader + 7) });
      const otherSource = Buffer.from(quote(ip));
      otherSource[family === 4 ? 12 : 8]! ^= 1;
      icmpTo(h, { kind: 'dest-unreachable', code: 1, invoking: otherSource });
      const udp = Buffer.from(quote(ip));
      udp[family === 4 ? 9 : 6] = IpProtocol.UDP;
      icmpTo(h, { kind: 'dest-unreachable', code: 1, invoking: udp });
      const noFlow = Buffer.from(quote(ip));
      noFlow.writeUInt16BE(1, ipHeader + 2);
      icmpTo(h, { kind: 'packet-too-big', mtu: small, invoking: noFlow });
      const { dropped } = h.stack.stats;
      assert.deepEqual(
        [dropped['icmp-bad-quote'], dropped['icmp-not-tcp'], dropped['icmp-no-flow']],
        [2, 1, 1],
      );
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), fc.nat(0xffff), (bytes, tooBig, value) => {
          const invoking = Buffer.from(bytes);
          if (invoking.length > 0) invoking[0] = (family << 4) | (invoking[0]! & 0x0f);
          icmpTo(h, tooBig ? { kind: 'packet-too-big', mtu: value, invoking } : { kind: 'dest-unreachable', code: value & 0xff, invoking });
        }),
      );
    });
  });

  describe(`NetStack fragment reassembly, IPv${family}`, () => {
    test(`RFC ${family === 4 ? '792' : '4443 §3.1'}: an ICMP error about a reassembled datagram quotes its first fragment`, () => {
      const h = new Harness({ tcpConnect: () => undefined });
      const udp = udpBytes(client, service, Buffer.alloc(3000, 0xab));
      const fragments =
        family === 4
          ? [0, 1480].map((offset) => {
              const length = offset === 0 ? 1480 : udp.length - 1480;
              const packet = Buffer.alloc(20 + length);
              emitIpv4Header({ src: client, dst: service, protocol: IpProtocol.UDP, ttl: 64, identification: 42, moreFragments: offset === 0, fragmentOffset: offset, payloadLength: length }, packet, 0);
              udp.copy(packet, 20, offset, offset + length);
              return packet;
            })
          : [ipv6Fragment(client, service, IpProtocol.UDP, 0, true, udp.subarray(0, 1448)), ipv6Fragment(client, service, IpProtocol.UDP, 1448, false, udp.subarray(1448))];
      for (const fragment of fragments) h.stack.input(fragment, h.now);
      const [error] = h.output();
      assert.equal(error!.icmp!.kind, 'dest-unreachable');
      const quoted = (error!.icmp as { invoking: Buffer }).invoking;
      assert.deepEqual(quoted.subarray(0, 40), fragments[0]!.subarray(0, 40), 'the quote starts with the first fragment');
      const udpAt = family === 4 ? 20 : 48;
      assert.equal(quoted.readUInt16BE(udpAt), 7, 'and holds the UDP header');
    });

    test('gather output: a segment with 512 payload bytes or more is its header in `out` and its payload at the same index of `tails` (null elsewhere); joined they parse, checksum included, into the data written', async () => {
      const requests: TcpConnectRequest[] = [];
      const h = new Harness({ tcpConnect: (r) => requests.push(r) });
      const { socket } = establish(h, requests, client, service, 40001);
      h.output();
      const small = Buffer.alloc(100, 1);
      const large = Buffer.from(Array.from({ length: 3000 }, (_, i) => i & 0xff));
      const sent: Buffer[] = [];
      for (const data of [small, large]) {
        socket.write(data);
        await tick();
        const out: Buffer[] = [];
        const tails: Array<Buffer | null> = [];
        h.stack.output(h.now, out, tails);
        assert.equal(tails.length, out.length);
        for (let i = 0; i < out.length; i++) {
          const tail = tails[i];
          const tcp = parse(tail ? Buffer.concat([out[i]!, tail]) : out[i]!, h.prefix).tcp!;
          assert.equal(tail !== null, tcp.payload.length >= 512, `segment ${i}: ${tcp.payload.length} bytes`);
          sent.push(Buffer.from(tcp.payload));
        }
      }
      assert.deepEqual(Buffer.concat(sent), Buffer.concat([small, large]));
    });

    if (family === 6) {
      test('RFC 8200 §4.5: the next header comes from the offset-0 fragment, not from the last to arrive', () => {
        const got: Buffer[] = [];
        const h = new Harness({ tcpConnect: () => undefined, udpFlow: (f) => f.on('datagram', (d) => got.push(d)) });
        const payload = Buffer.alloc(2000, 0x5a);
        const udp = udpBytes(client, service, payload);
        h.stack.input(ipv6Fragment(client, service, IpProtocol.UDP, 0, true, udp.subarray(0, 1448)), h.now);
        h.stack.input(ipv6Fragment(client, service, IpProtocol.IPV6_NO_NEXT, 1448, false, udp.subarray(1448)), h.now);
        assert.deepEqual(got, [payload]);
      });

      test('RFC 8200 §4.5: extension headers after the fragment header are walked after reassembly', () => {
        const got: Buffer[] = [];
        const h = new Harness({ tcpConnect: () => undefined, udpFlow: (f) => f.on('datagram', (d) => got.push(d)) });
        const payload = Buffer.alloc(2000, 0x3c);
        // Destination options: next header UDP, 8 bytes, one PadN option filling them.
        const fragmentable = Buffer.concat([Buffer.from([IpProtocol.UDP, 0, 1, 4, 0, 0, 0, 0]), udpBytes(client, service, payload)]);
        h.stack.input(ipv6Fragment(client, service, IpProtocol.IPV6_DEST_OPTS, 0, true, fragmentable.subarray(0, 1448)), h.now);
        h.stack.input(ipv6Fragment(client, service, IpProtocol.IPV6_DEST_OPTS, 1448, false, fragmentable.subarray(1448)), h.now);
        assert.deepEqual(got, [payload]);
      });
    }
  });
}
