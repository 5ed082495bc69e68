// Path MTU discovery against the real Linux kernel (RFC 1191, RFC 8201): the stack's TUN sits in a router
// namespace R whose link towards the client namespace A has a smaller MTU. The stack sends segments too big for
// that link with DF set; R's kernel drops them and answers ICMP "fragmentation needed" / "packet too big" into
// the TUN, and the stack must shrink its segments for the transfer to complete.
//
//   A (kernel client) ── veth, MTU 1400 (v4) / 1280 (v6) ── R (router) ── TUN kt0, MTU 9000 ── the stack
//
// A's route into the stack's prefixes advertises a large MSS (advmss), so the client's SYN does not reveal the
// small link: only the ICMP errors can size the stack's segments. The IPv4 hop is 1400 bytes because the set-up
// puts IPv6 addresses on the link too (IPv6 needs 1280); IPv4 hops below 1280 are covered by sender-pmtu's test.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parseVirtioNetHdr, VIRTIO_NET_HDR_LEN } from '../../src/netstack/wire/virtio-net-hdr.js';
import { TunStack } from '../../src/rootd/tun-stack.js';
import { TestNetns } from '../helpers/netns.js';
import { writePattern } from '../helpers/pattern.js';

const PEER = fileURLToPath(new URL('../helpers/kernel-peer.js', import.meta.url));
const ROOT = process.getuid?.() === 0;
const TUN_MTU = 9000;
const BYTES = 8 << 20;
/** "Within a few seconds": a black hole would stall for the client's whole timeout instead. */
const TRANSFER_BUDGET_MS = 10_000;

interface Variant {
  name: string;
  vnetHeader: boolean;
}

const VARIANTS: Variant[] = [
  { name: 'vnet header + TSO (the GSO size follows the MSS)', vnetHeader: true },
  { name: 'no vnet header (the stack segments itself)', vnetHeader: false },
];

async function ip(ns: TestNetns, args: string[]): Promise<void> {
  const r = await ns.exec('ip', args);
  assert.equal(r.code, 0, `ip ${args.join(' ')}: ${r.stderr}`);
}

async function sysctl(ns: TestNetns, setting: string): Promise<void> {
  const r = await ns.exec('sysctl', ['-qw', setting]);
  assert.equal(r.code, 0, `sysctl ${setting}: ${r.stderr}`);
}

/** The largest IP packet a device packet becomes on the wire (after the kernel segments a GSO packet). */
/** `tailLength`: the payload bytes the device sends behind `packet` (NetStack.output's tails). */
function wireSize(packet: Buffer, vnetHeader: boolean, tailLength: number): number {
  if (!vnetHeader) return packet.length + tailLength;
  const hdr = parseVirtioNetHdr(packet);
  const ipLength = packet.length + tailLength - VIRTIO_NET_HDR_LEN;
  return hdr.gsoSize > 0 ? Math.min(ipLength, hdr.hdrLen + hdr.gsoSize) : ipLength;
}

