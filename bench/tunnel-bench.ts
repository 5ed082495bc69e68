// The tunnel benchmark (npm run bench, after the stack's): the sandbox cluster, measured from its workstation
// namespace over the direct path (a plain route to the node), then through `kubetun connect` (port-forward through
// the API server) and `kubetun connect --manager-url` (a NodePort), same run, same clients (bench-clients.ts):
// iperf3 TCP and UDP, redis-benchmark, a connection-rate client, HTTP request latency (idle and under a bulk
// transfer), DNS lookups; the CPU each hop spends per request and per GiB; and the daemons' RSS with 1,000 flows.
// KUBETUN_BENCH_CPU_PROF=<dir> also leaves CPU profiles of the daemons and the manager there (cpu-meter.ts).
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { podNetnsName } from '../src/sandbox/kubelet/pod-env.js';
import { readCluster, sandboxConfig, sandboxDown, sandboxManagerUser, sandboxUp, workstationCommand } from '../src/sandbox/index.js';
import { connRate, dnsTimes, httpLatency, iperfTcpRun, iperfUdp, latencyUnderLoad, redis, workstation } from './bench-clients.js';
import { mergeResults, printResults, type Result } from './bench-results.js';
import { HOPS, hopPids, managerPod, profileEnv, profileManager, runProfileDir, withCpu, workstationDaemonPid, type HopValues } from './cpu-meter.js';

const run = promisify(execFile);
const KUBETUN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('./load-client.js', import.meta.url));
const NAME = `ktb${process.pid % 1000}`;
const config = sandboxConfig(NAME);
const ws = workstation(config);
const SECONDS = Number(process.env.KUBETUN_BENCH_SECONDS ?? 3);
const REDIS_REQUESTS = { c1: 20_000, c50: 100_000 };
const UDP_MBIT = 500;
const LATENCY = { count: 5_000, seconds: SECONDS };

/** Each measured value: its row id on the port-forward path (tunnel.<id>) and its unit. */
const METRICS: Record<string, { id: string; unit: string }> = {
  up1: { id: 'tcp.1flow.up', unit: 'Gbit/s' },
  down1: { id: 'tcp.1flow.down', unit: 'Gbit/s' },
  up8: { id: 'tcp.8flow.up', unit: 'Gbit/s' },
  down8: { id: 'tcp.8flow.down', unit: 'Gbit/s' },
  udp: { id: `udp.${UDP_MBIT}M.delivered`, unit: 'Mbit/s' },
  udpLoss: { id: `udp.${UDP_MBIT}M.loss`, unit: '%' },
  redis50: { id: 'redis.c50.rps', unit: 'per s' },
  redis1: { id: 'redis.c1.rps', unit: 'per s' },
  conn: { id: 'conn.rate', unit: 'per s' },
  keepaliveP50: { id: 'http.keepalive.p50', unit: 'ms' },
  keepaliveP99: { id: 'http.keepalive.p99', unit: 'ms' },
  freshP50: { id: 'http.fresh.p50', unit: 'ms' },
  freshP99: { id: 'http.fresh.p99', unit: 'ms' },
  loadedP99: { id: 'http.loaded.p99', unit: 'ms' },
};

/** CPU per hop: µs per redis request with 1 and 50 clients, s per GiB of the iperf3 TCP runs. */
interface CpuCost {
  us_per_req: HopValues;
  us_per_req_c50: HopValues;
  s_per_gib: HopValues;
}

interface Measured {
  values: Record<string, number>;
  cpu: CpuCost | null;
}

const zeroHops = (): HopValues => Object.fromEntries(HOPS.map((hop) => [hop, 0])) as HopValues;
const perUnit = (cpuUs: HopValues, scale: (us: number) => number): HopValues =>
  Object.fromEntries(HOPS.map((hop) => [hop, scale(cpuUs[hop])])) as HopValues;

/** Every measurement over the current path; with `pids`, the CPU of those processes during each too. */
async function measureAll(pids: HopValues | null): Promise<Measured> {
  const metered = async <T>(into: HopValues, work: () => Promise<T>): Promise<T> => {
    if (pids === null) return work();
    const { result, cpuUs } = await withCpu(pids, work);
    for (const hop of HOPS) into[hop] += cpuUs[hop];
    return result;
  };
  const iperfCpu = zeroHops();
  let iperfBytes = 0;
  const tcp = async (flows: number, reverse: boolean): Promise<number> => {
    const { gbitPerSecond, bytes } = await metered(iperfCpu, () => iperfTcpRun(ws, { flows, reverse, seconds: SECONDS }));
    iperfBytes += bytes;
    return gbitPerSecond;
  };
  const redis1Cpu = zeroHops();
  const redis50Cpu = zeroHops();
  const values: Record<string, number> = {
    up1: await tcp(1, false),
    down1: await tcp(1, true),
    up8: await tcp(8, false),
    down8: await tcp(8, true),
    redis50: await metered(redis50Cpu, () => redis(ws, { clients: 50, requests: REDIS_REQUESTS.c50 })),
    redis1: await metered(redis1Cpu, () => redis(ws, { clients: 1, requests: REDIS_REQUESTS.c1 })),
    conn: await connRate(ws, { seconds: SECONDS }),
  };
  const udp = await iperfUdp(ws, { rateMbit: UDP_MBIT, seconds: SECONDS });
  const keepalive = await httpLatency(ws, { mode: 'keepalive', ...LATENCY });
  const fresh = await httpLatency(ws, { mode: 'fresh', ...LATENCY });
  const loaded = await latencyUnderLoad(ws, LATENCY);
  Object.assign(values, {
    udp: udp.deliveredMbit,
    udpLoss: udp.lossPercent,
    keepaliveP50: keepalive.p50Ms,
    keepaliveP99: keepalive.p99Ms,
    freshP50: fresh.p50Ms,
    freshP99: fresh.p99Ms,
    loadedP99: loaded.p99Ms,
  });
  if (pids === null) return { values, cpu: null };
  return {
    values,
    cpu: {
      us_per_req: perUnit(redis1Cpu, (us) => us / REDIS_REQUESTS.c1),
      us_per_req_c50: perUnit(redis50Cpu, (us) => us / REDIS_REQUESTS.c50),
      s_per_gib: perUnit(iperfCpu, (us) => us / 1e6 / (iperfBytes / 2 ** 30)),
    },
  };
}

