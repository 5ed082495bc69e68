import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { addAddress, setLinkUp, setMtu } from '../../src/rootd/link-config.js';
import { MAX_READ_BATCH, TunDevice, TunError, VNET_HDR_LEN, WRITE_HIGH_WATER_BYTES } from '../../src/rootd/tun-device.js';
import { TestNetns, requireRoot } from '../helpers/netns.js';

// The TUN side is 198.18.5.1/24: the kernel routes 198.18.5.0/24 into the device, and packets written to the
// device from 198.18.5.2 are delivered to the namespace's own sockets on 198.18.5.1.
const LOCAL = [198, 18, 5, 1];
const PEER = [198, 18, 5, 2];
const isRoot = process.getuid?.() === 0;

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

let ns: TestNetns | undefined;
before(async () => {
  if (isRoot) ns = await TestNetns.create('tun');
});
after(async () => {
  await ns?.destroy();
});

function netns(): TestNetns {
  assert.ok(ns, 'the test namespace was not created');
  return ns;
}

/** Opens the device in the test namespace with address, MTU and link up; closed by the caller. */
async function openConfigured(
  name: string,
  { mtu = 1500, ...options }: { vnetHeader?: boolean; offload?: boolean; checksum?: boolean; mtu?: number } = {},
): Promise<TunDevice> {
  const { name: nsName } = netns();
  const tun = TunDevice.open({ name, netns: nsName, ...options });
  try {
    await setMtu(name, mtu, nsName);
    await addAddress(name, '198.18.5.1/24', nsName);
    await setLinkUp(name, nsName);
  } catch (error) {
    tun.close();
    throw error;
  }
  return tun;
}

