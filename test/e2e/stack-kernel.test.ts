// The stack against the real Linux kernel: a TUN device in a test namespace with prefixes routed into it; the
// kernel's TCP/UDP/ICMP (node net, curl, ping) are the peers, run inside the namespace. The transfers run on every
// device variant the stack meets (no virtio-net header at MTU 1500 as macOS utun and Windows wintun offer, a
// jumbo MTU, and Linux's vnet header with TSO); what the stack writes is captured and held to the link's MTU and
// the peer's MSS.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { TcpConnectRequest } from '../../src/netstack/stack.js';
import type { TcpSocket } from '../../src/netstack/tcp-socket.js';
import { parseIp } from '../../src/netstack/wire/ip-address.js';
import { TunStack } from '../../src/rootd/tun-stack.js';
import { TestNetns } from '../helpers/netns.js';
import { impairInput } from '../helpers/input-impairment.js';
import { hashStream, writePattern } from '../helpers/pattern.js';
import { canonicalAddress, captureOnTun, tapStackInput, tapStackOutput, wireLength, type TcpSeen } from '../helpers/tun-capture.js';

const PEER = fileURLToPath(new URL('../helpers/kernel-peer.js', import.meta.url));
const ROOT = process.getuid?.() === 0;
const GiB = 1 << 30;

interface Variant {
  name: string;
  /** In the namespace's name. */
  tag: string;
  mtu: number;
  /** The virtio-net header with TSO and checksum offload. */
  vnetHeader: boolean;
}
const VARIANTS: Variant[] = [
  { name: 'MTU 1500 without vnet header', tag: 'm1500', mtu: 1500, vnetHeader: false },
  { name: 'MTU 9000 without vnet header', tag: 'm9000', mtu: 9000, vnetHeader: false },
  { name: 'vnet header + TSO/checksum offload, MTU 65,000', tag: 'tso', mtu: 65_000, vnetHeader: true },
];
/** The variant that also runs the tests that do not depend on the device (refusals, UDP, ping, flow control). */
const FULL = VARIANTS[2]!;

/** The route MSS the kernel announces for the clamped destination (ip route … advmss). */
const ADVMSS = 1200;

/**
 * How long a segment lost towards the stack stays lost (its resends too) in the SACK tests. The kernel fills a
 * hole within about a round trip, and with 64 KiB super-packets the stack sends a handful of segments per hole:
 * whether one of them fell inside it was up to the scheduler (CI saw none in one run of ~1,000 data segments).
 */
const HOLE_MS = 5;

/** How many packets carried how many option bytes, for the assertion messages: e.g. "12: 5000, 24: 30". */
function optionSizes(packets: TcpSeen[]): string {
  const counts = new Map<number, number>();
  for (const p of packets) counts.set(p.options, (counts.get(p.options) ?? 0) + 1);
  return [...counts].map(([options, n]) => `${options}: ${n}`).join(', ');
}

/** The first packet, if any, failing `ok`, for the assertion message. */
function firstBad(packets: TcpSeen[], ok: (p: TcpSeen) => boolean): string {
  const bad = packets.filter((p) => !ok(p));
  return bad.length === 0 ? '' : `${bad.length} of ${packets.length} packets, e.g. ${JSON.stringify(bad[0])}`;
}

/** What the stack-side applications saw, for the tests to check. */
const seen = {
  sourceSha: new Map<string, Promise<string>>(),
  slowReaderPeak: 0,
  halfCloseReceived: new Map<string, Promise<{ bytes: number; sha256: string }>>(),
  duplexReceived: new Map<string, Promise<{ bytes: number; sha256: string }>>(),
};

