// What a pod's processes see: their network namespace's name, the node-side veth name, the environment (envFrom,
// then env with fieldRef, resourceFieldRef, ConfigMap and Secret values and $(VAR) references expanded as the
// kubelet does) and the pod's resolv.conf and hosts.

import { createHash } from 'node:crypto';
import { NO_ENV_SOURCES, sourceData, sourceKey, type EnvSources } from './env-sources.js';
import { resourceFieldValue } from './resource-env.js';
import type { Container, EnvVar, Pod } from './types.js';

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
  /** The ConfigMaps and Secrets the container refers to, read beforehand (env-sources.ts). */
  sources?: EnvSources;
  /** Told about envFrom keys left out because they are not variable names (the kubelet's warning event). */
  onInvalidNames?: (message: string) => void;
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

// The kubelet's rule (IsEnvVarName) for the names envFrom may bring in.
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** The variables of each envFrom source in order (later ones win); keys that are not variable names are skipped. */
function envFromVariables(container: Container, ctx: EnvContext, env: Record<string, string>): void {
  const namespace = ctx.pod.metadata.namespace ?? 'default';
  for (const from of container.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    if (ref === undefined) continue;
    const kind = from.configMapRef !== undefined ? 'configmap' : 'secret';
    const name = ref.name ?? '';
    const data = sourceData(ctx.sources ?? NO_ENV_SOURCES, kind, name, ref.optional === true);
    if (data === undefined) continue;
    const invalid: string[] = [];
    for (const [key, value] of Object.entries(data)) {
      const variable = `${from.prefix ?? ''}${key}`;
      if (ENV_NAME.test(variable)) env[variable] = value;
      else invalid.push(variable);
    }
    if (invalid.length > 0) {
      ctx.onInvalidNames?.(
        `Keys [${invalid.sort().join(', ')}] from the EnvFrom ${kind} ${namespace}/${name} were skipped since they are considered invalid environment variable names.`,
      );
    }
  }
}

/** One env[] entry's value; undefined when it comes from an optional source that is missing (the variable is left out). */
function envValue(variable: EnvVar, container: Container, ctx: EnvContext, env: Readonly<Record<string, string>>): string | undefined {
  const from = variable.valueFrom;
  const namespace = ctx.pod.metadata.namespace ?? 'default';
  if (from?.fieldRef !== undefined) return fieldValue(from.fieldRef.fieldPath, ctx);
  if (from?.resourceFieldRef !== undefined) return resourceFieldValue(from.resourceFieldRef, container, ctx.pod.spec.containers);
  if (from?.configMapKeyRef !== undefined) return sourceKey(ctx.sources ?? NO_ENV_SOURCES, 'configmap', namespace, from.configMapKeyRef);
  if (from?.secretKeyRef !== undefined) return sourceKey(ctx.sources ?? NO_ENV_SOURCES, 'secret', namespace, from.secretKeyRef);
  // Only literal values are expanded, against everything defined before them (envFrom included).
  return expandReferences(variable.value ?? '', env);
}

/**
 * The container's own variables: HOSTNAME, the API server's address, envFrom's, then env's, in that order (a later
 * one replaces an earlier one of the same name). Throws ContainerConfigError when a required source is missing.
 */
export function containerEnvironment(container: Container, ctx: EnvContext): Record<string, string> {
  const env: Record<string, string> = { HOSTNAME: ctx.pod.spec.hostname ?? ctx.pod.metadata.name };
  if (ctx.kubernetesServiceHost !== undefined && ctx.kubernetesServicePort !== undefined) {
    env.KUBERNETES_SERVICE_HOST = ctx.kubernetesServiceHost;
    env.KUBERNETES_SERVICE_PORT = String(ctx.kubernetesServicePort);
    env.KUBERNETES_SERVICE_PORT_HTTPS = String(ctx.kubernetesServicePort);
  }
  envFromVariables(container, ctx, env);
  for (const variable of container.env ?? []) {
    const value = envValue(variable, container, ctx, env);
    if (value !== undefined) env[variable.name] = value;
  }
  return env;
}

/** The container with $(VAR) in its command and args expanded from its environment, as the kubelet does. */
export function expandCommand(container: Container, env: Readonly<Record<string, string>>): Container {
  return {
    ...container,
    ...(container.command === undefined ? {} : { command: container.command.map((word) => expandReferences(word, env)) }),
    ...(container.args === undefined ? {} : { args: container.args.map((word) => expandReferences(word, env)) }),
  };
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
