// The WAN bench (npm run bench:wan): the sandbox with its workstation's link replaced by an emulated WAN link
// (src/sandbox/wan/), over each profile of wan-profiles.ts. The link is the only path from the workstation to
// the cluster, so the direct path (routes to the cluster's CIDRs over it), kubetun's port-forward through the API
// server and kubetun --manager-url all cross it; each is measured with the same clients, same run. Each profile
// is first calibrated without kubetun or the cluster (ping and a kernel iperf3 to the node itself), so that
// the emulator is shown not to be the bottleneck it measures. Writes bench/results/wan.json.
//   KUBETUN_BENCH_WAN_SECONDS (10): length of each throughput run;
//   KUBETUN_BENCH_WAN_PROFILES (all): a comma-separated list of profile ids.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sandboxConfig, sandboxDown, sandboxManagerUser, sandboxUp } from '../src/sandbox/index.js';
import type { WanProfile } from '../src/sandbox/wan/link-shaper.js';
import { sandboxWanEnds, WanLink } from '../src/sandbox/wan/wan-link.js';
import { WAN_PROFILES } from '../src/sandbox/wan/wan-profiles.js';
import { dnsTimes, httpLatency, iperfTcp, iperfUdp, latencyUnderLoad, workstation } from './bench-clients.js';
import { median, printResults, type Result } from './bench-results.js';

const KUBETUN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../bench/results/wan.json', import.meta.url));
const NAME = `ktw${process.pid % 1000}`;
const config = sandboxConfig(NAME);
const ws = workstation(config);
const SECONDS = Number(process.env.KUBETUN_BENCH_WAN_SECONDS ?? 10);
const UDP_MBIT = 100;
/** Runs of one TCP flow over a lossy profile; the median is the result. */
const LOSSY_SINGLE_FLOW_RUNS = 3;
/** The kernel iperf3 server of the calibration, in the node namespace on the node's own address. */
const CALIBRATION_PORT = 5299;
/** kubetun's DNS server address inside its TUN (the root daemon answers there). */
const KUBETUN_DNS = '198.18.255.53';

function selectedProfiles(): WanProfile[] {
  const wanted = process.env.KUBETUN_BENCH_WAN_PROFILES?.split(',').filter(Boolean);
  if (wanted === undefined) return [...WAN_PROFILES];
  const unknown = wanted.filter((id) => !WAN_PROFILES.some((p) => p.id === id));
  if (unknown.length > 0) throw new Error(`KUBETUN_BENCH_WAN_PROFILES names unknown profiles ${unknown.join(', ')}: known are ${WAN_PROFILES.map((p) => p.id).join(', ')}`);
  return WAN_PROFILES.filter((p) => wanted.includes(p.id));
}

interface Calibration {
  profile: WanProfile;
  ping: { minMs: number; avgMs: number; maxMs: number };
  /** One kernel TCP flow to the node itself, each way. */
  kernelTcpMbit: { up: number; down: number };
}

async function calibrate(profile: WanProfile): Promise<Calibration> {
  const out = await ws.run(['ping', '-q', '-n', '-c', '50', '-i', '0.02', config.link.node.ipv4]);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\//.exec(out);
  if (rtt === null) throw new Error(`ping printed: ${out}`);
  const kernel = async (reverse: boolean): Promise<number> => {
    const args = ['iperf3', '-c', config.link.node.ipv4, '-p', String(CALIBRATION_PORT), '-t', '5', '-J', ...(reverse ? ['-R'] : [])];
    const report = JSON.parse(await ws.run(args, { timeoutMs: 60_000 })) as { end: { sum_received: { bits_per_second: number } } };
    return report.end.sum_received.bits_per_second / 1e6;
  };
  return {
    profile,
    ping: { minMs: Number(rtt[1]), avgMs: Number(rtt[2]), maxMs: Number(rtt[3]) },
    kernelTcpMbit: { up: await kernel(false), down: await kernel(true) },
  };
}

type Measured = Map<string, { unit: string; value: number }>;

/**
 * Every measurement over the current path, by metric id. One that fails is said on stderr and recorded as NaN
 * (null in the JSON): one lost run must not lose the other twenty minutes of them.
 */
