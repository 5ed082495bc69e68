// The sandbox cluster's fixed topology: namespace names, links, addresses, pods and services. A pure function of
// the sandbox's name, so every part of kubetun (and every test) derives the same facts from it.

import { createHash } from 'node:crypto';
import { SandboxError } from './sandbox-errors.js';

export const DEFAULT_SANDBOX_NAME = 'kt';
export const SANDBOX_STATE_ROOT = '/run/kubetun-sandbox';

export type Protocol = 'TCP' | 'UDP';

/** What a pod runs; `echo` serves both the echo and the orders Deployments. */
export type WorkloadKind = 'cluster-dns' | 'echo' | 'redis' | 'iperf' | 'traffic-manager';

export interface DualStackAddress {
  ipv4: string;
  ipv6: string;
}

export interface SandboxPod {
  /** Deployment-style: `<deployment>-<template hash>-<suffix>`, e.g. `echo-5d8f7-x2k9q`. */
  name: string;
  /** The Kubernetes namespace. */
  namespace: string;
  deployment: string;
  kind: WorkloadKind;
  /** The network namespace the pod's process runs in. */
  netns: string;
  ipv4: string;
  ipv6: string;
  /** The pod's end of its veth, inside the pod. */
  interface: string;
  /** The node's end of the pod's veth, a port of the bridge. */
  nodeInterface: string;
  /** TCP port that answers once the pod is ready. */
  readinessPort: number;
}

export interface SandboxServicePort {
  /** Kubernetes port name; only named ports get SRV records. */
  name?: string;
  port: number;
  targetPort: number;
  protocol: Protocol;
}

export interface SandboxService {
  name: string;
  namespace: string;
  /** `<name>.<namespace>.svc.<cluster domain>` */
  fqdn: string;
  clusterIPs: DualStackAddress;
  ports: readonly SandboxServicePort[];
  /** The pods behind it: those of this Deployment. */
  deployment: string;
}

/** A port of the node (on its workstation link) forwarded to a service's pods, as a NodePort is. */
export interface SandboxNodePort {
  service: string;
  namespace: string;
  port: number;
  targetPort: number;
  protocol: Protocol;
}

export interface SandboxConfig {
  name: string;
  /** Pids, logs and generated configuration of this sandbox. */
  stateDir: string;
  clusterDomain: string;
  namespaces: { workstation: string; node: string };
  /** The veth pair joining workstation and node. */
  link: {
    nodeInterface: string;
    workstationInterface: string;
    node: DualStackAddress;
    workstation: DualStackAddress;
    ipv4PrefixLength: number;
    ipv6PrefixLength: number;
    cidrs: readonly string[];
  };
  /** The node's pod bridge and its gateway addresses. */
  bridge: { name: string; ipv4: string; ipv6: string; ipv4PrefixLength: number; ipv6PrefixLength: number };
  podCidrs: readonly string[];
  /** The node's `spec.podCIDRs`. */
  nodePodCidrs: readonly string[];
  serviceCidrs: readonly string[];
  /** The kube-dns Service's ClusterIPs. */
  clusterDns: DualStackAddress;
  /** The resolver the workstation's own resolv.conf names (on the node's link addresses). */
  upstreamDns: {
    addresses: DualStackAddress;
    domain: string;
    records: readonly { name: string; ipv4: string; ipv6: string }[];
  };
  manager: {
    namespace: string;
    service: string;
    port: number;
    nodePort: number;
    /** How the workstation reaches the manager: the node's NodePort. */
    url: string;
    ipv6Url: string;
  };
  pods: readonly SandboxPod[];
  services: readonly SandboxService[];
  nodePorts: readonly SandboxNodePort[];
  /** Environment for commands run in the workstation (`kubetun sandbox exec`). */
  workstationEnv: Readonly<Record<string, string>>;
}

interface DeploymentSpec {
  deployment: string;
  namespace: string;
  kind: WorkloadKind;
  replicas: number;
  readinessPort: number;
}

interface ServiceSpec {
  name: string;
  namespace: string;
  deployment: string;
  /** Last octet of the IPv4 ClusterIP in 10.96.0.0/24; the IPv6 one is fd10:96::<same number in hex>. */
  host: number;
  ports: SandboxServicePort[];
}