/** Collects what the device reads; waitFor resolves with the first packet matching, or fails after timeoutMs. */
class Collector {
  readonly batches: Buffer[][] = [];
  readonly onPackets = (packets: Buffer[]): void => {
    this.batches.push(packets);
  };
  packets(): Buffer[] {
    return this.batches.flat();
  }
  async waitFor(match: (p: Buffer) => boolean, timeoutMs = 3000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const found = this.packets().find(match);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no matching packet within ${timeoutMs} ms (read ${this.packets().length})`);
  }
}

function checksum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < data.length; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (data.length % 2 === 1) sum += data[data.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An IPv4 + UDP datagram built by hand, with both checksums. */
function udpPacket(src: number[], dst: number[], srcPort: number, dstPort: number, payload: Buffer): Buffer {
  const udpLength = 8 + payload.length;
  const packet = Buffer.alloc(20 + udpLength);
  packet[0] = 0x45;
  packet.writeUInt16BE(packet.length, 2);
  packet[8] = 64;
  packet[9] = 17;
  packet.set(src, 12);
  packet.set(dst, 16);
  packet.writeUInt16BE(checksum(packet.subarray(0, 20)), 10);
  packet.writeUInt16BE(srcPort, 20);
  packet.writeUInt16BE(dstPort, 22);
  packet.writeUInt16BE(udpLength, 24);
  payload.copy(packet, 28);
  const pseudo = Buffer.alloc(12);
  pseudo.set(src, 0);
  pseudo.set(dst, 4);
  pseudo[9] = 17;
  pseudo.writeUInt16BE(udpLength, 10);
  const partial = ~checksum(pseudo) & 0xffff;
  packet.writeUInt16BE(checksum(packet.subarray(20), partial) || 0xffff, 26);
  return packet;
}

/**
 * An IPv4 + TCP segment built by hand, with the IPv4 checksum and a wrong TCP checksum: only the addon's checksum
 * option makes the kernel take it.
 */
function tcpSegment(src: number[], dst: number[], srcPort: number, dstPort: number, ack: number, payload: Buffer): Buffer {
  const packet = Buffer.alloc(40 + payload.length);
  packet[0] = 0x45;
  packet.writeUInt16BE(packet.length, 2);
  packet[8] = 64;
  packet[9] = 6;
  packet.set(src, 12);
  packet.set(dst, 16);
  packet.writeUInt16BE(checksum(packet.subarray(0, 20)), 10);
  packet.writeUInt16BE(srcPort, 20);
  packet.writeUInt16BE(dstPort, 22);
  packet.writeUInt32BE(1000, 24);
  packet.writeUInt32BE(ack, 28);
  packet[32] = 5 << 4;
  packet[33] = 0x18; // PSH, ACK
  packet.writeUInt16BE(65535, 34);
  packet.writeUInt16BE(0xdead, 36);
  payload.copy(packet, 40);
  return packet;
}

/** The packet cut in two at `at`: a copy of the head and a view of the rest, as the stack hands them to write(). */
function splitAt(packet: Buffer, at: number): [head: Buffer, tail: Buffer] {
  return [Buffer.from(packet.subarray(0, at)), packet.subarray(at)];
}

function isUdpTo(packet: Buffer, dst: number[], port: number, offset = 0): boolean {
  const ip = packet.subarray(offset);
  return ip.length >= 28 && ip[0] >> 4 === 4 && ip[9] === 17 && ip.subarray(16, 20).equals(Buffer.from(dst)) && ip.readUInt16BE(22) === port;
}

async function sendUdpFromNamespace(dst: string, port: number, payload: string): Promise<void> {
  const result = await netns().exec('socat', ['-u', 'STDIN', `UDP4-SENDTO:${dst}:${port}`], { input: payload, timeoutMs: 3000 });
  assert.equal(result.code, 0, result.stderr);
}

/**
 * Starts `socat UDP4-RECV` in the namespace and writes `packet` (followed by `tail`, if given) into the device until
 * socat prints `expect`.
 */
async function writeUntilReceived(tun: TunDevice, port: number, packet: Buffer, expect: string, tail?: Buffer): Promise<void> {
  const listener = netns().spawn('socat', ['-u', `UDP4-RECV:${port},bind=198.18.5.1`, 'STDOUT']);
  let received = '';
  listener.stdout?.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  try {
    // socat needs a moment to bind; a datagram sent before that is dropped by the kernel, so send again.
    const deadline = Date.now() + 3000;
    while (!received.includes(expect) && Date.now() < deadline) {
      assert.equal(tun.write([packet], tail === undefined ? undefined : [tail]), true);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(received.includes(expect), `socat did not receive "${expect}"`);
  } finally {
    listener.kill();
  }
}

test('packets the kernel routes into the device arrive in the read callback', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt0');
  try {
    assert.equal(tun.name, 'kt0');
    assert.equal(tun.vnetHeader, false);
    const collector = new Collector();
    tun.start(collector.onPackets);
    await sendUdpFromNamespace('198.18.5.2', 9999, 'hello tun');
    const packet = await collector.waitFor((p) => isUdpTo(p, PEER, 9999));
    assert.equal(packet[0] >> 4, 4);
    assert.deepEqual([...packet.subarray(12, 16)], LOCAL);
    assert.equal(packet.readUInt16BE(2), packet.length, 'IPv4 total length is the packet length');
    assert.equal(packet.subarray(28).toString(), 'hello tun');
    const stats = tun.stats;
    assert.ok(stats.packetsIn >= 1 && stats.bytesIn >= packet.length);
    for (const batch of collector.batches) assert.ok(batch.length >= 1 && batch.length <= MAX_READ_BATCH);
  } finally {
    tun.close();
  }
});

test('a backlog is read in batches of at most 128, as views that stay valid', { timeout: 15_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt1');
  try {
    const collector = new Collector();
    tun.start(collector.onPackets);
    const total = 300;
    const sender =
      `const s=require('dgram').createSocket('udp4');let n=0;` +
      `for(let i=0;i<${total};i++)s.send('pkt-'+i,9998,'198.18.5.2',()=>{if(++n===${total})s.close();});`;
    // Synchronous on purpose: this process's loop is blocked while the kernel queues every packet, so the
    // next readable event finds a backlog that must be split into full batches.
    execFileSync('ip', ['netns', 'exec', netns().name, process.execPath, '-e', sender], { timeout: 8000 });
    const deadline = Date.now() + 3000;
    const udp = (): Buffer[] => collector.packets().filter((p) => isUdpTo(p, PEER, 9998));
    while (udp().length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const packets = udp();
    assert.equal(packets.length, total);
    // Views from early batches still hold their own bytes after later batches arrived.
    packets.forEach((p, i) => assert.equal(p.subarray(28).toString(), `pkt-${i}`));
    const sizes = collector.batches.map((b) => b.length);
    assert.equal(Math.max(...sizes), MAX_READ_BATCH, `batch sizes ${sizes.join(',')}`);
    assert.ok(sizes.every((n) => n <= MAX_READ_BATCH));
  } finally {
    tun.close();
  }
});

/** Packet i of the large-packet test: pair i/2 is the datagram "small-N", then 30 kB of N % 251 labelled "big-N;". */
function assertPairPacket(p: Buffer, i: number): void {
  const n = Math.floor(i / 2);
  assert.equal(p.readUInt16BE(2), p.length, 'IPv4 total length is the packet length');
  if (i % 2 === 0) {
    assert.equal(p.subarray(28).toString(), `small-${n}`);
    return;
  }
  assert.equal(p.length, 28 + 30000);
  const label = `big-${n};`;
  assert.equal(p.subarray(28, 28 + label.length).toString(), label);
  assert.ok(p.subarray(28 + label.length).every((byte) => byte === n % 251), `payload of big-${n}`);
  // Its own memory, not a view into a shared area: keeping it pins nothing else.
  assert.equal(p.buffer.byteLength, p.length);
}

test('large packets arrive whole, in order among small ones, and outlive later batches and close', { timeout: 15_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt14', { mtu: 65000 });
  const pairs = 100;
  let packets: Buffer[];
  const collector = new Collector();
  try {
    tun.start(collector.onPackets);
    // Each big datagram is filled with its own byte, so that a block handed out twice or a packet put in the
    // wrong place shows. Sent while this process's loop is blocked, so that the batches mix both kinds.
    const sender =
      `const s=require('dgram').createSocket('udp4');let n=0;const done=()=>{if(++n===${2 * pairs})s.close();};` +
      `for(let i=0;i<${pairs};i++){s.send('small-'+i,9996,'198.18.5.2',done);` +
      `const big=Buffer.alloc(30000,i%251);big.write('big-'+i+';');s.send(big,9996,'198.18.5.2',done);}`;
    execFileSync('ip', ['netns', 'exec', netns().name, process.execPath, '-e', sender], { timeout: 8000 });
    const deadline = Date.now() + 3000;
    const udp = (): Buffer[] => collector.packets().filter((p) => isUdpTo(p, PEER, 9996));
    while (udp().length < 2 * pairs && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    packets = udp();
    const mixed = collector.batches.some((b) => b.some((p) => p.length > 30000) && b.some((p) => p.length < 100));
    assert.ok(mixed, `no batch held both kinds (batch sizes ${collector.batches.map((b) => b.length).join(',')})`);
  } finally {
    tun.close();
  }
  assert.equal(packets.length, 2 * pairs);
  packets.forEach(assertPairPacket);
  // Every other pair is dropped and collected, and new allocations may take its freed blocks: the packets kept
  // must not share memory with those freed.
  collector.batches.length = 0;
  const kept = packets.map((p, i) => (Math.floor(i / 2) % 2 === 0 ? p : undefined));
  packets = [];
  collectGarbage();
  await new Promise((r) => setTimeout(r, 50));
  const filler = Array.from({ length: pairs }, () => Buffer.allocUnsafeSlow(28 + 30000).fill(0xee));
  kept.forEach((p, i) => p !== undefined && assertPairPacket(p, i));
  assert.equal(filler.length, pairs);
});

test('packets written to the device reach the kernel', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt2');
  try {
    const packet = udpPacket(PEER, LOCAL, 40000, 7777, Buffer.from('from-the-tun\n'));
    await writeUntilReceived(tun, 7777, packet, 'from-the-tun');
    const stats = tun.stats;
    assert.ok(stats.packetsOut >= 1);
    assert.equal(stats.bytesOut, stats.packetsOut * packet.length);
    assert.equal(stats.queuedOut, 0);
  } finally {
    tun.close();
  }
});

test('vnet header mode prefixes packets with the 10-byte virtio_net_hdr both ways', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt3', { vnetHeader: true });
  try {
    assert.equal(tun.vnetHeader, true);
    assert.equal(tun.offload, false);
    const collector = new Collector();
    tun.start(collector.onPackets);
    await sendUdpFromNamespace('198.18.5.2', 9997, 'with header');
    const packet = await collector.waitFor((p) => isUdpTo(p, PEER, 9997, VNET_HDR_LEN));
    assert.equal(packet[1], 0, 'gso_type NONE');
    assert.equal(packet[0] & 1, 0, 'no NEEDS_CSUM without offload');
    assert.equal(packet.readUInt16BE(VNET_HDR_LEN + 2), packet.length - VNET_HDR_LEN);
    assert.equal(packet.subarray(VNET_HDR_LEN + 28).toString(), 'with header');

    const header = Buffer.alloc(VNET_HDR_LEN);
    const datagram = udpPacket(PEER, LOCAL, 40001, 7778, Buffer.from('vnet-write\n'));
    await writeUntilReceived(tun, 7778, Buffer.concat([header, datagram]), 'vnet-write');
  } finally {
    tun.close();
  }
});

test('offload hands over TCP segments with the checksum left to us (NEEDS_CSUM)', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt4', { vnetHeader: true, offload: true });
  try {
    assert.equal(tun.offload, true);
    const collector = new Collector();
    tun.start(collector.onPackets);
    // A connect to an address routed into the device: the SYN is never answered, socat gives up.
    const connect = netns().exec('socat', ['-u', 'STDIN', 'TCP4:198.18.5.2:80,connect-timeout=1'], { timeoutMs: 3000 });
    const syn = await collector.waitFor((p) => p.length >= VNET_HDR_LEN + 40 && p[VNET_HDR_LEN] >> 4 === 4 && p[VNET_HDR_LEN + 9] === 6);
    await connect;
    assert.equal(syn[0] & 1, 1, 'VIRTIO_NET_HDR_F_NEEDS_CSUM');
    assert.equal(syn.readUInt16LE(6), 20, 'csum_start: the TCP header, after the 20-byte IPv4 header');
    assert.equal(syn.readUInt16LE(8), 16, 'csum_offset: the TCP checksum field');
  } finally {
    tun.close();
  }
});

async function udpNoPorts(): Promise<number> {
  const snmp = (await netns().exec('cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const names = snmp[0].split(/\s+/);
  const values = snmp[1].split(/\s+/);
  return Number(values[names.indexOf('NoPorts')]);
}

test('packets refused with EAGAIN are queued in order and flushed when writable', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt11');
  const listener = netns().spawn('socat', ['-u', 'UDP4-RECV:7779,bind=198.18.5.1', 'STDOUT']);
  let received = '';
  listener.stdout?.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  try {
    const deadline = Date.now() + 3000;
    while (!received.includes('ready') && Date.now() < deadline) {
      tun.write([udpPacket(PEER, LOCAL, 40003, 7779, Buffer.from('ready\n'))]);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(received.includes('ready'));
    received = '';
    const before = tun.stats.packetsOut;
    tun.injectWriteEagainForTest(1);
    const packets = Array.from({ length: 20 }, (_, i) => udpPacket(PEER, LOCAL, 40003, 7779, Buffer.from(`p${i}\n`)));
    // The first packet is refused, so it and every one after it wait in the queue, in order.
    assert.equal(tun.write(packets.slice(0, 10)), true);
    assert.equal(tun.stats.queuedOut, 10);
    assert.equal(tun.write(packets.slice(10)), true);
    assert.equal(tun.stats.queuedOut, 20);
    assert.equal(tun.stats.packetsOut, before);
    const until = Date.now() + 3000;
    while (tun.stats.queuedOut > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(tun.stats.queuedOut, 0);
    assert.equal(tun.stats.packetsOut, before + 20);
    const expected = packets.map((_, i) => `p${i}\n`).join('');
    while (received.length < expected.length && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(received, expected);
  } finally {
    listener.kill();
    tun.close();
  }
});

test('a batch of writes reaches the kernel whole and in order (through io_uring, 128 per submission)', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt12');
  const listener = netns().spawn('socat', ['-u', 'UDP4-RECV:7780,bind=198.18.5.1', 'STDOUT']);
  let received = '';
  listener.stdout?.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  try {
    const deadline = Date.now() + 3000;
    while (!received.includes('ready') && Date.now() < deadline) {
      tun.write([udpPacket(PEER, LOCAL, 40004, 7780, Buffer.from('ready\n'))]);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(received.includes('ready'));
    received = '';
    const before = tun.stats.packetsOut;
    // More than one submission's worth (128), so a batch is split and the order must hold across the split (and
    // few enough for the UDP socket's receive buffer).
    const packets = Array.from({ length: 200 }, (_, i) => udpPacket(PEER, LOCAL, 40004, 7780, Buffer.from(`p${i}\n`)));
    assert.equal(tun.write(packets), true);
    assert.equal(tun.stats.packetsOut, before + 200);
    assert.equal(tun.stats.queuedOut, 0);
    const expected = packets.map((_, i) => `p${i}\n`).join('');
    const until = Date.now() + 3000;
    while (received.length < expected.length && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(received, expected);
  } finally {
    listener.kill();
    tun.close();
  }
});

test('checksum option: write() fills in TCP/UDP checksums, reads say which packets have a correct one', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt13', { checksum: true });
  try {
    assert.equal(tun.checksum, true);
    const seen: Array<{ packet: Buffer; checked: number }> = [];
    tun.start((packets, checked) => {
      assert.ok(checked !== null);
      packets.forEach((packet, i) => seen.push({ packet: Buffer.from(packet), checked: checked[i]! }));
    });
    await sendUdpFromNamespace('198.18.5.2', 9996, 'checked by C');
    const deadline = Date.now() + 3000;
    while (!seen.some((s) => isUdpTo(s.packet, PEER, 9996)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const arrived = seen.find((s) => isUdpTo(s.packet, PEER, 9996));
    assert.ok(arrived, 'the datagram was read');
    assert.equal(arrived.checked, 1, 'a correct UDP checksum is reported as checked');

    // A wrong checksum in the field: the kernel would drop the datagram unless the addon fills in the right one.
    const datagram = udpPacket(PEER, LOCAL, 40005, 7781, Buffer.from('filled-in\n'));
    datagram.writeUInt16BE(datagram.readUInt16BE(26) ^ 0x5a5a, 26);
    await writeUntilReceived(tun, 7781, datagram, 'filled-in');
    // Several in one call take the batched path; their checksums are filled in too.
    const listener = netns().spawn('socat', ['-u', 'UDP4-RECV:7782,bind=198.18.5.1', 'STDOUT']);
    let received = '';
    listener.stdout?.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    try {
      const until = Date.now() + 3000;
      while (!received.includes('b2') && Date.now() < until) {
        const batch = [0, 1, 2].map((i) => {
          const p = udpPacket(PEER, LOCAL, 40006, 7782, Buffer.from(`b${i}\n`));
          p.writeUInt16BE(0x1234, 26);
          return p;
        });
        tun.write(batch);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(received.includes('b0\nb1\nb2\n'), `received ${JSON.stringify(received)}`);
    } finally {
      listener.kill();
    }
  } finally {
    tun.close();
  }
});

test('write returns false above the high-water mark and emits drain once the queue is flushed', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt12');
  try {
    // 80 datagrams of 60 kB to a port nobody listens on: the kernel counts each one as Udp NoPorts.
    const big = udpPacket(PEER, LOCAL, 40004, 9, Buffer.alloc(60_000, 0x61));
    const packets = Array.from({ length: 80 }, () => big);
    assert.ok(packets.length * big.length > WRITE_HIGH_WATER_BYTES);
    const noPortsBefore = await udpNoPorts();
    let drains = 0;
    tun.on('drain', () => drains++);
    tun.injectWriteEagainForTest(1);
    const drained = new Promise<void>((resolve) => tun.once('drain', resolve));
    assert.equal(tun.write(packets), false);
    assert.equal(tun.stats.queuedOut, 80);
    await drained;
    assert.equal(tun.stats.queuedOut, 0);
    assert.equal(tun.stats.packetsOut, 80);
    assert.equal(tun.stats.bytesOut, 80 * big.length);
    assert.equal((await udpNoPorts()) - noPortsBefore, 80);
    // Below the mark: true, and no further drain.
    assert.equal(tun.write([big]), true);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(drains, 1);
  } finally {
    tun.close();
  }
});

/** socat UDP4-RECV on 198.18.5.1:port, once a datagram written to the device has reached it. */
async function readyListener(tun: TunDevice, port: number): Promise<{ received: () => string; reset: () => void; kill: () => void }> {
  const listener = netns().spawn('socat', ['-u', `UDP4-RECV:${port},bind=198.18.5.1`, 'STDOUT']);
  let received = '';
  listener.stdout?.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  const deadline = Date.now() + 3000;
  while (!received.includes('ready') && Date.now() < deadline) {
    tun.write([udpPacket(PEER, LOCAL, 40000, port, Buffer.from('ready\n'))]);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!received.includes('ready')) {
    listener.kill();
    assert.fail(`socat on port ${port} received nothing`);
  }
  received = '';
  return { received: () => received, reset: () => (received = ''), kill: () => listener.kill() };
}

async function waitUntil(done: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

test('checksum option: packets written as head + tail get a checksum over both (UDP and TCP, even and odd heads)', { timeout: 15_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt15', { checksum: true });
  try {
    // The kernel drops a datagram or segment with a wrong checksum, so its delivery proves the sum. The payload is
    // long enough for the 8-byte summing loop, and a head of 29 bytes leaves an odd part of the UDP datagram in it.
    for (const [port, at] of [
      [7783, 28],
      [7784, 29],
      [7785, 35],
    ]) {
      const text = `tail-${at}-${'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(30)}\n`;
      const datagram = udpPacket(PEER, LOCAL, 40007, port, Buffer.from(text));
      datagram.writeUInt16BE(datagram.readUInt16BE(26) ^ 0x5a5a, 26);
      const [head, tail] = splitAt(datagram, at);
      await writeUntilReceived(tun, port, head, text, tail);
    }

    // A segment to a closed port is answered with a RST whose sequence number is the segment's ACK, unless the
    // checksum is wrong: then the kernel drops it without a word.
    const collector = new Collector();
    tun.start(collector.onPackets);
    const isRstFor = (ack: number) => (p: Buffer): boolean =>
      p.length >= 40 && p[9] === 6 && (p[33] & 0x04) !== 0 && p.readUInt32BE(24) === ack;
    for (const [ack, at] of [
      [0x10203040, 40],
      [0x10203041, 41],
    ]) {
      const segment = tcpSegment(PEER, LOCAL, 40008, 7786, ack, Buffer.alloc(999, ack & 0xff));
      const [head, tail] = splitAt(segment, at);
      assert.equal(tun.write([head], [tail]), true);
      const rst = await collector.waitFor(isRstFor(ack));
      assert.deepEqual([...rst.subarray(12, 16)], LOCAL);
      assert.equal(rst.readUInt16BE(22), 40008);
    }
  } finally {
    tun.close();
  }
});