/** `kubetun connect` with `args`, profiling the daemons it starts into the run's folder when asked to. */
async function connect(run: string, args: string[] = []): Promise<void> {
  const dir = runProfileDir(run);
  if (dir !== undefined) await profileManager(config, dir);
  await ws.run(['node', KUBETUN, 'connect', ...args], { env: dir === undefined ? {} : profileEnv(dir) });
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** RSS of the root daemon and the manager while 1,000 idle flows go through kubetun to redis. */
async function rssWithFlows(flows: number): Promise<{ rootd: number; manager: number }> {
  const { file, args, env } = workstationCommand(config, ['node', CLIENT, 'holdIdle', JSON.stringify({ host: ws.targets.redis, port: 6379, connections: flows, concurrency: 32 })]);
  const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.once('exit', () => reject(new Error('the idle-flow client exited early')));
  });
  await new Promise((r) => setTimeout(r, 1000));
  const result = { rootd: await rssMiB(await workstationDaemonPid(config, 'root-daemon')), manager: await rssMiB((await managerPod(config)).pid) };
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
  await ws.run(['node', KUBETUN, 'install', '--tls-secret', config.manager.tlsSecret]);
  return (await sandboxManagerUser(config, 'bench', true)).kubeconfig;
}

/** The rows of one kubetun path (`tunnel.` for the port-forward, `tunnel.manager_url.` with the old short keys). */
function rows(measured: Measured, plain: Measured, id: (key: string, metricId: string) => string): Result[] {
  const values = Object.entries(METRICS).map(([key, m]): Result => ({ id: id(key, m.id), unit: m.unit, kubetun: measured.values[key]!, direct: plain.values[key]! }));
  const cpu = Object.entries(measured.cpu ?? {}).flatMap(([metric, perHop]: [string, HopValues]) =>
    HOPS.map((hop): Result => ({ id: id(`cpu.${hop}.${metric}`, `cpu.${hop}.${metric}`), unit: metric.startsWith('us') ? 'µs' : 's/GiB', kubetun: perHop[hop], direct: null })),
  );
  return [...values, ...cpu];
}

async function main(): Promise<void> {
  await sandboxUp(NAME);
  const results: Result[] = [];
  try {
    await ws.run(['node', KUBETUN, 'install']);
    await allowTimeWaitReuse();
    const direct = { routes: [...config.podCidrs, ...config.serviceCidrs].filter((c) => !c.includes(':')) };
    for (const cidr of direct.routes) await ws.run(['ip', 'route', 'add', cidr, 'via', config.link.node.ipv4]);
    const plain = await measureAll(null);
    const plainDns = await dnsTimes(ws, config.clusterDns.ipv4);
    for (const cidr of direct.routes) await ws.run(['ip', 'route', 'del', cidr]);

    // kubetun's default path: the kubeconfig, the API server's port-forward to the manager's pod.
    await connect('port-forward');
    const tunneled = await measureAll(await hopPids(config));
    const tunneledDns = await dnsTimes(ws, '198.18.255.53');
    await ws.run(['node', KUBETUN, 'quit']);
    // The same through a manager reached directly (--manager-url to a NodePort): what the port-forward costs.
    const user = await exposeManager();
    await connect('manager-url', ['--manager-url', config.manager.url, '--manager-ca', config.manager.caFile, '--kubeconfig', user]);
    const byUrl = await measureAll(await hopPids(config));
    // Memory from fresh daemons: the throughput runs above leave a heap high-water mark that is not the flows'.
    await ws.run(['node', KUBETUN, 'quit']);
    await ws.run(['node', KUBETUN, 'connect']);
    const rss = await rssWithFlows(1000);
    await ws.run(['node', KUBETUN, 'quit']);

    results.push(
      ...rows(tunneled, plain, (_key, id) => `tunnel.${id}`),
      ...rows(byUrl, plain, (key) => `tunnel.manager_url.${key}`),
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
