// The Node object: created (or updated) with the pod CIDRs, then its status (addresses, capacity, the kubelet's
// port and the Ready condition) patched at start and on every heartbeat.

import { hostname } from 'node:os';
import { KubeApiError } from '../../k8s/resilient-informer.js';
import type { KubeApi } from './kube-api.js';

export interface NodeFacts {
  nodeName: string;
  nodeIP: string;
  port: number;
  podCidrs: string[];
}

/** What the node offers (also what a container without limits may use, as resourceFieldRef reports). */
export const NODE_CAPACITY = { cpu: '2', memory: '8Gi', pods: '110', 'ephemeral-storage': '20Gi' };

export async function registerNode(api: KubeApi, facts: NodeFacts): Promise<void> {
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: facts.nodeName,
      labels: {
        'kubernetes.io/hostname': facts.nodeName,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch,
      },
    },
    spec: { podCIDR: facts.podCidrs[0], podCIDRs: facts.podCidrs },
  };
  try {
    await api.request('POST', '/api/v1/nodes', node);
  } catch (error) {
    if (!(error instanceof KubeApiError && error.statusCode === 409)) throw error;
    // It exists (an earlier run): the pod CIDRs cannot change once set, so only a mismatch is worth a word.
    const existing = await api.request<{ spec?: { podCIDRs?: string[] } }>('GET', `/api/v1/nodes/${facts.nodeName}`);
    const had = existing.spec?.podCIDRs;
    if (had === undefined || had.length === 0) {
      await api.request('PATCH', `/api/v1/nodes/${facts.nodeName}`, { metadata: { labels: node.metadata.labels }, spec: node.spec });
    } else if (!had.every((cidr, i) => cidr === facts.podCidrs[i])) {
      // (An API server without dual-stack keeps only the first CIDR: that is no mismatch.)
      throw new Error(
        `node ${facts.nodeName} already exists with pod CIDRs ${had.join(', ')}, not ${facts.podCidrs.join(', ')}: delete the Node object or use its CIDRs`,
      );
    }
  }
}

/** Patches the node's status; `ready` false marks it NotReady (the kubelet stops). */
export async function reportNodeStatus(api: KubeApi, facts: NodeFacts, ready: boolean, since: string): Promise<void> {
  const time = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const condition = (type: string, status: string, reason: string, message: string): Record<string, string> => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: time,
    lastTransitionTime: since,
  });
  const status = {
    addresses: [
      { type: 'InternalIP', address: facts.nodeIP },
      { type: 'Hostname', address: facts.nodeName },
    ],
    capacity: NODE_CAPACITY,
    allocatable: NODE_CAPACITY,
    daemonEndpoints: { kubeletEndpoint: { Port: facts.port } },
    nodeInfo: {
      machineID: '',
      systemUUID: '',
      bootID: '',
      kernelVersion: '',
      osImage: `kubetun sandbox on ${hostname()}`,
      containerRuntimeVersion: 'kubetun://0.1.0',
      kubeletVersion: 'v1.20.2',
      kubeProxyVersion: 'v1.20.2',
      operatingSystem: 'linux',
      architecture: process.arch === 'x64' ? 'amd64' : process.arch,
    },
    conditions: [
      condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
      ready
        ? condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status')
        : condition('Ready', 'False', 'KubeletNotReady', 'kubelet is stopping'),
    ],
  };
  await api.request('PATCH', `/api/v1/nodes/${facts.nodeName}/status`, { status }, 'strategic');
}