test('a batch mixing packets with and without tails reaches the kernel whole and in order', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt16');
  const listener = await readyListener(tun, 7787);
  try {
    const before = tun.stats;
    // One write() call of more than one packet goes through the ring: WRITEV for those with a tail, WRITE for the
    // rest. Every third packet has no tail (null, undefined or empty), the others are cut at odd and even offsets.
    const whole = Array.from({ length: 150 }, (_, i) => udpPacket(PEER, LOCAL, 40009, 7787, Buffer.from(`m${i}-${'x'.repeat(i)}\n`)));
    const heads: Buffer[] = [];
    const tails: Array<Buffer | null | undefined> = [];
    whole.forEach((packet, i) => {
      if (i % 3 === 0) {
        heads.push(packet);
        tails.push([null, undefined, Buffer.alloc(0)][(i / 3) % 3]);
        return;
      }
      const [head, tail] = splitAt(packet, 28 + (i % 5));
      heads.push(head);
      tails.push(tail);
    });
    assert.equal(tun.write(heads, tails), true);
    const after = tun.stats;
    assert.equal(after.packetsOut - before.packetsOut, whole.length);
    assert.equal(after.bytesOut - before.bytesOut, whole.reduce((n, p) => n + p.length, 0));
    assert.equal(after.queuedOut, 0);
    const expected = whole.map((_, i) => `m${i}-${'x'.repeat(i)}\n`).join('');
    await waitUntil(() => listener.received().length >= expected.length);
    assert.equal(listener.received(), expected);
  } finally {
    listener.kill();
    tun.close();
  }
});