const CLUSTER_DOMAIN = 'cluster.local';
const MANAGER_PORT = 8081;
const MANAGER_NODE_PORT = 30081;

// Pods get 10.244.0.10, .11, … in this order (IPv6 fd10:244::10, ::11, …).
const DEPLOYMENTS: readonly DeploymentSpec[] = [
  { deployment: 'coredns', namespace: 'kube-system', kind: 'cluster-dns', replicas: 1, readinessPort: 53 },
  { deployment: 'echo', namespace: 'default', kind: 'echo', replicas: 2, readinessPort: 80 },
  { deployment: 'redis', namespace: 'default', kind: 'redis', replicas: 1, readinessPort: 6379 },
  { deployment: 'iperf', namespace: 'default', kind: 'iperf', replicas: 1, readinessPort: 5201 },
  { deployment: 'orders', namespace: 'shop', kind: 'echo', replicas: 1, readinessPort: 80 },
  { deployment: 'traffic-manager', namespace: 'kubetun', kind: 'traffic-manager', replicas: 1, readinessPort: MANAGER_PORT },
];

const SERVICES: readonly ServiceSpec[] = [
  {
    name: 'kube-dns',
    namespace: 'kube-system',
    deployment: 'coredns',
    host: 10,
    ports: [
      { name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' },
      { name: 'dns-tcp', port: 53, targetPort: 53, protocol: 'TCP' },
    ],
  },
  { name: 'echo', namespace: 'default', deployment: 'echo', host: 20, ports: [{ name: 'http', port: 80, targetPort: 80, protocol: 'TCP' }] },
  { name: 'redis', namespace: 'default', deployment: 'redis', host: 21, ports: [{ name: 'redis', port: 6379, targetPort: 6379, protocol: 'TCP' }] },
  {
    name: 'iperf',
    namespace: 'default',
    deployment: 'iperf',
    host: 22,
    // iperf3's UDP tests send their datagrams to the same port as the TCP control connection.
    ports: [
      { name: 'iperf', port: 5201, targetPort: 5201, protocol: 'TCP' },
      { name: 'iperf-udp', port: 5201, targetPort: 5201, protocol: 'UDP' },
    ],
  },
  { name: 'orders', namespace: 'shop', deployment: 'orders', host: 30, ports: [{ name: 'http', port: 80, targetPort: 80, protocol: 'TCP' }] },
  {
    name: 'traffic-manager',
    namespace: 'kubetun',
    deployment: 'traffic-manager',
    host: 100,
    ports: [{ name: 'api', port: MANAGER_PORT, targetPort: MANAGER_PORT, protocol: 'TCP' }],
  },
];

const NAME_PATTERN = /^[a-z][a-z0-9]{0,15}$/;

/** Throws SandboxError BAD_NAME unless `name` can prefix the sandbox's namespace names. */
export function checkSandboxName(name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw new SandboxError(
      'BAD_NAME',
      `"${name}" is not a usable sandbox name: use 1 to 16 lower-case letters and digits, starting with a letter (e.g. kt)`,
    );
  }
  return name;
}

// Kubernetes' alphabet for generated name suffixes (no vowels, no look-alike characters).
const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** Five characters of SUFFIX_ALPHABET derived from `seed`, the same on every run. */
export function nameSuffix(seed: string): string {
  const digest = createHash('sha256').update(seed).digest();
  let out = '';
  for (let i = 0; i < 5; i++) out += SUFFIX_ALPHABET[digest[i]! % SUFFIX_ALPHABET.length];
  return out;
}

