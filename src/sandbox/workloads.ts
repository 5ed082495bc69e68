// The processes `sandbox up` runs in the node namespace itself, besides the control plane: the upstream resolver,
// one kubelet per node and the kube-proxy. Pods are the kubelets' processes. Described as plain specs;
// processes.ts starts them.

import { fileURLToPath } from 'node:url';
import { adminKubeconfigPath } from './control-plane/control-plane.js';
import { firstServiceAddress } from './control-plane/pki.js';
import { ETC_NETNS } from './etc-netns.js';
import type { SandboxConfig, SandboxNode } from './sandbox-config.js';

export interface ProcessSpec {
  /** `upstream-dns`, `kube-proxy` or `kubelet-<node>`. */
  id: string;
  netns: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  logFile: string;
  /** Whether `sandbox up` fails when this process does not start. */
  essential: boolean;
  /** Run in the host's mount namespace (without the namespace's /etc/netns files). */
  hostMounts?: boolean;
}

export const UPSTREAM_DNS_ID = 'upstream-dns';
export const KUBE_PROXY_ID = 'kube-proxy';

const program = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url));

export function logFileOf(config: SandboxConfig, id: string): string {
  return `${config.stateDir}/logs/${id}.log`;
}

export function upstreamDnsConfigPath(config: SandboxConfig): string {
  return `${config.stateDir}/upstream-dns.conf`;
}

export function imageMapPath(config: SandboxConfig): string {
  return `${config.stateDir}/image-map.json`;
}

/** The admin kubeconfig the node's own agents (kubelets, kube-proxy) use. */
export function nodeKubeconfigPath(config: SandboxConfig): string {
  return adminKubeconfigPath(config.controlPlane.stateDir);
}

export function kubeletStateDir(config: SandboxConfig, node: SandboxNode): string {
  return `${config.stateDir}/kubelet/${node.name}`;
}

export function kubeletId(node: SandboxNode): string {
  return `kubelet-${node.name}`;
}

export function upstreamDnsProcessSpec(config: SandboxConfig): ProcessSpec {
  return {
    id: UPSTREAM_DNS_ID,
    netns: config.namespaces.node,
    command: 'dnsmasq',
    args: ['--keep-in-foreground', `--conf-file=${upstreamDnsConfigPath(config)}`],
    env: {},
    cwd: config.stateDir,
    logFile: logFileOf(config, UPSTREAM_DNS_ID),
    essential: true,
  };
}

export function kubeletProcessSpec(config: SandboxConfig, node: SandboxNode, nodeExecutable = process.execPath): ProcessSpec {
  return {
    id: kubeletId(node),
    netns: config.namespaces.node,
    command: nodeExecutable,
    args: [
      program('./kubelet/main.js'),
      '--kubeconfig',
      nodeKubeconfigPath(config),
      '--node-name',
      node.name,
      '--node-ip',
      config.link.node.ipv4,
      '--port',
      String(node.kubeletPort),
      ...node.podCidrs.flatMap((c) => ['--pod-cidr', c]),
      '--bridge',
      config.bridge.name,
      '--netns-prefix',
      config.podNetnsPrefix,
      '--state-dir',
      kubeletStateDir(config, node),
      '--cluster-dns',
      config.clusterDns.ipv4,
      '--cluster-domain',
      config.clusterDomain,
      '--kubernetes-service-host',
      firstServiceAddress(config.controlPlane.serviceClusterIpRange),
      '--kubernetes-service-port',
      '443',
      '--image-map',
      imageMapPath(config),
      // The node's own resolver, for the cluster DNS pod (dnsPolicy Default): the kubelet runs with the host's /etc.
      '--resolv-conf',
      `${ETC_NETNS}/${config.namespaces.node}/resolv.conf`,
    ],
    env: {},
    cwd: config.stateDir,
    logFile: logFileOf(config, kubeletId(node)),
    essential: true,
    // The pods' network namespaces it creates must be visible outside it (to `sandbox down`, tests, the tools).
    hostMounts: true,
  };
}

export function kubeProxyProcessSpec(config: SandboxConfig, nodeExecutable = process.execPath): ProcessSpec {
  return {
    id: KUBE_PROXY_ID,
    netns: config.namespaces.node,
    command: nodeExecutable,
    args: [
      program('./kube-proxy/main.js'),
      '--kubeconfig',
      nodeKubeconfigPath(config),
      '--node-address',
      config.link.node.ipv4,
      '--node-address',
      config.link.node.ipv6,
      ...config.serviceCidrs.flatMap((cidr) => ['--service-cidr', cidr]),
    ],
    env: {},
    cwd: config.stateDir,
    logFile: logFileOf(config, KUBE_PROXY_ID),
    essential: true,
  };
}