test('packets with tails refused with EAGAIN are queued as copies and arrive intact after drain', { timeout: 15_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt17');
  const listener = await readyListener(tun, 7788);
  try {
    const before = tun.stats;
    const noPortsBefore = await udpNoPorts();
    // Ten small datagrams to the listener, then 80 of 60 kB to a port nobody listens on (over the high-water mark,
    // for the drain). The kernel counts those as Udp NoPorts only when their checksum is right, i.e. intact.
    const small = Array.from({ length: 10 }, (_, i) => udpPacket(PEER, LOCAL, 40010, 7788, Buffer.from(`q${i}\n`)));
    const big = Array.from({ length: 80 }, (_, i) => udpPacket(PEER, LOCAL, 40010, 9, Buffer.alloc(60_000, i % 251)));
    const whole = [...small, ...big];
    const parts = whole.map((packet, i) => splitAt(packet, 28 + (i % 2)));
    tun.injectWriteEagainForTest(1);
    const drained = new Promise<void>((resolve) => tun.once('drain', resolve));
    assert.equal(
      tun.write(
        parts.map(([head]) => head),
        parts.map(([, tail]) => tail),
      ),
      false,
    );
    assert.equal(tun.stats.queuedOut, whole.length);
    // The stack reuses its buffers as soon as write() returns.
    for (const [head] of parts) head.fill(0xee);
    for (const packet of whole) packet.fill(0xee);
    await drained;
    const after = tun.stats;
    assert.equal(after.queuedOut, 0);
    assert.equal(after.packetsOut - before.packetsOut, whole.length);
    assert.equal(after.bytesOut - before.bytesOut, 10 * small[0].length + 80 * big[0].length);
    assert.equal((await udpNoPorts()) - noPortsBefore, 80);
    const expected = small.map((_, i) => `q${i}\n`).join('');
    await waitUntil(() => listener.received().length >= expected.length);
    assert.equal(listener.received(), expected);
  } finally {
    listener.kill();
    tun.close();
  }
});

