// The WAN link emulator between two namespaces joined by a veth, as in the sandbox: real pings, a real kernel TCP
// transfer with TSO through it, and iperf3. It must show the profile's delay, lose and repair without corrupting,
// hold the rate down to the profile's, and leave the veth's routing as it was when it stops.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WanLink, WAN_DEVICE, type WanLinkEnds } from '../../src/sandbox/wan/wan-link.js';
import type { WanProfile } from '../../src/sandbox/wan/link-shaper.js';
import { requireRoot, TestNetns } from '../helpers/netns.js';

const WS = { ipv4: '198.18.0.2', ipv6: '2001:2::2' };
const NODE = { ipv4: '198.18.0.1', ipv6: '2001:2::1' };

function profile(fields: Partial<WanProfile>): WanProfile {
  return { id: 'test', rttMs: 0, rateMbit: 0, lossPercent: 0, queueMs: 50, ...fields };
}

/** min and avg of `ping -q` in ms. */
async function ping(ns: TestNetns, address: string, count: number): Promise<{ min: number; avg: number }> {
  const out = await ns.exec('ping', ['-q', '-n', '-c', String(count), '-i', '0.05', '-W', '2', address], { timeoutMs: 20_000 });
  const match = /= ([\d.]+)\/([\d.]+)\//.exec(out.stdout);
  assert.ok(match, `ping printed: ${out.stdout}${out.stderr}`);
  return { min: Number(match[1]), avg: Number(match[2]) };
}

describe('the WAN link emulator (real kernels on both ends)', { concurrency: false }, () => {
  let ws: TestNetns;
  let node: TestNetns;
  let ends: WanLinkEnds;
  let ready = false;

  before(async () => {
    if (process.getuid?.() !== 0) return;
    ws = await TestNetns.create('wanw');
    node = await TestNetns.create('wann');
    const batch = async (ns: TestNetns, lines: string[]): Promise<void> => {
      const out = await ns.exec('ip', ['-batch', '-'], { input: lines.join('\n') + '\n' });
      assert.equal(out.code, 0, out.stderr);
    };
    await batch(ws, [`link add eth0 type veth peer name ws0 netns ${node.name}`, `addr add ${WS.ipv4}/30 dev eth0`, `addr add ${WS.ipv6}/64 dev eth0 nodad`, 'link set eth0 up']);
    await batch(node, [`addr add ${NODE.ipv4}/30 dev ws0`, `addr add ${NODE.ipv6}/64 dev ws0 nodad`, 'link set ws0 up']);
    ends = { workstation: { netns: ws.name, address: WS }, node: { netns: node.name, address: NODE } };
    ready = true;
  });

  after(async () => {
    await ws?.destroy();
    await node?.destroy();
  });

  test('a ping takes the profile RTT over both families, and closing the link gives the veth its traffic back', async (t) => {
    if (!requireRoot(t) || !ready) return;
    const link = await WanLink.start(ends, profile({ rttMs: 20, rateMbit: 1000 }));
    try {
      for (const address of [NODE.ipv4, NODE.ipv6]) {
        const { min, avg } = await ping(ws, address, 10);
        // The delay is held by timers of a busy machine: never shorter than the profile (less the half
        // millisecond the emulator sends early by), sometimes somewhat longer.
        assert.ok(min >= 19, `${address}: min RTT ${min} ms under the profile's 20 ms`);
        assert.ok(avg < 40, `${address}: average RTT ${avg} ms, far above the profile's 20 ms`);
      }
      const stats = await link.stats();
      assert.ok(stats.aToB.packets >= 20 && stats.bToA.packets >= 20, JSON.stringify(stats));
    } finally {
      await link.close();
    }
    const { avg } = await ping(ws, NODE.ipv4, 3);
    assert.ok(avg < 10, `after close the veth answers directly, yet the RTT is ${avg} ms`);
    const left = await ws.exec('ip', ['link', 'show', WAN_DEVICE]);
    assert.notEqual(left.code, 0, `${WAN_DEVICE} is still there after close`);
  });

  test('a kernel TCP transfer crosses loss intact: TSO packets with lost segments are cut into the survivors', async (t) => {
    if (!requireRoot(t) || !ready) return;
    const dir = await mkdtemp(join(tmpdir(), 'kt-wan-'));
    const link = await WanLink.start(ends, profile({ rttMs: 4, rateMbit: 400, lossPercent: 2 }), 7);
    try {
      const data = randomBytes(16 << 20);
      await writeFile(join(dir, 'in'), data);
      for (const [listen, target] of [
        ['TCP4-LISTEN:5001,reuseaddr', `TCP4:${NODE.ipv4}:5001`],
        ['TCP6-LISTEN:5002,reuseaddr', `TCP6:[${NODE.ipv6}]:5002`],
      ] as const) {
        const out = join(dir, 'out');
        const server = node.spawn('socat', ['-u', listen, `CREATE:${out}`]);
        const exited = new Promise((resolve) => server.once('exit', resolve));
        await new Promise((r) => setTimeout(r, 300));
        const client = await ws.exec('socat', ['-u', `OPEN:${join(dir, 'in')}`, target], { timeoutMs: 60_000 });
        assert.equal(client.code, 0, client.stderr);
        await exited;
        const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
        assert.equal(digest(await readFile(out)), digest(data), `${target}: the received bytes differ from those sent`);
      }
      const { aToB } = await link.stats();
      assert.ok(aToB.segments > aToB.packets, `the kernel sent no TSO packets through the link: ${JSON.stringify(aToB)}`);
      assert.ok(aToB.lostSegments > 0 && aToB.cut > 0, `no TSO packet was cut: ${JSON.stringify(aToB)}`);
    } finally {
      await link.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('iperf3 through the link gets no more than the profile rate', async (t) => {
    if (!requireRoot(t) || !ready) return;
    const link = await WanLink.start(ends, profile({ rttMs: 2, rateMbit: 100, queueMs: 10 }));
    try {
      const server = node.spawn('iperf3', ['-s', '-1', '-B', NODE.ipv4, '-p', '5203']);
      const exited = new Promise((resolve) => server.once('exit', resolve));
      await new Promise((r) => setTimeout(r, 300));
      const out = await ws.exec('iperf3', ['-c', NODE.ipv4, '-p', '5203', '-t', '2', '-J'], { timeoutMs: 30_000 });
      await exited;
      const mbit = (JSON.parse(out.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e6;
      // The queue lets 10 ms at the link rate through on top of the rate itself: 0.5 % of two seconds.
      assert.ok(mbit <= 102, `iperf3 got ${mbit.toFixed(1)} Mbit/s through a 100 Mbit/s link`);
      assert.ok(mbit > 10, `iperf3 got only ${mbit.toFixed(1)} Mbit/s through a 100 Mbit/s link`);
    } finally {
      await link.close();
    }
  });
});