async function measure(profile: WanProfile, path: string, dnsServer: string): Promise<Measured> {
  const values: Measured = new Map();
  const run = async (what: string, rows: readonly (readonly [string, string])[], work: () => Promise<number[]>): Promise<void> => {
    let got: number[];
    try {
      got = await work();
    } catch (error) {
      console.error(`${path}: ${what} failed: ${(error as Error).message}`);
      got = rows.map(() => NaN);
    }
    rows.forEach(([id, unit], i) => values.set(id, { unit, value: got[i]! }));
  };
  for (const [flows, reverse, id] of [
    [1, true, 'tcp.1flow.down'],
    [1, false, 'tcp.1flow.up'],
    [8, true, 'tcp.8flow.down'],
    [8, false, 'tcp.8flow.up'],
  ] as const) {
    await run(id, [[id, 'Mbit/s']], async () => {
      // One flow over a lossy link varies by 2× from run to run (where its losses fall): the median of three.
      const repeats = flows === 1 && profile.lossPercent > 0 ? LOSSY_SINGLE_FLOW_RUNS : 1;
      const runs: number[] = [];
      for (let i = 0; i < repeats; i++) runs.push((await iperfTcp(ws, { flows, reverse, seconds: SECONDS })) * 1000);
      if (repeats > 1) console.log(`${profile.id} ${path} ${id}: ${runs.map((r) => r.toFixed(0)).join(' / ')} Mbit/s`);
      return [median(runs)];
    });
  }
  await run('udp', [[`udp.${UDP_MBIT}M.delivered`, 'Mbit/s'], [`udp.${UDP_MBIT}M.loss`, '%']], async () => {
    const udp = await iperfUdp(ws, { rateMbit: UDP_MBIT, seconds: SECONDS });
    return [udp.deliveredMbit, udp.lossPercent];
  });
  const latency = { count: 300, seconds: SECONDS };
  for (const mode of ['keepalive', 'fresh'] as const) {
    await run(`req.${mode}`, [[`req.${mode}.p50`, 'ms'], [`req.${mode}.p99`, 'ms']], async () => {
      const l = await httpLatency(ws, { mode, ...latency });
      return [l.p50Ms, l.p99Ms];
    });
  }
  await run('req.underload', [['req.underload.p50', 'ms'], ['req.underload.p99', 'ms']], async () => {
    const l = await latencyUnderLoad(ws, { ...latency, warmupMs: 2000 });
    return [l.p50Ms, l.p99Ms];
  });
  await run('dns.cold', [['dns.cold', 'ms']], async () => [(await dnsTimes(ws, dnsServer, 50)).coldMs]);
  return values;
}

/** `kubetun install --tls-secret` and a user allowed to reach the manager: what --manager-url connects with. */
async function managerUrlArgs(): Promise<string[]> {
  await ws.run(['node', KUBETUN, 'install', '--tls-secret', config.manager.tlsSecret]);
  const user = (await sandboxManagerUser(config, 'bench', true)).kubeconfig;
  return ['--manager-url', config.manager.url, '--manager-ca', config.manager.caFile, '--kubeconfig', user];
}

async function main(): Promise<void> {
  const profiles = selectedProfiles();
  await sandboxUp(NAME);
  const calibrations: Calibration[] = [];
  const results: Result[] = [];
  let link: WanLink | undefined;
  // The calibration's server: a plain iperf3 in the node namespace, outside the cluster.
  const server = spawn('ip', ['netns', 'exec', config.namespaces.node, 'iperf3', '-s', '-B', config.link.node.ipv4, '-p', String(CALIBRATION_PORT)], { stdio: 'ignore' });
  try {
    await ws.run(['node', KUBETUN, 'install']);
    const urlArgs = await managerUrlArgs();
    link = await WanLink.start(sandboxWanEnds(config), profiles[0]!);
    const direct = [...config.podCidrs, ...config.serviceCidrs].filter((c) => !c.includes(':'));
    for (const profile of profiles) {
      await link.setProfile(profile);
      const calibration = await calibrate(profile);
      calibrations.push(calibration);
      console.log(`${profile.id}: ping ${calibration.ping.avgMs} ms, kernel TCP ${calibration.kernelTcpMbit.up.toFixed(0)} / ${calibration.kernelTcpMbit.down.toFixed(0)} Mbit/s up / down`);

      for (const cidr of direct) await ws.run(['ip', 'route', 'add', cidr, 'dev', link.device]);
      const plain = await measure(profile, 'direct', config.clusterDns.ipv4);
      for (const cidr of direct) await ws.run(['ip', 'route', 'del', cidr]);

      await ws.run(['node', KUBETUN, 'connect']);
      const forwarded = await measure(profile, 'port-forward', KUBETUN_DNS);
      await ws.run(['node', KUBETUN, 'quit']);

      await ws.run(['node', KUBETUN, 'connect', ...urlArgs]);
      const byUrl = await measure(profile, '--manager-url', KUBETUN_DNS);
      await ws.run(['node', KUBETUN, 'quit']);

      const rows: Result[] = [];
      for (const [id, { unit, value }] of plain) {
        rows.push({ id: `${profile.id}.${id}`, unit, kubetun: forwarded.get(id)!.value, direct: value });
        rows.push({ id: `${profile.id}.manager_url.${id}`, unit, kubetun: byUrl.get(id)!.value, direct: value });
      }
      // Each profile's rows as soon as they are measured: a later failure keeps them.
      printResults(rows);
      results.push(...rows);
      writeFileSync(RESULTS, JSON.stringify({ seconds: SECONDS, calibrations, link: await link.stats(), results }, null, 2) + '\n');
    }
  } finally {
    server.kill();
    await link?.close();
    await sandboxDown(NAME);
  }
}

main().catch((error: Error) => {
  console.error(`kubetun WAN bench: ${error.message}`);
  process.exit(1);
});
