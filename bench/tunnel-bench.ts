// The tunnel benchmark (npm run bench, after the stack's): the sandbox cluster, measured from its workstation
// namespace over the direct path (a plain route to the node), then through `kubetun connect` (port-forward through
// the API server) and `kubetun connect --manager-url` (a NodePort), same run, same clients: iperf3, redis-benchmark, a connection-rate client, DNS lookups, and the daemons' RSS with 1,000 flows.
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { podNetnsName } from '../src/sandbox/kubelet/pod-env.js';
import { podsOf, readCluster, sandboxConfig, sandboxDown, sandboxManagerUser, sandboxUp, workstationCommand } from '../src/sandbox/index.js';
import { mergeResults, printResults, type Result } from './bench-results.js';

const run = promisify(execFile);
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));
const KUBETUN = here('../src/cli/main.js');
const CLIENT = here('./load-client.js');
const DNS_TIMER = here('./dns-timer.js');
const NAME = `ktb${process.pid % 1000}`;
const config = sandboxConfig(NAME);
const IPERF = '10.96.0.22';
const REDIS = '10.96.0.21';
const ECHO = '10.96.0.20';
const SECONDS = Number(process.env.KUBETUN_BENCH_SECONDS ?? 3);

async function ws(command: string[], timeoutMs = 120_000): Promise<string> {
  const { file, args, env } = workstationCommand(config, command);
  const { stdout } = await run(file, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 << 20 });
  return stdout;
}

