// The sandbox cluster's life cycle: up (create or repair) and down (also after a crash). Every step is
// idempotent: `up` looks at what exists and builds only what is missing or broken.

import { createClient } from '@connectrpc/connect';
import { existsSync, mkdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { RootDaemon, UserDaemon } from '../gen/kubetun/daemon/v1/daemon_pb.js';
import { rootDaemonSocket, runDir, userDaemonSocket } from '../local-paths.js';
import { socketAnswers, unixRpcTransport } from '../rpc/unix-socket-rpc.js';
import { removeNetnsFolder, writeNetnsResolvConf } from './etc-netns.js';
import { clusterDnsConfig, podResolvConf, upstreamDnsConfig, upstreamResolvConf } from './dns.js';
import { checkBinaries, requireRoot } from './host-commands.js';
import { checkNoRouteOverlap, readHostRoutes } from './host-routes.js';
import { buildBase, buildPods, deleteNamespaces, existingNetns, inspectNetwork } from './network.js';
import { collectStatus, type SandboxStatus } from './sandbox-status.js';
import { describePid, isAlive, pidsInNetns, startProcess, stopProcess, type ProcessRecord } from './processes.js';
import { probeTargets, processTarget } from './readiness.js';
import {
  DEFAULT_SANDBOX_NAME,
  SANDBOX_STATE_ROOT,
  sandboxConfig,
  sandboxNamespaces,
  sandboxRanges,
  type SandboxConfig,
} from './sandbox-config.js';
import { SandboxError } from './sandbox-errors.js';
import { servicesRuleset, applyServices } from './services.js';
import { acquireLock, emptyState, readState, removeStateDir, writeState, type SandboxState } from './state.js';
import {
  clusterCidrsFile,
  clusterDnsConfigPath,
  defaultManagerCommand,
  defaultWorkloadPaths,
  podProcessSpec,
  upstreamDnsConfigPath,
  upstreamDnsProcessSpec,
  writeClusterCidrs,
  type ProcessSpec,
} from './workloads.js';

const DEFAULT_READINESS_TIMEOUT_MS = 20_000;
// The manager is probed last, with what is left of the timeout but at least this.
const MIN_MANAGER_PROBE_MS = 1_000;

export interface SandboxUpOptions {
  /** How long to wait for every pod's port to answer (20 s by default). */
  readinessTimeoutMs?: number;
  /**
   * The traffic manager's command line; by default `node <kubetun>/dist/src/cli/main.js traffic-manager …` with
   * the sandbox's CIDRs and DNS as flags. null runs no manager (its pod stays empty).
   */
  managerCommand?: readonly string[] | null;
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
  /** Problems that did not stop the sandbox (e.g. the traffic manager exited). */
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
  const warnings: string[] = [];
  const act = (line: string): void => {
    actions.push(line);
    log(line);
  };
  mkdirSync(`${config.stateDir}/logs`, { recursive: true });

  const health = await inspectNetwork(config);
  const rebuildPods = health.base ? config.pods.filter((p) => !health.healthyPods.has(p.name)) : [...config.pods];
  // Namespaces are recorded before they exist, so that `down` finds them even if this run dies halfway.
  state.namespaces = union(state.namespaces, sandboxNamespaces(config));
  writeState(config, state);

  // A process whose namespace is rebuilt would keep the old, unreachable one alive: stop it first.
  const doomed = health.base ? rebuildPods.map((p) => p.name) : Object.keys(state.processes);
  const records = doomed.map((id) => state.processes[id]).filter((r) => r !== undefined);
  const stopped = await Promise.all(records.map((r) => stopProcess(r)));
  records.forEach((r, i) => {
    if (stopped[i]) act(`stopped ${r.id} (pid ${r.pid}): its network is rebuilt`);
  });
  if (!health.base) {
    await buildBase(config);
    act(`${health.existing.size > 0 ? 'rebuilt' : 'created'} namespaces ${config.namespaces.workstation} and ${config.namespaces.node} with their link and the pod bridge`);
  }
  if (rebuildPods.length > 0) {
    await buildPods(config, rebuildPods);
    const rebuilt = rebuildPods.some((p) => health.existing.has(p.netns));
    act(`${rebuilt ? 'rebuilt' : 'created'} the network of ${rebuildPods.length === config.pods.length ? 'every pod' : rebuildPods.map((p) => p.name).join(', ')}`);
  }

  writeFiles(config, state);
  if (!existsSync(clusterCidrsFile(config))) writeClusterCidrs(config, { podCidrs: config.podCidrs, serviceCidrs: config.serviceCidrs });
  await applyServices(config);

  const paths = {
    ...defaultWorkloadPaths(),
    managerCommand: options.managerCommand === undefined ? defaultManagerCommand(config) : options.managerCommand,
  };
  const specs: ProcessSpec[] = [upstreamDnsProcessSpec(config)];
  for (const pod of config.pods) {
    const spec = podProcessSpec(config, pod, paths);
    if (spec !== null) specs.push(spec);
  }
  for (const spec of specs) {
    const record = state.processes[spec.id];
    if (record !== undefined && isAlive(record)) continue;
    state.processes[spec.id] = await startProcess(spec);
    writeState(config, state);
    act(`${record === undefined ? 'started' : 'restarted'} ${spec.id} in ${spec.netns} (pid ${state.processes[spec.id]!.pid})`);
  }

  await waitForReadiness(config, state, specs, options.readinessTimeoutMs ?? DEFAULT_READINESS_TIMEOUT_MS, warnings, log);
  const alreadyUp = previous !== null && actions.length === 0;
  const repaired = previous !== null && !alreadyUp;
  return { config, alreadyUp, repaired, actions, warnings, status: await collectStatus(config) };
}

function writeFiles(config: SandboxConfig, state: SandboxState): void {
  const { workstation, node } = config.namespaces;
  const written = [writeNetnsResolvConf(workstation, upstreamResolvConf(config)), writeNetnsResolvConf(node, upstreamResolvConf(config))];
  for (const pod of config.pods) {
    // The cluster DNS itself resolves through the node's resolver, as CoreDNS's pod (dnsPolicy Default) does.
    const content = pod.kind === 'cluster-dns' ? upstreamResolvConf(config) : podResolvConf(config, pod.namespace);
    written.push(writeNetnsResolvConf(pod.netns, content));
  }
  state.etcNetnsDirs = union(state.etcNetnsDirs, written);
  writeState(config, state);
  const dnsPod = config.pods.find((p) => p.kind === 'cluster-dns');
  if (dnsPod !== undefined) writeFileSync(clusterDnsConfigPath(config), clusterDnsConfig(config, dnsPod));
  writeFileSync(upstreamDnsConfigPath(config), upstreamDnsConfig(config));
  writeFileSync(`${config.stateDir}/services.nft`, servicesRuleset(config));
}

async function waitForReadiness(
  config: SandboxConfig,
  state: SandboxState,
  specs: readonly ProcessSpec[],
  timeoutMs: number,
  warnings: string[],
  log: (line: string) => void,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const essential = new Map(specs.filter((s) => s.essential).map((s) => [s.id, processTarget(config, s.id, state.processes[s.id])]));
  const ready = await probeTargets(config, essential, timeoutMs);
  const notReady = [...essential.keys()].filter((id) => !ready.has(id));
  if (notReady.length > 0) {
    const details = notReady.map((id) => {
      const record = state.processes[id];
      const how = record !== undefined && !isAlive(record) ? 'exited' : 'does not answer';
      return `${id} ${how} (log: ${record?.logFile ?? 'none'})`;
    });
    throw new SandboxError(
      'NOT_READY',
      `sandbox ${config.name} is not ready after ${Math.round(timeoutMs / 1000)} s: ${details.join('; ')}. ` +
        `Read the logs, then run kubetun sandbox up --name ${config.name} again (it repairs) or kubetun sandbox down.`,
    );
  }
  for (const spec of specs.filter((s) => !s.essential)) {
    const record = state.processes[spec.id]!;
    const left = Math.max(deadline - Date.now(), MIN_MANAGER_PROBE_MS);
    const answered = isAlive(record) && (await probeTargets(config, new Map([[spec.id, processTarget(config, spec.id, record)]]), left)).has(spec.id);
    if (answered) continue;
    const warning = isAlive(record)
      ? `${spec.id} does not answer on port ${processTarget(config, spec.id).port} yet (log: ${record.logFile})`
      : `${spec.id} exited: the traffic manager is not running; the rest of the sandbox is up (log: ${record.logFile})`;
    warnings.push(warning);
    log(`warning: ${warning}`);
  }
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
  const records: ProcessRecord[] = Object.values(state?.processes ?? {});
  const stopped = await Promise.all(records.map((r) => stopProcess(r)));
  result.stoppedProcesses.push(...records.filter((_, i) => stopped[i]).map((r) => `${r.id} (pid ${r.pid})`));
  const existing = existingNetns();
  const namespaces = union(state?.namespaces ?? [], sandboxNamespaces(config)).filter((n) => existing.has(n));
  for (const ns of namespaces) {
    for (const pid of await pidsInNetns(ns)) {
      result.warnings.push(
        `process ${describePid(pid)} still runs in namespace ${ns}, which is now deleted: the sandbox did not start it, so it was left running`,
      );
    }
  }
  result.deletedNamespaces = await deleteNamespaces(namespaces);
  const folders = union(
    (state?.etcNetnsDirs ?? []).map((d) => d.replace(/^.*\//, '')),
    sandboxNamespaces(config),
  );
  for (const ns of folders) if (removeNetnsFolder(ns)) result.removedFiles.push(`/etc/netns/${ns}`);
  if (existsSync(config.stateDir)) result.removedFiles.push(config.stateDir);
  removeStateDir(config);
  const daemonsDir = runDir({ KUBETUN_SANDBOX: config.name });
  if (existsSync(daemonsDir)) {
    rmSync(daemonsDir, { recursive: true, force: true });
    result.removedFiles.push(daemonsDir);
  }
  result.found = state !== null || result.deletedNamespaces.length > 0 || result.removedFiles.length > 0;
  return result;
}

/**
 * kubetun's own daemons in the workstation were not started by the sandbox, but they are ours: ask them to quit
 * (restoring what they changed) before their namespace goes away.
 */
async function quitKubetun(name: string, result: SandboxDownResult): Promise<void> {
  const dir = runDir({ KUBETUN_SANDBOX: name });
  for (const [service, socket] of [
    [UserDaemon, userDaemonSocket(dir)],
    [RootDaemon, rootDaemonSocket(dir)],
  ] as const) {
    if (!(await socketAnswers(socket))) continue;
    try {
      await createClient(service, unixRpcTransport(socket)).quit({});
      result.stoppedProcesses.push(`kubetun ${service.typeName} (asked to quit)`);
    } catch (error) {
      result.warnings.push(`kubetun's daemon at ${socket} did not quit: ${(error as Error).message}`);
    }
  }
}