test('vnet header mode: a packet written as head (with the virtio_net_hdr) + tail arrives', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = await openConfigured('kt18', { vnetHeader: true });
  try {
    const datagram = udpPacket(PEER, LOCAL, 40011, 7789, Buffer.from(`vnet-tail-${'v'.repeat(500)}\n`));
    const [head, tail] = splitAt(Buffer.concat([Buffer.alloc(VNET_HDR_LEN), datagram]), VNET_HDR_LEN + 28);
    await writeUntilReceived(tun, 7789, head, `vnet-tail-${'v'.repeat(500)}`, tail);
    assert.equal(tun.stats.bytesOut % (VNET_HDR_LEN + datagram.length), 0, 'bytesOut counts head and tail');
  } finally {
    tun.close();
  }
});

test('write() throws a TypeError for tails that do not match the packets', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = TunDevice.open({ name: 'kt19', netns: netns().name, checksum: true });
  try {
    const packet = udpPacket(PEER, LOCAL, 40012, 7790, Buffer.from('never sent'));
    const [head, tail] = splitAt(packet, 28);
    assert.throws(() => tun.write([head], []), { name: 'TypeError', message: /tails must be an array as long as packets/ });
    assert.throws(() => tun.write([head, head], [tail]), { name: 'TypeError', message: /as long as packets/ });
    assert.throws(() => tun.write([head], 'x' as unknown as Buffer[]), { name: 'TypeError', message: /as long as packets/ });
    assert.throws(() => tun.write([head], ['x' as unknown as Buffer]), { name: 'TypeError', message: /tails must hold Buffers/ });
    // With the checksum option the head must hold the checksum field: here it is in the tail.
    assert.throws(() => tun.write([packet.subarray(0, 24)], [packet.subarray(24)]), { name: 'TypeError', message: /checksum field/ });
    assert.equal(tun.stats.packetsOut, 0);
  } finally {
    tun.close();
  }
});

