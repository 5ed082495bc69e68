// CPU time per hop of the tunnel's path in a sandbox: kubetun's root daemon, user daemon and traffic manager, and
// the cluster's own share of the port-forward (the API server relays it, the manager pod's kubelet dials it).
// Read from /proc/PID/stat (utime + stime, all threads), before and after a measurement.
//
// And the profiling switch (KUBETUN_BENCH_CPU_PROF=<dir>): Node 20 refuses --cpu-prof in NODE_OPTIONS, and the
// daemons and the manager are started by kubetun and the kubelet with fixed command lines, so NODE_OPTIONS
// carries `--import cpu-prof-preload.js` instead, which runs the same V8 profiler and writes a .cpuprofile on exit.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MANAGER_NAME } from '../src/k8s/manager-manifests.js';
import { podsOf, readCluster, sandboxApi, type SandboxConfig } from '../src/sandbox/index.js';
import { readControlPlane } from '../src/sandbox/control-plane/control-plane.js';
import { pidsInNetns } from '../src/sandbox/processes.js';
import { readState } from '../src/sandbox/state.js';
import { kubeletId } from '../src/sandbox/workloads.js';

export const HOPS = ['rootd', 'userd', 'manager', 'kubelet', 'apiserver'] as const;
export type Hop = (typeof HOPS)[number];
export type HopValues = Record<Hop, number>;

const MICROS_PER_TICK = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU time `pid` used so far (user + system, all its threads), in µs. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields from 3 on, after the command name (in parentheses, which may hold anything); utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * MICROS_PER_TICK;
}

/** The process in the workstation namespace whose command line has `marker` (a kubetun daemon's subcommand). */
export async function workstationDaemonPid(config: SandboxConfig, marker: 'root-daemon' | 'user-daemon'): Promise<number> {
  for (const pid of await pidsInNetns(config.namespaces.workstation)) {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    // `root-daemon --daemonize` is the starter, which exits once the daemon answers.
    if (argv.includes(marker) && !argv.includes('--daemonize')) return pid;
  }
  throw new Error(`the ${marker} is not running in the workstation`);
}

/** The traffic manager's (first ready) pod: its process and node. */
export async function managerPod(config: SandboxConfig): Promise<{ name: string; pid: number; node: string }> {
  const pod = podsOf((await readCluster(config)).pods, MANAGER_NAME, config.manager.namespace)[0];
  if (pod?.pid == null) throw new Error('the traffic manager is not running');
  return { name: pod.name, pid: pod.pid, node: pod.node };
}

/** The processes of each hop, while `kubetun connect` runs. */
export async function hopPids(config: SandboxConfig): Promise<HopValues> {
  const manager = await managerPod(config);
  const node = config.nodes.find((n) => n.name === manager.node);
  const kubelet = node === undefined ? undefined : readState(config)?.processes[kubeletId(node)];
  const apiserver = readControlPlane(config.controlPlane.stateDir)?.processes.find((p) => p.id === 'kube-apiserver');
  if (kubelet === undefined || apiserver === undefined) throw new Error("the sandbox's state names no kubelet or API server");
  return {
    rootd: await workstationDaemonPid(config, 'root-daemon'),
    userd: await workstationDaemonPid(config, 'user-daemon'),
    manager: manager.pid,
    kubelet: kubelet.pid,
    apiserver: apiserver.pid,
  };
}

/** Runs `work`; returns its result and the CPU µs each hop's process used meanwhile. */
export async function withCpu<T>(pids: HopValues, work: () => Promise<T>): Promise<{ result: T; cpuUs: HopValues }> {
  const before = HOPS.map((hop) => cpuMicros(pids[hop]));
  const result = await work();
  const after = HOPS.map((hop) => cpuMicros(pids[hop]));
  return { result, cpuUs: Object.fromEntries(HOPS.map((hop, i) => [hop, after[i]! - before[i]!])) as HopValues };
}

/** The folder asked for with KUBETUN_BENCH_CPU_PROF, or undefined when the bench does not profile. */
const PROFILE_DIR = process.env.KUBETUN_BENCH_CPU_PROF || undefined;

const PRELOAD = fileURLToPath(new URL('./cpu-prof-preload.js', import.meta.url));

/**
 * The environment that makes a kubetun process profile itself into `dir` (the preload reads the folder from
 * KUBETUN_BENCH_CPU_PROF). The folder is made writable to all: the manager runs as a non-root user.
 */
export function profileEnv(dir: string): Record<string, string> {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  return { NODE_OPTIONS: `--import=${PRELOAD}`, KUBETUN_BENCH_CPU_PROF: dir };
}

interface Deployment {
  spec: { template: { spec: { containers: { env?: { name: string }[] }[] } } };
}

/**
 * Makes the traffic manager's Deployment profile into `dir` (its container's environment, as one would in a real
 * cluster) and waits until the new pod runs alone. `kubetun install` overwrites it: call this after each install.
 */
export async function profileManager(config: SandboxConfig, dir: string): Promise<void> {
  const path = `/apis/apps/v1/namespaces/${config.manager.namespace}/deployments/${MANAGER_NAME}`;
  const [got] = await sandboxApi(config, [{ method: 'GET', path }]);
  if (got?.status !== 200) throw new Error(`cannot read the manager's Deployment: ${got?.body.slice(0, 300)}`);
  const deployment = JSON.parse(got.body) as Deployment;
  const container = deployment.spec.template.spec.containers[0]!;
  const added = Object.entries(profileEnv(dir)).map(([name, value]) => ({ name, value }));
  container.env = [...(container.env ?? []).filter((e) => !added.some((a) => a.name === e.name)), ...added];
  const previous = await managerPod(config);
  const [put] = await sandboxApi(config, [{ method: 'PUT', path, body: deployment }]);
  if (put?.status !== 200) throw new Error(`cannot update the manager's Deployment: ${put?.body.slice(0, 300)}`);
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const pods = (await readCluster(config)).pods.filter((p) => p.app === MANAGER_NAME && p.namespace === config.manager.namespace);
    if (pods.length === 1 && pods[0]!.ready && pods[0]!.name !== previous.name) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('the profiled traffic manager did not replace the old one within 120 s');
}

/** Profiles go to `<KUBETUN_BENCH_CPU_PROF>/<run>/<command>.<pid>.cpuprofile`: the folder of one run, if profiling. */
export function runProfileDir(run: string): string | undefined {
  return PROFILE_DIR === undefined ? undefined : join(PROFILE_DIR, run);
}
