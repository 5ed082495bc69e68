// The foundation demo: a network namespace with a TUN device, the user-space stack behind it serving HTTP on
// every address of a routed /24 (and an IPv6 /64), and curl in the namespace reaching it through the kernel.
// Each step prints what it did; the exit status is 0 only when every step worked. Everything is removed at the end.
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { promisify } from 'node:util';
import type { TcpConnectRequest } from '../netstack/stack.js';
import { TunStack } from '../rootd/tun-stack.js';

const run = promisify(execFile);

const NETNS = `kt-demo-${process.pid}`;
const HTTP_PORT = 80;

interface Step {
  title: string;
  command: string[];
  expect: (result: { ok: boolean; stdout: string; stderr: string }) => boolean;
}

const STEPS: Step[] = [
  {
    title: 'HTTP to 198.18.10.7 (IPv4, first address of the routed /24)',
    command: ['curl', '-sS', '--max-time', '5', 'http://198.18.10.7/'],
    expect: (r) => r.ok && r.stdout.includes('198.18.10.7'),
  },
  {
    title: 'HTTP to 198.18.10.254 (another address, same stack)',
    command: ['curl', '-sS', '--max-time', '5', 'http://198.18.10.254/hello'],
    expect: (r) => r.ok && r.stdout.includes('/hello'),
  },
  {
    title: 'HTTP to [2001:2:10::7] (IPv6)',
    command: ['curl', '-sS', '--max-time', '5', 'http://[2001:2:10::7]/'],
    expect: (r) => r.ok && r.stdout.includes('2001:2:10::7'),
  },
  {
    title: 'a closed port answers with a RST: "connection refused" at once',
    command: ['curl', '-sS', '--max-time', '5', 'http://198.18.10.7:81/'],
    expect: (r) => !r.ok && /\(7\)/.test(r.stderr),
  },
  {
    title: 'ping 198.18.10.9 answered by the stack',
    command: ['ping', '-c', '1', '-W', '2', '198.18.10.9'],
    expect: (r) => r.ok,
  },
];

async function inNamespace(command: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('ip', ['netns', 'exec', NETNS, ...command], { timeout: 10_000 });
    return { ok: true, stdout, stderr };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

export async function runStackDemo(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('kubetun demo: needs root (it creates a network namespace and a TUN device). Run it with sudo.');
    return 1;
  }
  const http = createServer((req, res) => {
    const socket = req.socket as unknown as { localAddress: string };
    res.end(`hello from kubetun's user-space stack: you reached ${socket.localAddress} asking for ${req.url}\n`);
  });
  await run('ip', ['netns', 'add', NETNS]);
  let tun: TunStack | null = null;
  let failures = 0;
  try {
    await run('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);
    tun = await TunStack.open(
      {
        name: 'kt0',
        netns: NETNS,
        mtu: 65_000,
        vnetHeader: true,
        offload: true,
        addresses: ['198.18.0.1/32', '2001:2::1/128'],
        routes: ['198.18.10.0/24', '2001:2:10::/64'],
      },
      {
        tcpConnect: (request: TcpConnectRequest) => {
          if (request.local.port !== HTTP_PORT) {
            request.refuse();
            return;
          }
          http.emit('connection', request.accept());
        },
        icmpEcho: () => true,
      },
    );
    console.log(`namespace ${NETNS}: TUN kt0 up, 198.18.10.0/24 and 2001:2:10::/64 routed into kubetun's stack`);
    for (const step of STEPS) {
      const result = await inNamespace(step.command);
      const passed = step.expect(result);
      if (!passed) failures++;
      console.log(`${passed ? 'ok  ' : 'FAIL'} ${step.title}`);
      console.log(`     $ ${step.command.join(' ')}`);
      const shown = (result.stdout + result.stderr).trim().split('\n').slice(0, 3);
      for (const line of shown) console.log(`     ${line}`);
    }
    const stats = tun.stack.stats;
    console.log(`stack: ${stats.packetsIn} packets in, ${stats.packetsOut} out, dropped ${JSON.stringify(stats.dropped)}`);
  } catch (error) {
    failures++;
    console.error(`kubetun demo: ${(error as Error).message}`);
  } finally {
    tun?.close();
    http.close();
    await run('ip', ['netns', 'del', NETNS]).catch(() => undefined);
  }
  console.log(failures === 0 ? 'demo: every step worked' : `demo: ${failures} step(s) failed`);
  return failures === 0 ? 0 : 1;
}