async function iperf(flows: number, reverse: boolean): Promise<number> {
  // The iperf3 server runs one test at a time: right after the previous one it may still say it is busy.
  for (let attempt = 0; ; attempt++) {
    const out = await ws(['iperf3', '-c', IPERF, '-t', String(SECONDS), '-P', String(flows), '-J', ...(reverse ? ['-R'] : [])]);
    const result = JSON.parse(out) as { end: { sum_received?: { bits_per_second: number } }; error?: string };
    if (result.end.sum_received !== undefined) return result.end.sum_received.bits_per_second / 1e9;
    if (!/server is busy/.test(result.error ?? '') || attempt === 20) throw new Error(`iperf3 measured nothing: ${result.error ?? out.slice(0, 300)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function redis(clients: number): Promise<number> {
  const requests = clients === 1 ? 20_000 : 100_000;
  const out = await ws(['redis-benchmark', '-h', REDIS, '-c', String(clients), '-n', String(requests), '-t', 'get', '-q']);
  const match = /GET: ([\d.]+) requests per second/.exec(out);
  if (match === null) throw new Error(`redis-benchmark printed: ${out}`);
  return Number(match[1]);
}

async function connRate(): Promise<number> {
  const out = await ws(['node', CLIENT, 'connRate', JSON.stringify({ host: ECHO, port: 80, seconds: SECONDS, concurrency: 32 })]);
  return (JSON.parse(out.trim().split('\n').pop()!) as { perSecond: number }).perSecond;
}

async function dnsTimes(server: string): Promise<{ coldMs: number; cachedMs: number }> {
  return JSON.parse((await ws(['node', DNS_TIMER, server, '200'])).trim()) as { coldMs: number; cachedMs: number };
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

async function rootDaemonPid(): Promise<number> {
  const out = await run('ip', ['netns', 'pids', config.namespaces.workstation]);
  for (const pid of out.stdout.split('\n').filter(Boolean).map(Number)) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('root-daemon')) return pid;
  }
  throw new Error('the root daemon is not running in the workstation');
}

/** RSS of the root daemon and the manager while 1,000 idle flows go through kubetun to redis. */
async function rssWithFlows(flows: number): Promise<{ rootd: number; manager: number }> {
  const { file, args, env } = workstationCommand(config, ['node', CLIENT, 'holdIdle', JSON.stringify({ host: REDIS, port: 6379, connections: flows, concurrency: 32 })]);
  const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.once('exit', () => reject(new Error('the idle-flow client exited early')));
  });
  await new Promise((r) => setTimeout(r, 1000));
  const manager = podsOf((await readCluster(config)).pods, 'traffic-manager', config.manager.namespace)[0]?.pid;
  if (manager == null) throw new Error('the traffic manager is not running');
  const result = { rootd: await rssMiB(await rootDaemonPid()), manager: await rssMiB(manager) };
  child.stdin.end();
  await new Promise((r) => child.once('exit', r));
  return result;
}

/**
 * Tens of thousands of short connections leave TIME-WAITs in the connecting side (the workstation directly,
 * the manager's pod through kubetun); with Linux's default port range connect() then slows to milliseconds.
 * Both get the same remedy, so the two paths are measured alike.
 */
async function allowTimeWaitReuse(): Promise<void> {
  const pods = (await readCluster(config)).pods.map((p) => podNetnsName(config.podNetnsPrefix, { metadata: { name: p.name, namespace: p.namespace, uid: '' } }));
  for (const ns of [config.namespaces.workstation, ...pods]) {
    await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65000']);
  }
}

/**
 * The manager's TLS listener (install --tls-secret; the sandbox made the Secret and the NodePort), and a kubeconfig
 * of a user allowed to port-forward to it: what `connect --manager-url` authenticates with.
 */
async function exposeManager(): Promise<string> {
  await ws(['node', KUBETUN, 'install', '--tls-secret', config.manager.tlsSecret]);
  return (await sandboxManagerUser(config, 'bench', true)).kubeconfig;
}

async function measureAll(): Promise<Record<string, number>> {
  return {
    up1: await iperf(1, false),
    down1: await iperf(1, true),
    up8: await iperf(8, false),
    down8: await iperf(8, true),
    redis50: await redis(50),
    redis1: await redis(1),
    conn: await connRate(),
  };
}

async function main(): Promise<void> {
  await sandboxUp(NAME);
  const results: Result[] = [];
  try {
    await ws(['node', KUBETUN, 'install']);
    await allowTimeWaitReuse();
    const direct = { routes: [...config.podCidrs, ...config.serviceCidrs].filter((c) => !c.includes(':')) };
    for (const cidr of direct.routes) await ws(['ip', 'route', 'add', cidr, 'via', config.link.node.ipv4]);
    const plain = await measureAll();
    const plainDns = await dnsTimes(config.clusterDns.ipv4);
    for (const cidr of direct.routes) await ws(['ip', 'route', 'del', cidr]);

    // kubetun's default path: the kubeconfig, the API server's port-forward to the manager's pod.
    await ws(['node', KUBETUN, 'connect']);
    const tunneled = await measureAll();
    const tunneledDns = await dnsTimes('198.18.255.53');
    await ws(['node', KUBETUN, 'quit']);
    // The same through a manager reached directly (--manager-url to a NodePort): what the port-forward costs.
    const user = await exposeManager();
    await ws(['node', KUBETUN, 'connect', '--manager-url', config.manager.url, '--manager-ca', config.manager.caFile, '--kubeconfig', user]);
    const byUrl = await measureAll();
    // Memory from fresh daemons: the throughput runs above leave a heap high-water mark that is not the flows'.
    await ws(['node', KUBETUN, 'quit']);
    await ws(['node', KUBETUN, 'connect']);
    const rss = await rssWithFlows(1000);
    await ws(['node', KUBETUN, 'quit']);

    const pair = (id: string, unit: string, key: string): Result => ({ id, unit, kubetun: tunneled[key]!, direct: plain[key]! });
    results.push(
      pair('tunnel.tcp.1flow.up', 'Gbit/s', 'up1'),
      pair('tunnel.tcp.1flow.down', 'Gbit/s', 'down1'),
      pair('tunnel.tcp.8flow.up', 'Gbit/s', 'up8'),
      pair('tunnel.tcp.8flow.down', 'Gbit/s', 'down8'),
      pair('tunnel.redis.c50.rps', 'per s', 'redis50'),
      pair('tunnel.redis.c1.rps', 'per s', 'redis1'),
      pair('tunnel.conn.rate', 'per s', 'conn'),
      ...['up1', 'down1', 'up8', 'down8', 'redis50', 'redis1', 'conn'].map(
        (key): Result => ({ id: `tunnel.manager_url.${key}`, unit: key.startsWith('redis') || key === 'conn' ? 'per s' : 'Gbit/s', kubetun: byUrl[key]!, direct: plain[key]! }),
      ),
      { id: 'tunnel.dns.cold_ms', unit: 'ms', kubetun: tunneledDns.coldMs, direct: plainDns.coldMs },
      { id: 'tunnel.dns.cached_ms', unit: 'ms', kubetun: tunneledDns.cachedMs, direct: plainDns.cachedMs },
      { id: 'tunnel.rss.rootd_1k', unit: 'MiB', kubetun: rss.rootd, direct: null },
      { id: 'tunnel.rss.manager_1k', unit: 'MiB', kubetun: rss.manager, direct: null },
    );
  } finally {
    await sandboxDown(NAME);
  }
  printResults(results);
  mergeResults('tunnel.', results);
}

main().catch((error: Error) => {
  console.error(`kubetun tunnel bench: ${error.message}`);
  process.exit(1);
});