/** Per destination port, what the stack-side application does with an accepted connection. */
function serve(request: TcpConnectRequest, sizes: { source: number }): void {
  const last = request.local.address[request.local.address.length - 1];
  if (last === 66) return request.unreachable();
  if (last === 77) return; // never decided: the stack's accept timeout answers
  const key = String(request.remote.port);
  switch (request.local.port) {
    case 7: {
      const socket = request.accept();
      socket.pipe(socket);
      return;
    }
    case 9: {
      // Sink: hash everything, then answer with the count and hash, and close.
      const socket = request.accept();
      hashStream(socket).then((got) => socket.end(JSON.stringify(got)), () => socket.destroy());
      return;
    }
    case 19: {
      const socket = request.accept();
      seen.sourceSha.set(key, writePattern(socket, 42, sizes.source));
      return;
    }
    case 21: {
      // Half-close from our side first: send, end, keep reading what the kernel sends after our FIN.
      const socket = request.accept();
      seen.halfCloseReceived.set(key, hashStream(socket));
      void writePattern(socket, 7, 1 << 20);
      return;
    }
    case 25: {
      // Both ways at once: the stack's sends queue up while what it receives may have holes (SACK blocks).
      const socket = request.accept();
      seen.duplexReceived.set(key, hashStream(socket));
      seen.sourceSha.set(key, writePattern(socket, 42, sizes.source));
      return;
    }
    case 23: {
      // A slow consumer: read nothing for a while, then everything.
      const socket: TcpSocket = request.accept();
      socket.pause();
      const timer = setInterval(() => {
        seen.slowReaderPeak = Math.max(seen.slowReaderPeak, socket.readableLength);
      }, 50);
      setTimeout(() => {
        clearInterval(timer);
        hashStream(socket).then((got) => socket.end(JSON.stringify(got)), () => socket.destroy());
        socket.resume();
      }, 1500);
      return;
    }
    default:
      request.refuse();
  }
}