test('writing while the link is down reports an IO error event', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = TunDevice.open({ name: 'kt5', netns: netns().name });
  try {
    const error = new Promise<TunError>((resolve) => tun.once('error', resolve));
    assert.equal(tun.write([udpPacket(PEER, LOCAL, 1, 2, Buffer.from('x'))]), true);
    const e = await error;
    assert.ok(e instanceof TunError);
    assert.equal(e.code, 'IO');
    assert.match(e.message, /EIO.*1 packet lost.*ip link set kt5 up/);
  } finally {
    tun.close();
  }
});

test('close is idempotent, removes the device, and later calls fail clearly', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const tun = TunDevice.open({ name: 'kt6', netns: netns().name });
  tun.start(() => {});
  assert.throws(() => tun.start(() => {}), { code: 'IO', message: /already started/ });
  assert.equal((await netns().exec('ip', ['link', 'show', 'kt6'])).code, 0);
  tun.close();
  tun.close();
  assert.notEqual((await netns().exec('ip', ['link', 'show', 'kt6'])).code, 0);
  assert.throws(() => tun.write([Buffer.alloc(20)]), (e: unknown) => e instanceof TunError && e.code === 'IO' && /closed/.test(e.message));
  assert.throws(() => tun.start(() => {}), { code: 'IO' });
});

