// The sandbox cluster's life cycle: up (create or repair) and down (also after a crash). Every step is
// idempotent: `up` looks at what exists and builds only what is missing or broken.

import { createClient } from '@connectrpc/connect';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { RootDaemon, UserDaemon } from '../gen/kubetun/daemon/v1/daemon_pb.js';
import { lstatOrUndefined, rootDaemonSocket, rootRunDir, rootStateDir, sandboxUserRunDirs, userDaemonSocket, userRunDirPath } from '../local-paths.js';
import { socketAnswers, unixRpcTransport } from '../rpc/unix-socket-rpc.js';
import { applyWorkloads, waitForWorkloads } from './cluster-api.js';
import { ensureManagerTls } from './manager-tls.js';
import { readControlPlane, requireBinaries, startControlPlane, stopControlPlane, type ControlPlane } from './control-plane/index.js';
import { ETC_NETNS, removeNetnsFolder, writeNetnsEtcFile } from './etc-netns.js';
import { upstreamDnsConfig, upstreamResolvConf } from './dns.js';
import { checkBinaries, requireRoot } from './host-commands.js';
import { checkNoRouteOverlap, readHostRoutes } from './host-routes.js';
import { writeImageMap } from './image-map.js';
import { cleanupKubelet } from './kubelet/records.js';
import { buildBase, deleteNamespaces, existingNetns, inspectNetwork, podNetnsOf, repairServiceRoutes } from './network.js';
import { collectStatus, type SandboxStatus } from './sandbox-status.js';
import { describePid, isAlive, pidsInNetns, startProcess, stopProcess, type ProcessRecord } from './processes.js';
import { DEFAULT_SANDBOX_NAME, SANDBOX_STATE_ROOT, sandboxConfig, sandboxNamespaces, sandboxRanges, type SandboxConfig } from './sandbox-config.js';
import { acquireLock, emptyState, readState, removeStateDir, writeState, type SandboxState } from './state.js';
import {
  imageMapPath,
  KUBE_PROXY_ID,
  kubeletId,
  kubeletProcessSpec,
  kubeletStateDir,
  kubeProxyProcessSpec,
  upstreamDnsConfigPath,
  UPSTREAM_DNS_ID,
  upstreamDnsProcessSpec,
  type ProcessSpec,
} from './workloads.js';

const DEFAULT_READINESS_TIMEOUT_MS = 120_000;
// A kubelet stops its pods and removes their namespaces on SIGTERM: give it time for that.
const KUBELET_STOP_GRACE_MS = 20_000;

export interface SandboxUpOptions {
  /** How long to wait for the nodes and every Deployment's pods to be ready (120 s by default). */
  readinessTimeoutMs?: number;
  /** Progress lines, e.g. console.log. */
  log?: (line: string) => void;
}

export interface SandboxUpResult {
  config: SandboxConfig;
  /** Everything was in place already: nothing was created or started. */
  alreadyUp: boolean;
  /** It existed before (in part) and this run put back what was missing. */
  repaired: boolean;
  /** What this run created, repaired or started, in order. */
  actions: string[];
  /** Problems that did not stop the sandbox. */
  warnings: string[];
  status: SandboxStatus;
}

export interface SandboxDownResult {
  name: string;
  /** Whether there was anything to remove. */
  found: boolean;
  stoppedProcesses: string[];
  deletedNamespaces: string[];
  removedFiles: string[];
  warnings: string[];
}

function union<T>(...lists: readonly (readonly T[])[]): T[] {
  return [...new Set(lists.flat())];
}

/** Creates the sandbox, or repairs what is missing of it, and waits until its servers answer. */
export async function sandboxUp(name: string = DEFAULT_SANDBOX_NAME, options: SandboxUpOptions = {}): Promise<SandboxUpResult> {
  const config = sandboxConfig(name);
  requireRoot('up');
  checkBinaries();
  requireBinaries();
  checkNoRouteOverlap(sandboxRanges(config), await readHostRoutes());
  const release = await acquireLock(config);
  try {
    return await bringUp(config, options);
  } finally {
    release();
  }
}

