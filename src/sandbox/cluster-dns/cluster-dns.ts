// The sandbox's cluster DNS (standing in for CoreDNS): watches Services, Endpoints, Pods and Namespaces, rebuilds
// its in-memory index after each burst of changes, and serves it on UDP and TCP.

import type { KubernetesObject, V1Endpoints, V1Namespace, V1Pod, V1Service } from '@kubernetes/client-node';
import { textToName } from '../../dns/dns-message.js';
import { ResilientInformer, type KubeAccess } from '../../k8s/resilient-informer.js';
import { silentLogger, type Logger } from '../../log/logger.js';
import { buildDnsIndex, type DnsIndex } from './dns-index.js';
import { startDnsServer, type Upstream } from './dns-server.js';
import { clusterDnsRules } from './rbac.js';

export interface ClusterDnsOptions {
  kubeConfig: KubeAccess;
  /** Default: every address of the host (0.0.0.0 and ::). */
  listen?: readonly string[];
  port?: number;
  clusterDomain?: string;
  upstream: Upstream;
  /** Wait this long after a change for more before rebuilding (default 100 ms). */
  debounceMs?: number;
  log?: Logger;
}

export interface ClusterDns {
  /** Resolves once the first lists of all four kinds have arrived and the index serves them. */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

export async function startClusterDns(options: ClusterDnsOptions): Promise<ClusterDns> {
  const log = options.log ?? silentLogger;
  const domain = options.clusterDomain ?? 'cluster.local';
  const debounceMs = options.debounceMs ?? 100;
  const informer = <T extends KubernetesObject>(path: string): ResilientInformer<T> =>
    new ResilientInformer<T>({ kubeConfig: options.kubeConfig, path, debounceMs });
  const services = informer<V1Service>('/api/v1/services');
  const endpoints = informer<V1Endpoints>('/api/v1/endpoints');
  const pods = informer<V1Pod>('/api/v1/pods');
  const namespaces = informer<V1Namespace>('/api/v1/namespaces');
  const all = [services, endpoints, pods, namespaces];
  let index: DnsIndex | null = null;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const server = await startDnsServer({
    listen: options.listen ?? ['0.0.0.0', '::'],
    port: options.port ?? 53,
    upstream: options.upstream,
    domain: textToName(domain.toLowerCase()),
    index: () => index,
    indexed: ready,
    log,
  });
  const rebuild = (): void => {
    if (!all.every((i) => i.synced)) return;
    index = buildDnsIndex(domain, { services: services.items(), endpoints: endpoints.items(), pods: pods.items(), namespaces: namespaces.items() });
    log.debug('rebuilt the index', { services: index.services.size, pods: index.pods.size, namespaces: index.namespaces.size });
    markReady();
  };
  for (const i of all) {
    i.on('change', rebuild);
    i.on('error', (error) => {
      const hint = /\b403\b/.test(error.message) ? `; it needs ${JSON.stringify(clusterDnsRules)}` : '';
      log.error(`cannot watch the API (retrying)${hint}`, { error: error.message });
    });
    i.start();
  }
  return {
    ready,
    stop: async () => {
      for (const i of all) i.stop();
      await server.close();
    },
  };
}
