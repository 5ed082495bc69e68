// What `sandbox up` and `sandbox status` ask of the sandbox's API server: applying its workloads and reading
// nodes, pods and Deployments. Requests run in the node namespace (the host cannot reach the API server).

import { requestApiInNetns, type ApiCredentials, type ApiRequest, type ApiResponse } from './control-plane/api-request.js';
import { readControlPlane } from './control-plane/control-plane.js';
import { collectionPath, sandboxManifests, type ManifestObject } from './cluster-manifests.js';
import type { SandboxConfig } from './sandbox-config.js';
import { SandboxError } from './sandbox-errors.js';

const REQUEST_BATCH_TIMEOUT_MS = 30_000;
const POLL_MS = 500;

interface PodObject {
  metadata: { name: string; namespace: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status: {
    phase?: string;
    podIP?: string;
    podIPs?: { ip: string }[];
    conditions?: { type: string; status: string }[];
    containerStatuses?: { ready: boolean; restartCount: number; containerID?: string; state?: { waiting?: { reason?: string; message?: string }; terminated?: { reason?: string; exitCode?: number } } }[];
  };
}

export interface ClusterPod {
  name: string;
  namespace: string;
  /** Its `app` (or `app.kubernetes.io/name`) label: the Deployment. */
  app: string;
  node: string;
  phase: string;
  ready: boolean;
  ipv4: string;
  ipv6: string;
  restarts: number;
  /** Why it is not ready, when the kubelet said (e.g. ErrImagePull: …). */
  reason: string;
  terminating: boolean;
  /** The first container's process on this machine (the kubelet's containerID is kubetun://<pid>), or null. */
  pid: number | null;
}

export interface ClusterNode {
  name: string;
  podCidrs: string[];
  ready: boolean;
}

function describe(object: ManifestObject): string {
  return `${object.kind} ${object.metadata.namespace === undefined ? '' : `${object.metadata.namespace}/`}${object.metadata.name}`;
}

function apiMessage(response: ApiResponse | undefined): string {
  if (response === undefined) return 'no answer';
  try {
    return (JSON.parse(response.body) as { message?: string }).message ?? response.body.slice(0, 300);
  } catch {
    return response.body.slice(0, 300);
  }
}

async function api(config: SandboxConfig, admin: ApiCredentials, requests: ApiRequest[]): Promise<ApiResponse[]> {
  return requestApiInNetns(config.namespaces.node, { credentials: admin, requests, timeoutMs: REQUEST_BATCH_TIMEOUT_MS });
}

function recordedAdmin(config: SandboxConfig): ApiCredentials {
  const plane = readControlPlane(config.controlPlane.stateDir);
  if (plane === null) throw new SandboxError('NOT_UP', `sandbox ${config.name} has no control plane running: run kubetun sandbox up --name ${config.name}`);
  return plane.admin;
}

/** Requests to the running sandbox's API server as its admin (for tests and tools); throws NOT_UP when it does not run. */
export async function sandboxApi(config: SandboxConfig, requests: ApiRequest[]): Promise<ApiResponse[]> {
  return api(config, recordedAdmin(config), requests);
}

/** Creates what is missing of the sandbox's workloads; returns what it created. Existing objects are left as they are. */
export async function applyWorkloads(config: SandboxConfig, admin: ApiCredentials): Promise<string[]> {
  const objects = sandboxManifests(config);
  // Looked up first: creating a Service that exists answers 422 (its fixed ClusterIP is taken), not 409.
  const found = await api(
    config,
    admin,
    objects.map((object) => ({ method: 'GET', path: `${collectionPath(object)}/${object.metadata.name}` })),
  );
  const missing = objects.filter((object, i) => {
    const answer = found[i];
    if (answer?.status === 200) return false;
    if (answer?.status === 404) return true;
    throw new SandboxError('COMMAND_FAILED', `the API server did not answer for ${describe(object)} (HTTP ${answer?.status ?? 0}): ${apiMessage(answer)}`);
  });
  const answers = await api(
    config,
    admin,
    missing.map((object) => ({ method: 'POST', path: collectionPath(object), body: object })),
  );
  missing.forEach((object, i) => {
    const answer = answers[i];
    if (answer?.status !== 201 && answer?.status !== 409) {
      throw new SandboxError('COMMAND_FAILED', `the API server refused ${describe(object)} (HTTP ${answer?.status ?? 0}): ${apiMessage(answer)}`);
    }
  });
  return missing.map(describe);
}

function toPod(pod: PodObject): ClusterPod {
  const ips = (pod.status.podIPs ?? []).map((p) => p.ip);
  const ready = pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  const container = pod.status.containerStatuses?.[0];
  const waiting = container?.state?.waiting;
  const terminated = container?.state?.terminated;
  const reason = waiting !== undefined ? `${waiting.reason ?? 'Waiting'}${waiting.message === undefined ? '' : `: ${waiting.message}`}` : terminated !== undefined ? `${terminated.reason ?? 'Terminated'} (exit ${terminated.exitCode ?? '?'})` : '';
  return {
    name: pod.metadata.name,
    namespace: pod.metadata.namespace,
    app: pod.metadata.labels?.app ?? pod.metadata.labels?.['app.kubernetes.io/name'] ?? '',
    node: pod.spec.nodeName ?? '',
    phase: pod.status.phase ?? 'Pending',
    ready,
    ipv4: ips.find((ip) => !ip.includes(':')) ?? '',
    ipv6: ips.find((ip) => ip.includes(':')) ?? '',
    restarts: container?.restartCount ?? 0,
    reason,
    terminating: pod.metadata.deletionTimestamp !== undefined,
    pid: /^kubetun:\/\/(\d+)$/.test(container?.containerID ?? '') ? Number(container!.containerID!.slice('kubetun://'.length)) : null,
  };
}

/** The cluster's nodes and pods as the API server has them. */
export async function readCluster(config: SandboxConfig, admin: ApiCredentials = recordedAdmin(config)): Promise<{ nodes: ClusterNode[]; pods: ClusterPod[] }> {
  const [nodes, pods] = await api(config, admin, [
    { method: 'GET', path: '/api/v1/nodes' },
    { method: 'GET', path: '/api/v1/pods' },
  ]);
  if (nodes?.status !== 200 || pods?.status !== 200) {
    throw new SandboxError('COMMAND_FAILED', `the API server did not list nodes and pods: ${apiMessage(nodes?.status === 200 ? pods : nodes)}`);
  }
  const nodeItems = (JSON.parse(nodes.body) as { items: { metadata: { name: string }; spec: { podCIDRs?: string[] }; status: { conditions?: { type: string; status: string }[] } }[] }).items;
  return {
    nodes: nodeItems.map((n) => ({
      name: n.metadata.name,
      podCidrs: n.spec.podCIDRs ?? [],
      ready: n.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true,
    })),
    pods: (JSON.parse(pods.body) as { items: PodObject[] }).items.map(toPod),
  };
}

/** The sandbox's own pods, ready ones of each Deployment first. */
export function podsOf(pods: readonly ClusterPod[], app: string, namespace = 'default'): ClusterPod[] {
  return pods.filter((p) => p.app === app && p.namespace === namespace && !p.terminating).sort((a, b) => Number(b.ready) - Number(a.ready) || a.name.localeCompare(b.name));
}

/**
 * Waits until every node is Ready and every Deployment of the sandbox has its replicas ready; throws NOT_READY
 * naming what is not, with the kubelet's reason.
 */
export async function waitForWorkloads(config: SandboxConfig, admin: ApiCredentials, timeoutMs: number): Promise<{ nodes: ClusterNode[]; pods: ClusterPod[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const cluster = await readCluster(config, admin);
    const missing: string[] = [];
    for (const node of config.nodes) {
      const found = cluster.nodes.find((n) => n.name === node.name);
      if (found?.ready !== true) missing.push(`node ${node.name} is ${found === undefined ? 'not registered' : 'not Ready'}`);
    }
    for (const d of config.deployments) {
      const pods = podsOf(cluster.pods, d.name, d.namespace);
      const ready = pods.filter((p) => p.ready).length;
      if (ready < d.replicas) {
        const why = pods.filter((p) => !p.ready).map((p) => `${p.name} ${p.phase}${p.reason === '' ? '' : ` (${p.reason})`}`);
        missing.push(`deployment ${d.namespace}/${d.name} has ${ready} of ${d.replicas} pods ready${why.length === 0 ? '' : `: ${why.join(', ')}`}`);
      }
    }
    if (missing.length === 0) return cluster;
    if (Date.now() + POLL_MS >= deadline) {
      throw new SandboxError(
        'NOT_READY',
        `sandbox ${config.name} is not ready after ${Math.round(timeoutMs / 1000)} s: ${missing.join('; ')}. ` +
          `The kubelets' logs are in ${config.stateDir}/logs; run kubetun sandbox up --name ${config.name} again (it repairs) or kubetun sandbox down.`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
