// `sandbox status`: what exists of a sandbox, whether its own processes live, and its nodes and pods as its
// API server reports them.

import { readCluster, type ClusterNode, type ClusterPod } from './cluster-api.js';
import { readControlPlane } from './control-plane/index.js';
import { requireRoot } from './host-commands.js';
import { existingNetns } from './network.js';
import { isAlive } from './processes.js';
import {
  DEFAULT_SANDBOX_NAME,
  sandboxConfig,
  sandboxNamespaces,
  type DualStackAddress,
  type SandboxConfig,
  type SandboxServicePort,
} from './sandbox-config.js';
import { readState } from './state.js';
import { KUBE_PROXY_ID, kubeletId, UPSTREAM_DNS_ID } from './workloads.js';

export interface ProcessStatus {
  id: string;
  running: boolean;
  pid: number | null;
  logFile: string | null;
}

export interface ServiceStatus {
  name: string;
  namespace: string;
  fqdn: string;
  clusterIPs: DualStackAddress;
  ports: readonly SandboxServicePort[];
}

export interface SandboxStatus {
  name: string;
  /** up: everything runs and is ready; degraded: something is missing or failed (see problems); down: nothing exists. */
  state: 'up' | 'degraded' | 'down';
  stateDir: string;
  /** The API server, and the workstation's kubeconfig for it. */
  server: string;
  kubeconfig: string;
  namespaces: { name: string; exists: boolean }[];
  /** The upstream resolver, the control plane's components, the kube-proxy and the kubelets. */
  processes: ProcessStatus[];
  nodes: ClusterNode[];
  pods: ClusterPod[];
  services: ServiceStatus[];
  problems: string[];
}

/** What exists of the sandbox, and whether it runs. */
export async function sandboxStatus(name: string = DEFAULT_SANDBOX_NAME): Promise<SandboxStatus> {
  const config = sandboxConfig(name);
  requireRoot('status');
  return collectStatus(config);
}

export async function collectStatus(config: SandboxConfig): Promise<SandboxStatus> {
  const state = readState(config);
  const existing = existingNetns();
  const namespaces = sandboxNamespaces(config).map((n) => ({ name: n, exists: existing.has(n) }));
  const plane = readControlPlane(config.controlPlane.stateDir);
  const processes: ProcessStatus[] = [];
  for (const id of [UPSTREAM_DNS_ID, KUBE_PROXY_ID, ...config.nodes.map(kubeletId)]) {
    const record = state?.processes[id];
    processes.push({ id, running: record !== undefined && isAlive(record), pid: record?.pid ?? null, logFile: record?.logFile ?? null });
  }
  for (const record of plane?.processes ?? []) processes.push({ id: record.id, running: isAlive(record), pid: record.pid, logFile: record.logFile });
  const problems: string[] = [];
  for (const ns of namespaces) if (!ns.exists) problems.push(`namespace ${ns.name} is missing`);
  for (const p of processes) if (!p.running) problems.push(`${p.id} is not running${p.logFile === null ? '' : ` (log: ${p.logFile})`}`);
  if (plane === null) problems.push('the control plane is not running');
  let cluster: { nodes: ClusterNode[]; pods: ClusterPod[] } = { nodes: [], pods: [] };
  if (plane !== null && plane.processes.every(isAlive) && existing.has(config.namespaces.node)) {
    try {
      cluster = await readCluster(config, plane.admin);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  for (const node of cluster.nodes) if (!node.ready) problems.push(`node ${node.name} is not Ready`);
  for (const pod of cluster.pods) {
    if (!pod.ready && pod.phase !== 'Succeeded') problems.push(`pod ${pod.namespace}/${pod.name} is not ready (${pod.phase}${pod.reason === '' ? '' : `: ${pod.reason}`})`);
  }
  const nothing = state === null && plane === null && namespaces.every((n) => !n.exists);
  return {
    name: config.name,
    state: nothing ? 'down' : problems.length === 0 ? 'up' : 'degraded',
    stateDir: config.stateDir,
    server: config.controlPlane.server,
    kubeconfig: config.workstationKubeconfig,
    namespaces,
    processes,
    nodes: cluster.nodes,
    pods: cluster.pods,
    services: config.services.map((s) => ({ name: s.name, namespace: s.namespace, fqdn: s.fqdn, clusterIPs: s.clusterIPs, ports: s.ports })),
    problems: nothing ? [] : problems,
  };
}