test('a worker that exits without close() leaves no device behind', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const moduleUrl = new URL('../../src/rootd/tun-device.js', import.meta.url).href;
  const code =
    `import(${JSON.stringify(moduleUrl)}).then(({ TunDevice }) => {` +
    `const tun = TunDevice.open({ name: 'kt13', netns: ${JSON.stringify(netns().name)} });` +
    `tun.start(() => {}); require('worker_threads').parentPort.postMessage('open'); });`;
  const worker = new Worker(code, { eval: true });
  const errors: unknown[] = [];
  worker.on('error', (e) => errors.push(e));
  await new Promise((resolve) => worker.once('message', resolve));
  assert.equal((await netns().exec('ip', ['link', 'show', 'kt13'])).code, 0);
  await worker.terminate();
  assert.deepEqual(errors, []);
  assert.notEqual((await netns().exec('ip', ['link', 'show', 'kt13'])).code, 0);
});

test('open reports a taken name, a bad name and a missing namespace with their codes', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const { name: nsName } = netns();
  const first = TunDevice.open({ name: 'kt7', netns: nsName });
  try {
    assert.throws(() => TunDevice.open({ name: 'kt7', netns: nsName }), (e: unknown) =>
      e instanceof TunError && e.code === 'NAME_TAKEN' && /a device named kt7 already exists/.test(e.message),
    );
    assert.throws(() => TunDevice.open({ name: 'lo', netns: nsName }), { code: 'NAME_TAKEN' });
  } finally {
    first.close();
  }
  // The kernel's %d pattern picks the name; a multi-queue device takes a second queue by name.
  const queue1 = TunDevice.open({ name: 'ktq%d', netns: nsName, multiQueue: true });
  try {
    assert.match(queue1.name, /^ktq\d+$/);
    const queue2 = TunDevice.open({ name: queue1.name, netns: nsName, multiQueue: true });
    queue2.close();
    assert.throws(() => TunDevice.open({ name: queue1.name, netns: nsName }), { code: 'NAME_TAKEN' });
  } finally {
    queue1.close();
  }
  assert.throws(() => TunDevice.open({ name: 'sixteen-chars-xx', netns: nsName }), (e: unknown) =>
    e instanceof TunError && e.code === 'BAD_NAME' && /1 to 15 characters/.test(e.message),
  );
  assert.throws(() => TunDevice.open({ name: 'has space', netns: nsName }), { code: 'BAD_NAME' });
  assert.throws(() => TunDevice.open({ name: '', netns: nsName }), { code: 'BAD_NAME' });
  const missing = `kt-missing-${process.pid}`;
  assert.throws(() => TunDevice.open({ name: 'kt8', netns: missing }), (e: unknown) =>
    e instanceof TunError && e.code === 'NETNS' && e.message.includes(`network namespace ${missing} not found`),
  );
  assert.throws(() => TunDevice.open({ name: 'kt8', netns: '../etc' }), { code: 'NETNS' });
  assert.throws(() => TunDevice.open({ name: 'kt8', offload: true }), { code: 'IO', message: /offload needs vnetHeader/ });
});

