// npm run bench: kubetun's stack against the kernel's loopback, same client, same run. Kernel → stack ("in") and
// stack → kernel ("out") single flow for each device variant (MTU 1500, a large MTU, virtio-net header with
// TSO/checksum offload), then for the fastest: 8 flows, connection rate and RSS with 10,000 idle flows.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TunStack } from '../src/rootd/tun-stack.js';
import { serveBench } from './bench-protocol.js';

const run = promisify(execFile);
const NETNS = `kt-bench-${process.pid}`;
const CLIENT = fileURLToPath(new URL('./load-client.js', import.meta.url));
const SERVER = fileURLToPath(new URL('./loopback-server.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../bench/results/latest.json', import.meta.url));
const STACK_ADDR = '198.18.10.5';
const DIRECT_ADDR = '127.0.0.1';
const MiB = 1 << 20;
const BYTES = Number(process.env.KUBETUN_BENCH_BYTES ?? 1024 * MiB);

interface Variant {
  name: string;
  mtu: number;
  vnetHeader: boolean;
}
const VARIANTS: Variant[] = [
  { name: 'mtu1500', mtu: 1500, vnetHeader: false },
  { name: 'mtu65000', mtu: 65_000, vnetHeader: false },
  { name: 'vnet-tso-mtu1500', mtu: 1500, vnetHeader: true },
  { name: 'vnet-tso-mtu65000', mtu: 65_000, vnetHeader: true },
];

interface Result {
  id: string;
  unit: string;
  kubetun: number;
  direct: number | null;
}

async function client(mode: string, args: Record<string, unknown>): Promise<Record<string, number>> {
  const { stdout } = await run('ip', ['netns', 'exec', NETNS, 'node', CLIENT, mode, JSON.stringify(args)], {
    timeout: 300_000,
    maxBuffer: 1 << 20,
  });
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number> & { error?: string };
  if (result.error !== undefined) throw new Error(`${mode}: ${result.error}`);
  return result;
}

async function throughput(mode: 'upload' | 'download', host: string, flows: number): Promise<number> {
  const { seconds } = await client(mode, { host, bytes: BYTES, flows });
  return BYTES / MiB / seconds!;
}

async function openStack(variant: Variant): Promise<TunStack> {
  return TunStack.open(
    {
      name: 'kt0',
      netns: NETNS,
      mtu: variant.mtu,
      vnetHeader: variant.vnetHeader,
      offload: variant.vnetHeader,
      addresses: ['198.18.0.1/32'],
      routes: ['198.18.10.0/24'],
    },
    {
      tcpConnect: (request) => {
        const port = request.local.port;
        if (port !== 9 && port !== 19 && port !== 13) return request.refuse();
        serveBench(port, request.accept());
      },
    },
  );
}

async function rssWithIdleFlows(count: number): Promise<number> {
  const child = spawn('ip', ['netns', 'exec', NETNS, 'node', CLIENT, 'holdIdle', JSON.stringify({ host: STACK_ADDR, connections: count, concurrency: 64 })], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    child.once('exit', () => reject(new Error('holdIdle exited early')));
  });
  await new Promise((r) => setTimeout(r, 1000));
  global.gc?.();
  const rss = process.memoryUsage().rss / MiB;
  child.stdin.end();
  await new Promise((r) => child.once('exit', r));
  return rss;
}

function ratio(r: Result): string {
  return r.direct === null ? '' : (r.kubetun / r.direct).toFixed(2);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (network namespace and TUN device)');
  await run('ip', ['netns', 'add', NETNS]);
  const server = spawn('ip', ['netns', 'exec', NETNS, 'node', SERVER, DIRECT_ADDR], { stdio: ['ignore', 'pipe', 'inherit'] });
  const results: Result[] = [];
  try {
    await run('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);
    // The connection-rate client closes first and keeps the TIME-WAITs: let it reuse them (this namespace only).
    await run('ip', ['netns', 'exec', NETNS, 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65000']);
    await new Promise<void>((resolve) => server.stdout!.once('data', () => resolve()));

    const direct = {
      in1: await throughput('upload', DIRECT_ADDR, 1),
      out1: await throughput('download', DIRECT_ADDR, 1),
      in8: await throughput('upload', DIRECT_ADDR, 8),
      conn: (await client('connRate', { host: DIRECT_ADDR, seconds: 3, concurrency: 32 })).perSecond!,
    };

    let best: { variant: Variant; score: number } | null = null;
    for (const variant of VARIANTS) {
      const tun = await openStack(variant);
      try {
        const inbound = await throughput('upload', STACK_ADDR, 1);
        const outbound = await throughput('download', STACK_ADDR, 1);
        results.push({ id: `stack.tcp.1flow.in@${variant.name}`, unit: 'MiB/s', kubetun: inbound, direct: direct.in1 });
        results.push({ id: `stack.tcp.1flow.out@${variant.name}`, unit: 'MiB/s', kubetun: outbound, direct: direct.out1 });
        if (best === null || inbound + outbound > best.score) best = { variant, score: inbound + outbound };
      } finally {
        tun.close();
      }
    }

    const tun = await openStack(best!.variant);
    try {
      const inbound = results.find((r) => r.id === `stack.tcp.1flow.in@${best!.variant.name}`)!;
      const outbound = results.find((r) => r.id === `stack.tcp.1flow.out@${best!.variant.name}`)!;
      results.unshift(
        { ...inbound, id: 'stack.tcp.1flow.in' },
        { ...outbound, id: 'stack.tcp.1flow.out' },
        { id: 'stack.tcp.8flow.in', unit: 'MiB/s', kubetun: await throughput('upload', STACK_ADDR, 8), direct: direct.in8 },
        {
          id: 'stack.conn.rate',
          unit: 'per s',
          kubetun: (await client('connRate', { host: STACK_ADDR, seconds: 3, concurrency: 32 })).perSecond!,
          direct: direct.conn,
        },
        { id: 'stack.rss.10k_idle', unit: 'MiB', kubetun: await rssWithIdleFlows(10_000), direct: null },
      );
    } finally {
      tun.close();
    }
    console.log(`device variant used for the headline figures: ${best!.variant.name}`);
  } finally {
    server.kill();
    await run('ip', ['netns', 'del', NETNS]).catch(() => undefined);
  }

  console.log(['id'.padEnd(34), 'unit'.padEnd(6), 'kubetun'.padStart(10), 'direct'.padStart(10), 'ratio'.padStart(6)].join(' '));
  for (const r of results) {
    const direct = r.direct === null ? '-' : r.direct.toFixed(1);
    console.log([r.id.padEnd(34), r.unit.padEnd(6), r.kubetun.toFixed(1).padStart(10), direct.padStart(10), ratio(r).padStart(6)].join(' '));
  }
  mkdirSync(fileURLToPath(new URL('.', `file://${RESULTS}`)), { recursive: true });
  writeFileSync(RESULTS, JSON.stringify({ results }, null, 2) + '\n');
  console.log(`written to bench/results/latest.json`);
}

main().catch((error: Error) => {
  console.error(`kubetun bench: ${error.message}`);
  process.exit(1);
});