for (const variant of VARIANTS) {
  for (const family of [4, 6] as const) {
    const addr = (n: number): string => (family === 4 ? `198.18.10.${n}` : `2001:2:10::${n.toString(16)}`);
    const full = variant === FULL;

    describe(`stack against the Linux kernel over a TUN device, ${variant.name}, IPv${family}`, { skip: !ROOT && 'needs root' }, () => {
      let ns: TestNetns;
      let tun: TunStack;
      const sizes = { source: GiB };

      async function peer(mode: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
        const r = await ns.exec('node', [PEER, mode, JSON.stringify(args)], { timeoutMs: 150_000 });
        assert.equal(r.code, 0, `kernel-peer ${mode} failed: ${r.stderr}`);
        return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
      }

      /**
       * This kernel has no netem (CONFIG_NET_SCH_NETEM is off), so the faults are injected at the edges, and the
       * kernel's TCP is still the peer: loss towards the kernel by nftables in the test namespace (its input hook),
       * duplicates towards the stack by nft dup; loss and reordering towards the stack at the stack's input, since
       * a packet the kernel's own output hook drops is no loss on the wire (TCP sees the failed transmit and sends
       * it again at once: the receiver never sees a hole). Returns the function that removes them.
       */
      async function impair(target: string, lossPercent: number, dupPercent: number, reorderPercent: number, holeMs = 0): Promise<() => Promise<void>> {
        const rules = `
          table inet kt_loss {
            chain in {
              type filter hook input priority 0;
              iifname "kt0" numgen random mod 100 < ${lossPercent} drop
            }
          }
          table ${family === 4 ? 'ip' : 'ip6'} kt_dup {
            chain out {
              type filter hook output priority 0;
              oifname "kt0" numgen random mod 100 < ${dupPercent} dup to ${target} device "kt0"
            }
          }`;
        const nft = await ns.exec('nft', ['-f', '-'], { input: rules });
        assert.equal(nft.code, 0, nft.stderr);
        const restoreInput = impairInput(tun.stack, { lossPercent, reorderPercent, holeMs, vnetHeader: variant.vnetHeader });
        return async () => {
          restoreInput();
          await ns.exec('nft', ['flush', 'ruleset']);
        };
      }

      /** Sends `bytes` to the stack's port 25 while receiving as many from it; checks both ways. */
      async function duplex(host: string, bytes: number): Promise<void> {
        sizes.source = bytes;
        const r = await peer('duplex', { host, port: 25, bytes, seed: 31 });
        assert.equal((r.got as { sha256: string }).sha256, await [...seen.sourceSha.values()].pop());
        assert.equal((await [...seen.duplexReceived.values()].pop()!).sha256, r.sent);
      }

      /**
       * Records the TCP packets the stack writes while `work` runs: tcpdump on kt0 without the vnet header (the
       * kernel's own view of the link), else a tap on the stack's output that reads the virtio-net gso_size.
       */
      async function captured(work: () => Promise<void>): Promise<TcpSeen[]> {
        if (variant.vnetHeader) {
          const tap = tapStackOutput(tun.stack, true);
          try {
            await work();
          } finally {
            tap.untap();
          }
          return tap.packets;
        }
        const capture = await captureOnTun(ns, 'kt0', 200_000);
        let packets: TcpSeen[] = [];
        try {
          await work();
        } finally {
          // Stopped even when the work failed, so no tcpdump outlives the test.
          packets = await capture.stop();
        }
        return packets;
      }

      before(async () => {
        ns = await TestNetns.create(`stack${variant.tag}-${family}`);
        tun = await TunStack.open(
          {
            name: 'kt0',
            netns: ns.name,
            mtu: variant.mtu,
            vnetHeader: variant.vnetHeader,
            offload: variant.vnetHeader,
            addresses: ['198.18.0.1/32', '2001:2::1/128'],
            routes: ['198.18.10.0/24', '2001:2:10::/64'],
            stack: { limits: { acceptTimeoutMs: 300 } },
          },
          {
            tcpConnect: (request) => serve(request, sizes),
            udpFlow: (flow) => flow.on('datagram', (data) => flow.send(data)),
            icmpEcho: (dst) => dst[dst.length - 1] !== 66,
          },
        );
      });

      after(async () => {
        tun?.close();
        await ns?.destroy();
      });

      test('1 GiB kernel → stack arrives exact (sha256)', async () => {
        const r = await peer('send', { host: addr(5), port: 9, bytes: GiB, seed: 11 });
        const reply = JSON.parse(r.reply as string) as { bytes: number; sha256: string };
        assert.equal(reply.bytes, GiB);
        assert.equal(reply.sha256, r.sent);
      });

      test('1 GiB stack → kernel arrives exact (sha256)', async () => {
        sizes.source = GiB;
        const r = await peer('recv', { host: addr(5), port: 19 });
        assert.equal(r.bytes, GiB);
        const key = [...seen.sourceSha.keys()].pop()!;
        assert.equal(r.sha256, await seen.sourceSha.get(key));
      });

      test('1,000 concurrent connections each echo 64 KiB', async () => {
        const r = await peer('echoMany', { host: addr(8), port: 7, connections: 1000, bytes: 65536 });
        assert.deepEqual({ ok: r.ok, failed: r.failed }, { ok: 1000, failed: 0 }, JSON.stringify(r.errors));
      });

      test('half-close: the kernel ends first and still receives the reply of the stack', async () => {
        const r = await peer('send', { host: addr(5), port: 9, bytes: 3 << 20, seed: 5 });
        assert.equal((JSON.parse(r.reply as string) as { sha256: string }).sha256, r.sent);
      });

      test('half-close: the stack ends first and still receives what the kernel sends after', async () => {
        const r = await peer('recvThenSend', { host: addr(5), port: 21, bytes: 2 << 20, seed: 9 });
        assert.equal((r.got as { bytes: number }).bytes, 1 << 20);
        const received = await [...seen.halfCloseReceived.values()].pop()!;
        assert.equal(received.sha256, r.sent);
      });

      test('active open: the stack connects to a kernel server and echoes 4 MiB through it', { timeout: 60_000 }, async () => {
        const kernelHost = family === 4 ? '198.18.0.1' : '2001:2::1';
        ns.spawn('node', [PEER, 'echoServer', JSON.stringify({ host: kernelHost, port: 7007 })]);
        const kernelAddress = parseIp(kernelHost);
        let socket: TcpSocket | undefined;
        for (let attempt = 0; attempt < 50; attempt++) {
          const candidate = tun.stack.connectTcp(parseIp(addr(5)), { address: kernelAddress, port: 7007 });
          const connected = await new Promise<boolean>((resolve) => {
            candidate.once('connect', () => resolve(true));
            candidate.once('error', () => resolve(false));
          });
          if (connected) {
            socket = candidate;
            break;
          }
          await new Promise((r) => setTimeout(r, 100)); // the echo server may not be listening yet
        }
        assert.ok(socket, 'never connected to the kernel server');
        const [sent, back] = await Promise.all([writePattern(socket, 8, 4 << 20), hashStream(socket)]);
        assert.deepEqual(back, { bytes: 4 << 20, sha256: sent });
      });

      test('with loss 2% each way (nft towards the kernel, at the stack input towards it), duplication 1% (nft dup) and reordering 5% (at the stack input), data is still exact', async () => {
        const restore = await impair(addr(5), 2, 1, 5);
        try {
          // Without offload every lost packet is a recovery of its own: 8 MiB each way keeps the suite's time bounded
          // (32 MiB took 44 s at MTU 1500, with the issue-10 fixes merged).
          const bytes = variant.vnetHeader ? 32 << 20 : 8 << 20;
          const r = await peer('send', { host: addr(5), port: 9, bytes, seed: 21 });
          assert.equal((JSON.parse(r.reply as string) as { sha256: string }).sha256, r.sent);
          sizes.source = bytes;
          const back = await peer('recv', { host: addr(5), port: 19 });
          assert.equal(back.sha256, await [...seen.sourceSha.values()].pop());
          const counters = await ns.exec('nft', ['list', 'ruleset']);
          assert.match(counters.stdout, /kt_loss/);
        } finally {
          await restore();
        }
      });

      // With loss towards the stack while it sends, its data carries SACK blocks: the option bytes must come out of
      // the segment's payload, not on top of it.
      const how = variant.vnetHeader ? 'gso_size + headers, read at the stack output' : 'tcpdump on kt0';
      test(`RFC 9293 §3.7.1, RFC 6691 §2: no packet the stack writes exceeds the MTU ${variant.mtu} (${how}), SACK blocks in flight`, async () => {
        const packets = await captured(async () => {
          const restore = await impair(addr(5), 1, 0, 5, HOLE_MS);
          try {
            // Without offload, 16 MiB each way is thousands of packets already, and each lost one costs time.
            await duplex(addr(5), variant.vnetHeader ? 64 << 20 : 16 << 20);
          } finally {
            await restore();
          }
        });
        const data = packets.filter((p) => p.payloadPerSegment > 0);
        assert.ok(data.length > 100, `only ${data.length} data packets captured`);
        assert.equal(firstBad(packets, (p) => wireLength(p) <= variant.mtu), '');
        // The sizes are only tested with SACK blocks on data if some data went out while a hole was open.
        const optionBytes = `option bytes of data segments ${optionSizes(data)}; of all ${optionSizes(packets)}`;
        assert.ok(data.some((p) => p.options >= 20), `no data segment carried SACK blocks (${optionBytes})`);
      });

      test(`RFC 9293 §3.7.1, RFC 6691 §2: with the kernel's route advmss ${ADVMSS}, every stack segment carries ≤ ${ADVMSS} bytes of payload + options (${how})`, async () => {
        const target = addr(12);
        const route = family === 4 ? ['route'] : ['-6', 'route'];
        const host = `${target}/${family === 4 ? 32 : 128}`;
        const add = await ns.exec('ip', [...route, 'add', host, 'dev', 'kt0', 'advmss', String(ADVMSS)]);
        assert.equal(add.code, 0, add.stderr);
        try {
          const packets = await captured(async () => {
            // Loss towards the stack puts SACK blocks on its data: more option bytes within the same MSS.
            const restore = await impair(target, 1, 0, 5, HOLE_MS);
            try {
              await duplex(target, variant.vnetHeader ? 64 << 20 : 16 << 20);
            } finally {
              await restore();
            }
          });
          // The stack answers from the clamped address: its segments have it as their source.
          const towards = packets.filter((p) => p.src === canonicalAddress(target) && p.payloadPerSegment > 0);
          assert.ok(towards.length > 100, `only ${towards.length} data packets from ${target} captured`);
          assert.equal(firstBad(towards, (p) => p.payloadPerSegment + p.options <= ADVMSS), '');
          const optionBytes = `option bytes of data segments ${optionSizes(towards)}; of all ${optionSizes(packets)}`;
          assert.ok(towards.some((p) => p.options >= 20), `no data segment carried SACK blocks (${optionBytes})`);
        } finally {
          await ns.exec('ip', [...route, 'del', host]);
        }
      });

      // Linux answers the bare ACK of a TIME-WAIT end with a RST and, since the RST may be lost, resends its SYN
      // after its minimal timeout: the handshake still completes quickly, so the RST is what shows the defect.
      test('RFC 6191: a Linux client reusing its port while the stack holds the old connection in TIME-WAIT connects at once (< 200 ms, no RST and retry)', async () => {
        sizes.source = 64 << 10;
        const tap = tapStackInput(tun.stack, variant.vnetHeader);
        let r: Record<string, unknown>;
        try {
          r = await peer('reconnect', { host: addr(5), port: 19 });
        } finally {
          tap.untap();
        }
        assert.equal(r.result, 'connected', JSON.stringify(r));
        assert.ok((r.ms as number) < 200, `the second connect took ${Math.round(r.ms as number)} ms`);
        assert.equal(r.sameTuple, true);
        const sha = await [...seen.sourceSha.values()].pop();
        assert.deepEqual(r.second, { bytes: 64 << 10, sha256: sha });
        assert.deepEqual(r.first, r.second);
        const flow = tap.packets.filter((p) => p.srcPort === r.localPort && p.dstPort === 19);
        const syns = flow.filter((p) => (p.flags & 0x12) === 0x02);
        const resets = flow.filter((p) => (p.flags & 0x04) !== 0);
        const handshake = { syns: syns.length, resets: resets.length };
        assert.deepEqual(handshake, { syns: 2, resets: 0 }, `second connect in ${Math.round(r.ms as number)} ms: ${JSON.stringify(handshake)}`);
      });

      // The device does not change these: they run on one variant only, to keep the suite's time bounded.
      if (full) {
        test('active open to a closed kernel port fails with ECONNREFUSED', async () => {
          const kernelAddress = parseIp(family === 4 ? '198.18.0.1' : '2001:2::1');
          const socket = tun.stack.connectTcp(parseIp(addr(5)), { address: kernelAddress, port: 7009 });
          const error = await new Promise<NodeJS.ErrnoException>((resolve) => socket.once('error', resolve));
          assert.equal(error.code, 'ECONNREFUSED');
        });

        test('a refused port fails connect() with ECONNREFUSED within 100 ms', async () => {
          const r = await peer('connect', { host: addr(5), port: 4444 });
          assert.equal(r.result, 'ECONNREFUSED');
          assert.ok((r.ms as number) < 100, `took ${r.ms} ms`);
        });

        test('an unreachable destination fails connect() with EHOSTUNREACH', async () => {
          const r = await peer('connect', { host: addr(66), port: 80 });
          assert.equal(r.result, 'EHOSTUNREACH');
        });

        test('an undecided SYN is answered as unreachable after the accept timeout, not left hanging', async () => {
          const r = await peer('connect', { host: addr(77), port: 80 });
          assert.equal(r.result, 'EHOSTUNREACH');
          assert.ok((r.ms as number) < 2000, `took ${r.ms} ms`);
        });

        test('a slow consumer stalls the kernel sender without loss', async () => {
          seen.slowReaderPeak = 0;
          const r = await peer('send', { host: addr(5), port: 23, bytes: 64 << 20, seed: 3 });
          const reply = JSON.parse(r.reply as string) as { bytes: number; sha256: string };
          assert.equal(reply.sha256, r.sent);
          assert.ok(seen.slowReaderPeak < 32 << 20, `buffered ${seen.slowReaderPeak} bytes while not reading`);
        });

        test('a slow kernel reader stalls the stack sender without loss', async () => {
          sizes.source = 64 << 20;
          const r = await peer('recv', { host: addr(5), port: 19, readDelayMs: 1000 });
          const key = [...seen.sourceSha.keys()].pop()!;
          assert.equal(r.sha256, await seen.sourceSha.get(key));
        });

        test('UDP echo of 10,000 datagrams, 60 KiB ones among them', async () => {
          const r = await peer('udpEcho', { host: addr(5), port: 7, count: 10_000, sizes: [64, 1400, 9000, 61_440] });
          assert.deepEqual(r, { sent: 10_000, received: 10_000, corrupt: 0 });
        });

        test('ping is answered where the policy says so', async () => {
          const ok = await ns.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', addr(5)]);
          assert.equal(ok.code, 0, ok.stdout + ok.stderr);
          const denied = await ns.exec('ping', ['-c', '1', '-W', '1', addr(66)]);
          assert.notEqual(denied.code, 0);
        });

        test('malformed packets are counted, never thrown', () => {
          const before = tun.stack.stats.packetsIn;
          tun.stack.input(Buffer.from([0x45, 0, 0]), 0);
          tun.stack.input(Buffer.alloc(0), 0);
          const stats = tun.stack.stats;
          assert.equal(stats.packetsIn, before + 2);
          assert.ok(Object.values(stats.dropped).reduce((a, b) => a + b, 0) >= 2);
        });
      }
    });
  }
}