async function bringUp(config: SandboxConfig, options: SandboxUpOptions): Promise<SandboxUpResult> {
  const log = options.log ?? ((): void => {});
  const previous = readState(config);
  const state: SandboxState = previous ?? emptyState(config);
  const actions: string[] = [];
  const act = (line: string): void => {
    actions.push(line);
    log(line);
  };
  mkdirSync(`${config.stateDir}/logs`, { recursive: true });

  const health = await inspectNetwork(config);
  // Namespaces are recorded before they exist, so that `down` finds them even if this run dies halfway.
  state.namespaces = union(state.namespaces, sandboxNamespaces(config));
  writeState(config, state);
  if (!health.base) {
    // Processes in a namespace that is rebuilt would keep the old, unreachable one alive: stop them first.
    const stopped = await stopEverything(config, state);
    for (const line of stopped) act(`stopped ${line}: its network is rebuilt`);
    await buildBase(config);
    act(`${health.existing.size > 0 ? 'rebuilt' : 'created'} namespaces ${config.namespaces.workstation} and ${config.namespaces.node} with their link and the pod bridge`);
  } else if (!health.serviceRoutes) {
    await repairServiceRoutes(config);
    act(`restored the routes of ${config.namespaces.node} to the service CIDRs`);
  }
  writeFiles(config, state);

  await ensureProcess(config, state, upstreamDnsProcessSpec(config), act);
  const plane = await ensureControlPlane(config, act);
  copyFileSync(plane.kubeconfig, config.workstationKubeconfig);
  chmodSync(config.workstationKubeconfig, 0o600);
  for (const spec of [kubeProxyProcessSpec(config), ...config.nodes.map((node) => kubeletProcessSpec(config, node))]) {
    await ensureProcess(config, state, spec, act);
  }
  for (const created of await applyWorkloads(config, plane.admin)) act(`created ${created}`);
  for (const created of await ensureManagerTls(config, plane.admin)) act(`created ${created}`);
  const readinessMs = options.readinessTimeoutMs ?? DEFAULT_READINESS_TIMEOUT_MS;
  const deadline = Date.now() + readinessMs;
  await waitForWorkloads(config, plane.admin, readinessMs);
  const alreadyUp = previous !== null && actions.length === 0;
  const repaired = previous !== null && !alreadyUp;
  // A kubelet restarted by this run reports its pods as restarting only once it has found them, which the wait above
  // may precede (it then saw their old, ready status): a repair waits, within the same time, for the status to settle.
  let status = await collectStatus(config);
  while (repaired && status.state !== 'up' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    status = await collectStatus(config);
  }
  return { config, alreadyUp, repaired, actions, warnings: [], status };
}

/** Starts the process unless the recorded one still runs. */
async function ensureProcess(config: SandboxConfig, state: SandboxState, spec: ProcessSpec, act: (line: string) => void): Promise<void> {
  const record = state.processes[spec.id];
  if (record !== undefined && isAlive(record)) return;
  state.processes[spec.id] = await startProcess(spec);
  writeState(config, state);
  act(`${record === undefined ? 'started' : 'restarted'} ${spec.id} in ${spec.netns} (pid ${state.processes[spec.id]!.pid})`);
}

async function ensureControlPlane(config: SandboxConfig, act: (line: string) => void): Promise<ControlPlane> {
  const recorded = readControlPlane(config.controlPlane.stateDir);
  if (recorded !== null && recorded.processes.every(isAlive)) return recorded;
  if (recorded !== null) await stopControlPlane(recorded);
  const plane = await startControlPlane({
    netns: config.namespaces.node,
    address: config.controlPlane.address,
    securePort: config.controlPlane.port,
    serviceClusterIpRange: config.controlPlane.serviceClusterIpRange,
    stateDir: config.controlPlane.stateDir,
  });
  act(`${recorded === null ? 'started' : 'restarted'} the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) at ${plane.server}`);
  return plane;
}

function writeFiles(config: SandboxConfig, state: SandboxState): void {
  const { workstation, node } = config.namespaces;
  const written = [workstation, node].map((netns) => writeNetnsEtcFile(netns, 'resolv.conf', upstreamResolvConf(config)));
  state.etcNetnsDirs = union(state.etcNetnsDirs, written);
  writeState(config, state);
  writeFileSync(upstreamDnsConfigPath(config), upstreamDnsConfig(config));
  writeImageMap(imageMapPath(config));
}

/**
 * Stops what the sandbox runs, in dependency order: the kube-proxy and the kubelets (which stop their pods), what
 * a crashed kubelet left, the control plane, the upstream resolver. Returns what it stopped.
 */
