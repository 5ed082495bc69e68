// `sandbox status`: what exists of a sandbox, whether its processes live and whether their ports answer.

import { existingNetns } from './network.js';
import { isAlive } from './processes.js';
import type { ProbeTarget } from './readiness-probe.js';
import { probeTargets, processTarget } from './readiness.js';
import { requireRoot } from './host-commands.js';
import {
  DEFAULT_SANDBOX_NAME,
  podsOf,
  sandboxConfig,
  sandboxNamespaces,
  type DualStackAddress,
  type SandboxConfig,
  type SandboxPod,
  type SandboxServicePort,
} from './sandbox-config.js';
import { readState } from './state.js';
import { UPSTREAM_DNS_ID } from './workloads.js';

const STATUS_PROBE_TIMEOUT_MS = 1_000;

export type PodPhase = 'running' | 'starting' | 'failed' | 'absent';

export interface PodStatus {
  name: string;
  namespace: string;
  deployment: string;
  netns: string;
  ipv4: string;
  ipv6: string;
  /** running: alive and its port answers; starting: alive, port not answering yet; failed: exited; absent: never started. */
  phase: PodPhase;
  pid: number | null;
  logFile: string | null;
}

export interface ServiceStatus {
  name: string;
  namespace: string;
  fqdn: string;
  clusterIPs: DualStackAddress;
  ports: readonly SandboxServicePort[];
  /** Names of the pods behind it. */
  endpoints: string[];
}

export interface SandboxStatus {
  name: string;
  /** up: everything runs and answers; degraded: something is missing or failed (see problems); down: nothing exists. */
  state: 'up' | 'degraded' | 'down';
  stateDir: string;
  managerUrl: string;
  namespaces: { name: string; exists: boolean }[];
  upstreamDns: { addresses: DualStackAddress; phase: PodPhase; pid: number | null };
  pods: PodStatus[];
  services: ServiceStatus[];
  problems: string[];
}

/** What exists of the sandbox, and whether its servers run and answer. */
export async function sandboxStatus(name: string = DEFAULT_SANDBOX_NAME): Promise<SandboxStatus> {
  const config = sandboxConfig(name);
  requireRoot('status');
  return collectStatus(config);
}

export async function collectStatus(config: SandboxConfig): Promise<SandboxStatus> {
  const state = readState(config);
  const existing = existingNetns();
  const namespaces = sandboxNamespaces(config).map((n) => ({ name: n, exists: existing.has(n) }));
  const processes = state?.processes ?? {};
  const alive = new Set(Object.values(processes).filter((r) => isAlive(r)).map((r) => r.id));
  const targets = new Map<string, ProbeTarget>();
  if (existing.has(config.namespaces.node)) {
    // Records of pods this version no longer has are left out: nothing says where they would answer.
    const known = new Set([UPSTREAM_DNS_ID, ...config.pods.map((p) => p.name)]);
    for (const id of alive) if (known.has(id)) targets.set(id, processTarget(config, id));
  }
  const answered = await probeTargets(config, targets, STATUS_PROBE_TIMEOUT_MS);
  const phaseOf = (id: string): PodPhase => {
    if (processes[id] === undefined) return 'absent';
    if (!alive.has(id)) return 'failed';
    return answered.has(id) ? 'running' : 'starting';
  };
  const pods: PodStatus[] = config.pods.map((pod) => ({
    name: pod.name,
    namespace: pod.namespace,
    deployment: pod.deployment,
    netns: pod.netns,
    ipv4: pod.ipv4,
    ipv6: pod.ipv6,
    phase: existing.has(pod.netns) ? phaseOf(pod.name) : 'absent',
    pid: processes[pod.name]?.pid ?? null,
    logFile: processes[pod.name]?.logFile ?? null,
  }));
  const upstreamPhase = existing.has(config.namespaces.node) ? phaseOf(UPSTREAM_DNS_ID) : 'absent';
  const problems: string[] = [];
  for (const ns of namespaces) if (!ns.exists) problems.push(`namespace ${ns.name} is missing`);
  if (upstreamPhase !== 'running') problems.push(`the upstream resolver is ${upstreamPhase}`);
  for (const pod of pods) {
    if (pod.phase !== 'running') problems.push(`pod ${pod.namespace}/${pod.name} is ${pod.phase}${pod.logFile === null ? '' : ` (log: ${pod.logFile})`}`);
  }
  const nothing = state === null && namespaces.every((n) => !n.exists);
  return {
    name: config.name,
    state: nothing ? 'down' : problems.length === 0 ? 'up' : 'degraded',
    stateDir: config.stateDir,
    managerUrl: config.manager.url,
    namespaces,
    upstreamDns: { addresses: config.upstreamDns.addresses, phase: upstreamPhase, pid: processes[UPSTREAM_DNS_ID]?.pid ?? null },
    pods,
    services: config.services.map((s) => ({
      name: s.name,
      namespace: s.namespace,
      fqdn: s.fqdn,
      clusterIPs: s.clusterIPs,
      ports: s.ports,
      endpoints: podsOf(config, s.deployment, s.namespace).map((p: SandboxPod) => p.name),
    })),
    problems: nothing ? [] : problems,
  };
}
