// What a pod's processes see: their network namespace's name, the node-side veth name, the environment (with
// fieldRef values and $(VAR) references expanded as the kubelet does) and the pod's resolv.conf and hosts.

import { createHash } from 'node:crypto';
import type { Container, Pod } from './types.js';

const NETNS_MAX = 64;
const IFNAMSIZ_MAX = 15;

function shortHash(text: string, chars: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, chars);
}

/**
 * The pod's network namespace: prefix + name (+ "_" + namespace outside "default"; "_" never appears in a pod
 * name, so two pods never share one). Long names are cut and end in a hash of the whole.
 */
export function podNetnsName(prefix: string, pod: Pick<Pod, 'metadata'>): string {
  const { name, namespace = 'default' } = pod.metadata;
  const full = namespace === 'default' ? `${prefix}${name}` : `${prefix}${name}_${namespace}`;
  if (full.length <= NETNS_MAX) return full;
  return `${full.slice(0, NETNS_MAX - 9)}-${shortHash(full, 8)}`;
}

/** The node side of the pod's veth: within the kernel's 15 characters, derived from the namespace name. */
export function nodeVethName(netns: string): string {
  return `kv${shortHash(netns, IFNAMSIZ_MAX - 2 - 2)}`;
}

export interface EnvContext {
  pod: Pod;
  podIPs: string[];
  hostIP: string;
  kubernetesServiceHost?: string;
  kubernetesServicePort?: number;
}

function fieldValue(path: string, ctx: EnvContext): string {
  const { pod } = ctx;
  switch (path) {
    case 'metadata.name':
      return pod.metadata.name;
    case 'metadata.namespace':
      return pod.metadata.namespace ?? 'default';
    case 'metadata.uid':
      return pod.metadata.uid;
    case 'status.podIP':
      return ctx.podIPs[0] ?? '';
    case 'status.podIPs':
      return ctx.podIPs.join(',');
    case 'status.hostIP':
      return ctx.hostIP;
    case 'spec.nodeName':
      return pod.spec.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec.serviceAccountName ?? '';
  }
  const label = /^metadata\.labels\['(.+)'\]$/.exec(path);
  if (label !== null) return pod.metadata.labels?.[label[1]!] ?? '';
  return '';
}

/** Expands $(NAME) from `env` ($$ escapes a dollar; an unknown name stays as written), like Kubernetes. */
export function expandReferences(text: string, env: Readonly<Record<string, string>>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (name === undefined) return '$';
    return env[name] ?? match;
  });
}

/** The container's own variables: HOSTNAME, the API server's address and the spec's env, in that order. */
export function containerEnvironment(container: Container, ctx: EnvContext): Record<string, string> {
  const env: Record<string, string> = { HOSTNAME: ctx.pod.spec.hostname ?? ctx.pod.metadata.name };
  if (ctx.kubernetesServiceHost !== undefined && ctx.kubernetesServicePort !== undefined) {
    env.KUBERNETES_SERVICE_HOST = ctx.kubernetesServiceHost;
    env.KUBERNETES_SERVICE_PORT = String(ctx.kubernetesServicePort);
    env.KUBERNETES_SERVICE_PORT_HTTPS = String(ctx.kubernetesServicePort);
  }
  for (const variable of container.env ?? []) {
    const fieldPath = variable.valueFrom?.fieldRef?.fieldPath;
    env[variable.name] = fieldPath !== undefined ? fieldValue(fieldPath, ctx) : expandReferences(variable.value ?? '', env);
  }
  return env;
}

export interface DnsSettings {
  clusterDns?: string;
  clusterDomain: string;
  /** The node's own resolv.conf text, for dnsPolicy Default. */
  nodeResolvConf: string;
}

/** The pod's resolv.conf: the cluster DNS with the namespace's search path (ClusterFirst), or the node's. */
export function podResolvConf(pod: Pod, dns: DnsSettings): string {
  const policy = pod.spec.dnsPolicy ?? 'ClusterFirst';
  if (policy === 'Default' || dns.clusterDns === undefined) return dns.nodeResolvConf;
  const ns = pod.metadata.namespace ?? 'default';
  const d = dns.clusterDomain;
  return `nameserver ${dns.clusterDns}\nsearch ${ns}.svc.${d} svc.${d} ${d}\noptions ndots:5\n`;
}

/** The pod's /etc/hosts: localhost and its own name on each of its addresses. */
export function podHosts(pod: Pod, podIPs: readonly string[]): string {
  const hostname = pod.spec.hostname ?? pod.metadata.name;
  return [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    ...podIPs.map((ip) => `${ip}\t${hostname}`),
    '',
  ].join('\n');
}
