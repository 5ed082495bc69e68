// A fresh process for the memory figure: a stack with 10,000 idle established flows and nothing else in its
// history (the throughput runs would leave their garbage and slabs in the benchmark's own RSS).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TunStack } from '../src/rootd/tun-stack.js';
import { serveBench } from './bench-protocol.js';

const [netns, json] = process.argv.slice(2);
const { mtu, vnetHeader, flows } = JSON.parse(json!) as { mtu: number; vnetHeader: boolean; flows: number };
const CLIENT = fileURLToPath(new URL('./load-client.js', import.meta.url));

const tun = await TunStack.open(
  { name: 'kt1', netns: netns!, mtu, vnetHeader, offload: vnetHeader, addresses: ['198.18.0.9/32'], routes: ['198.18.11.0/24'] },
  { tcpConnect: (request) => void serveBench(request.local.port, request.accept(), () => undefined) },
);
const client = spawn('ip', ['netns', 'exec', netns!, 'node', CLIENT, 'holdIdle', JSON.stringify({ host: '198.18.11.5', connections: flows, concurrency: 64 })], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
await new Promise<void>((resolve, reject) => {
  client.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
  client.once('exit', () => reject(new Error('the idle-flow client exited early')));
});
await new Promise((r) => setTimeout(r, 1000));
global.gc?.();
const rss = process.memoryUsage().rss / (1 << 20);
const established = tun.stack.stats.tcpFlows;
client.stdin.end();
await new Promise((r) => client.once('exit', r));
tun.close();
console.log(JSON.stringify({ rss, established }));