async function stopEverything(config: SandboxConfig, state: SandboxState | null): Promise<string[]> {
  const stopped: string[] = [];
  const records = state?.processes ?? {};
  const stop = async (record: ProcessRecord | undefined, graceMs?: number): Promise<void> => {
    if (record !== undefined && (await stopProcess(record, graceMs))) stopped.push(`${record.id} (pid ${record.pid})`);
  };
  await Promise.all([stop(records[KUBE_PROXY_ID]), ...config.nodes.map((node) => stop(records[kubeletId(node)], KUBELET_STOP_GRACE_MS))]);
  for (const node of config.nodes) await cleanupKubelet(kubeletStateDir(config, node));
  const plane = readControlPlane(config.controlPlane.stateDir);
  if (plane !== null) {
    const running = plane.processes.filter(isAlive);
    await stopControlPlane(plane);
    stopped.push(...running.map((r) => `${r.id} (pid ${r.pid})`));
  }
  await stop(records[UPSTREAM_DNS_ID]);
  return stopped;
}

/** Removes everything the sandbox created: its processes (those recorded only), namespaces, files. */
export async function sandboxDown(name: string = DEFAULT_SANDBOX_NAME): Promise<SandboxDownResult> {
  const config = sandboxConfig(name);
  requireRoot('down');
  const release = await acquireLock(config);
  try {
    return await tearDown(config);
  } finally {
    release();
    try {
      rmdirSync(SANDBOX_STATE_ROOT);
    } catch {
      // other sandboxes (or their locks) are still there
    }
  }
}

async function tearDown(config: SandboxConfig): Promise<SandboxDownResult> {
  const state = readState(config);
  const result: SandboxDownResult = {
    name: config.name,
    found: false,
    stoppedProcesses: [],
    deletedNamespaces: [],
    removedFiles: [],
    warnings: [],
  };
  await quitKubetun(config.name, result);
  result.stoppedProcesses.push(...(await stopEverything(config, state)));
  const existing = existingNetns();
  const namespaces = union(state?.namespaces ?? [], sandboxNamespaces(config), podNetnsOf(config)).filter((n) => existing.has(n));
  for (const ns of namespaces) {
    for (const pid of await pidsInNetns(ns)) {
      result.warnings.push(
        `process ${describePid(pid)} still runs in namespace ${ns}, which is now deleted: the sandbox did not start it, so it was left running`,
      );
    }
  }
  result.deletedNamespaces = await deleteNamespaces(namespaces);
  const podFolders = existsSync(ETC_NETNS) ? readdirSync(ETC_NETNS).filter((n) => n.startsWith(config.podNetnsPrefix)) : [];
  const folders = union(
    (state?.etcNetnsDirs ?? []).map((d) => d.replace(/^.*\//, '')),
    sandboxNamespaces(config),
    podFolders,
  );
  for (const ns of folders) if (removeNetnsFolder(ns)) result.removedFiles.push(`${ETC_NETNS}/${ns}`);
  if (existsSync(config.stateDir)) result.removedFiles.push(config.stateDir);
  removeStateDir(config);
  // The root daemon's folders (its state too: the workstation's resolv.conf goes with its namespace) and root's own
  // user daemon folder go; another user's belongs to that user, who keeps it (its sockets are gone), and root does
  // not delete inside a folder someone else controls.
  const ownUserDir = userRunDirPath({ ...process.env, KUBETUN_RUN_DIR: undefined, KUBETUN_SANDBOX: config.name });
  for (const dir of [rootRunDir(config.name), rootStateDir(config.name), ownUserDir]) {
    if (lstatOrUndefined(dir)?.uid !== 0) continue;
    rmSync(dir, { recursive: true, force: true });
    result.removedFiles.push(dir);
  }
  result.found = state !== null || result.deletedNamespaces.length > 0 || result.removedFiles.length > 0;
  return result;
}

/**
 * kubetun's own daemons in the workstation were not started by the sandbox, but they are ours: ask them to quit
 * (restoring what they changed) before their namespace goes away.
 */
async function quitKubetun(name: string, result: SandboxDownResult): Promise<void> {
  const daemons = [
    ...sandboxUserRunDirs(name).map((dir) => [UserDaemon, userDaemonSocket(dir)] as const),
    [RootDaemon, rootDaemonSocket(rootRunDir(name))] as const,
  ];
  for (const [service, socket] of daemons) {
    if (!(await socketAnswers(socket))) continue;
    try {
      await createClient(service, unixRpcTransport(socket)).quit({});
      result.stoppedProcesses.push(`kubetun ${service.typeName} at ${socket} (asked to quit)`);
    } catch (error) {
      result.warnings.push(`kubetun's daemon at ${socket} did not quit: ${(error as Error).message}`);
    }
  }
}