export function sandboxConfig(name: string = DEFAULT_SANDBOX_NAME): SandboxConfig {
  checkSandboxName(name);
  const pods: SandboxPod[] = [];
  for (const spec of DEPLOYMENTS) {
    const templateHash = nameSuffix(`${name}/${spec.namespace}/${spec.deployment}`);
    for (let replica = 0; replica < spec.replicas; replica++) {
      const host = 10 + pods.length;
      const podName = `${spec.deployment}-${templateHash}-${nameSuffix(`${name}/${spec.namespace}/${spec.deployment}/${replica}`)}`;
      pods.push({
        name: podName,
        namespace: spec.namespace,
        deployment: spec.deployment,
        kind: spec.kind,
        netns: `${name}-pod-${podName}`,
        ipv4: `10.244.0.${host}`,
        // The same digits as the IPv4 host part, so the two addresses of a pod are easy to pair by eye.
        ipv6: `fd10:244::${host}`,
        interface: 'eth0',
        nodeInterface: `veth${pods.length}`,
        readinessPort: spec.readinessPort,
      });
    }
  }
  const services: SandboxService[] = SERVICES.map((spec) => ({
    name: spec.name,
    namespace: spec.namespace,
    fqdn: `${spec.name}.${spec.namespace}.svc.${CLUSTER_DOMAIN}`,
    clusterIPs: { ipv4: `10.96.0.${spec.host}`, ipv6: `fd10:96::${spec.host.toString(16)}` },
    ports: spec.ports,
    deployment: spec.deployment,
  }));
  const node = { ipv4: '198.18.0.1', ipv6: '2001:2::1' };
  const managerUrl = `http://${node.ipv4}:${MANAGER_NODE_PORT}`;
  return {
    name,
    stateDir: `${SANDBOX_STATE_ROOT}/${name}`,
    clusterDomain: CLUSTER_DOMAIN,
    namespaces: { workstation: `${name}-workstation`, node: `${name}-node` },
    link: {
      nodeInterface: 'ws0',
      workstationInterface: 'eth0',
      node,
      workstation: { ipv4: '198.18.0.2', ipv6: '2001:2::2' },
      ipv4PrefixLength: 30,
      ipv6PrefixLength: 64,
      cidrs: ['198.18.0.0/30', '2001:2::/64'],
    },
    bridge: { name: 'ktbr0', ipv4: '10.244.0.1', ipv6: 'fd10:244::1', ipv4PrefixLength: 24, ipv6PrefixLength: 64 },
    podCidrs: ['10.244.0.0/16', 'fd10:244::/56'],
    nodePodCidrs: ['10.244.0.0/24', 'fd10:244::/64'],
    serviceCidrs: ['10.96.0.0/12', 'fd10:96::/112'],
    clusterDns: { ipv4: '10.96.0.10', ipv6: 'fd10:96::a' },
    upstreamDns: {
      addresses: node,
      domain: 'upstream.test',
      records: [{ name: 'www.upstream.test', ipv4: node.ipv4, ipv6: node.ipv6 }],
    },
    manager: {
      namespace: 'kubetun',
      service: 'traffic-manager',
      port: MANAGER_PORT,
      nodePort: MANAGER_NODE_PORT,
      url: managerUrl,
      ipv6Url: `http://[${node.ipv6}]:${MANAGER_NODE_PORT}`,
    },
    pods,
    services,
    nodePorts: [
      { service: 'traffic-manager', namespace: 'kubetun', port: MANAGER_NODE_PORT, targetPort: MANAGER_PORT, protocol: 'TCP' },
    ],
    workstationEnv: { KUBETUN_MANAGER_URL: managerUrl, KUBETUN_SANDBOX: name },
  };
}

/** Every range the sandbox puts addresses in: none may overlap a route of the host. */
export function sandboxRanges(config: SandboxConfig): string[] {
  return [...config.link.cidrs, ...config.podCidrs, ...config.serviceCidrs];
}

export function podsOf(config: SandboxConfig, deployment: string, namespace?: string): SandboxPod[] {
  return config.pods.filter((p) => p.deployment === deployment && (namespace === undefined || p.namespace === namespace));
}

export function findService(config: SandboxConfig, name: string, namespace = 'default'): SandboxService | undefined {
  return config.services.find((s) => s.name === name && s.namespace === namespace);
}

/** The namespaces the sandbox creates: workstation, node, then one per pod. */
export function sandboxNamespaces(config: SandboxConfig): string[] {
  return [config.namespaces.workstation, config.namespaces.node, ...config.pods.map((p) => p.netns)];
}