test('without CAP_NET_ADMIN, open fails with PERMISSION', { timeout: 10_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const moduleUrl = new URL('../../src/rootd/tun-device.js', import.meta.url).href;
  const script =
    `const { TunDevice } = await import(${JSON.stringify(moduleUrl)});` +
    `try { TunDevice.open({ name: 'kt9' }); console.log('opened'); } catch (e) { console.log(e.code); }`;
  // Still uid 0, but with no capabilities, and started inside the test namespace so that nothing could ever
  // be created in the host's.
  const out = execFileSync(
    'ip',
    ['netns', 'exec', netns().name, 'setpriv', '--inh-caps=-all', '--bounding-set=-all', process.execPath, '--input-type=module', '-e', script],
    { timeout: 8000, encoding: 'utf8' },
  );
  assert.equal(out.trim(), 'PERMISSION');
});

test('an exception thrown by the packet callback surfaces as an uncaught exception', { timeout: 15_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const { name: nsName } = netns();
  const moduleUrl = new URL('../../src/rootd/tun-device.js', import.meta.url).href;
  const script =
    `const { TunDevice } = await import(${JSON.stringify(moduleUrl)});` +
    `const tun = TunDevice.open({ name: 'kt10', netns: ${JSON.stringify(nsName)} });` +
    `tun.start(() => { throw new Error('boom-from-callback'); });` +
    `console.log('ready'); setTimeout(() => process.exit(3), 8000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 5000;
    while (!stdout.includes('ready') && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(stdout.includes('ready'), stderr);
    await addAddress('kt10', '198.18.6.1/24', nsName);
    await setLinkUp('kt10', nsName);
    await netns().exec('socat', ['-u', 'STDIN', 'UDP4-SENDTO:198.18.6.2:9999'], { input: 'x', timeoutMs: 3000 });
    assert.equal(await exited, 1, 'exit code of an uncaught exception');
    assert.match(stderr, /boom-from-callback/);
  } finally {
    child.kill('SIGKILL');
  }
});