for (const variant of VARIANTS) {
  for (const family of [4, 6] as const) {
    const smallMtu = family === 4 ? 1400 : 1280;
    const stackHost = family === 4 ? '198.18.10.5' : '2001:2:10::5';

    describe(
      `path MTU discovery through a kernel router, IPv${family}, ${variant.name}`,
      { skip: !ROOT && 'needs root' },
      () => {
        let router: TestNetns;
        let client: TestNetns;
        let tun: TunStack;
        let source: Promise<string> | undefined;
        /** Packets the stack wrote after it had received an ICMP error, and how many exceeded the small MTU. */
        const written = { afterIcmp: 0, oversizeAfterIcmp: 0, oversizeBeforeIcmp: 0 };

        before(async () => {
          router = await TestNetns.create('pmtu-r');
          client = await TestNetns.create('pmtu-a');
          await ip(router, ['link', 'add', 'ktpmtu-r', 'type', 'veth', 'peer', 'name', 'ktpmtu-a', 'netns', client.name]);
          for (const [ns, dev, v4, v6] of [
            [router, 'ktpmtu-r', '198.18.20.1/24', '2001:2:20::1/64'],
            [client, 'ktpmtu-a', '198.18.20.2/24', '2001:2:20::2/64'],
          ] as const) {
            await ip(ns, ['link', 'set', dev, 'mtu', String(smallMtu), 'up']);
            await ip(ns, ['addr', 'add', v4, 'dev', dev]);
            await ip(ns, ['-6', 'addr', 'add', v6, 'dev', dev, 'nodad']);
          }
          await sysctl(router, 'net.ipv4.ip_forward=1');
          await sysctl(router, 'net.ipv6.conf.all.forwarding=1');
          const advmss = String(TUN_MTU - (family === 4 ? 40 : 60));
          if (family === 4) await ip(client, ['route', 'add', '198.18.10.0/24', 'via', '198.18.20.1', 'advmss', advmss]);
          else await ip(client, ['-6', 'route', 'add', '2001:2:10::/64', 'via', '2001:2:20::1', 'advmss', advmss]);
          tun = await TunStack.open(
            {
              name: 'kt0',
              netns: router.name,
              mtu: TUN_MTU,
              vnetHeader: variant.vnetHeader,
              offload: variant.vnetHeader,
              addresses: ['198.18.0.1/32', '2001:2::1/128'],
              routes: ['198.18.10.0/24', '2001:2:10::/64'],
            },
            {
              tcpConnect: (request) => {
                source = writePattern(request.accept(), 17, BYTES);
              },
            },
          );
          const output = tun.stack.output.bind(tun.stack);
          tun.stack.output = (now, out, tails) => {
            const start = out.length;
            output(now, out, tails);
            const icmpSeen = tun.stack.stats.icmpErrors > 0;
            for (let i = start; i < out.length; i++) {
              const oversize = wireSize(out[i]!, variant.vnetHeader, tails?.[i]?.length ?? 0) > smallMtu;
              if (!icmpSeen) {
                if (oversize) written.oversizeBeforeIcmp++;
                continue;
              }
              written.afterIcmp++;
              if (oversize) written.oversizeAfterIcmp++;
            }
          };
        });

        after(async () => {
          tun?.close();
          await client?.destroy();
          await router?.destroy();
        });

        const title = `RFC ${family === 4 ? '1191 §4' : '8201 §4'}: ${BYTES >> 20} MiB from the stack cross a ${smallMtu}-byte hop exact and in seconds; the segments shrink after the ICMP error`;
        test(title, async (t) => {
          const r = await client.exec('node', [PEER, 'recv', JSON.stringify({ host: stackHost, port: 19 })], {
            timeoutMs: 2 * TRANSFER_BUDGET_MS,
          });
          assert.equal(r.code, 0, `kernel-peer recv failed: ${r.stderr}`);
          const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as { bytes: number; sha256: string; ms: number };
          assert.ok(source !== undefined, 'the stack never saw the connection');
          assert.deepEqual({ bytes: got.bytes, sha256: got.sha256 }, { bytes: BYTES, sha256: await source });
          const stats = tun.stack.stats;
          const seen = JSON.stringify({ ms: Math.round(got.ms), written, icmpErrors: stats.icmpErrors, dropped: stats.dropped });
          t.diagnostic(seen);
          assert.ok(got.ms < TRANSFER_BUDGET_MS, `took ${Math.round(got.ms)} ms: ${seen}`);
          assert.ok(written.oversizeBeforeIcmp > 0, `the first segments were too big for the hop: ${seen}`);
          assert.ok(stats.icmpErrors > 0 && stats.pathMtuDecreases === 1, `the router's ICMP error lowered the MSS: ${seen}`);
          assert.ok(written.afterIcmp > 100, `the transfer went on after the ICMP error: ${seen}`);
          assert.equal(written.oversizeAfterIcmp, 0, `no packet after the ICMP error exceeds ${smallMtu} bytes: ${seen}`);
        });
      },
    );
  }
}
