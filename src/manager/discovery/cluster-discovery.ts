// The traffic manager's view of the cluster's networking, learned from the Kubernetes API and followed: pod
// CIDRs by the chosen strategy, service CIDRs (ServiceCIDR API, dry-run probe, or covered ClusterIPs), the cluster
// DNS server and the cluster domain; and the namespace names and the nodes' addresses. Facts given by flags are never
// touched. Every change goes to the ClusterInfoSource, which pushes it to each client's WatchClusterInfo. Informers
// keep only the fields read here, so a large cluster's pods and nodes are not held whole.
import { readFileSync } from 'node:fs';
import type { KubernetesObject, V1Namespace, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import type { KubeAccess } from '../../k8s/resilient-informer.js';
import { KubeApiError, ResilientInformer, kubeApiRequest } from '../../k8s/resilient-informer.js';
import type { Logger } from '../../log/logger.js';
import { formatIp, formatPrefix, parseIp, type IpPrefix } from '../../netstack/wire/ip-address.js';
import type { IpAddress } from '../../netstack/wire/reprs.js';
import type { ClusterFacts, DnsServerAddress } from '../cluster-info-source.js';
import { clusterDomainByReverseLookup, clusterDomainFromResolvConf, dnsFromKubeDnsService, dnsFromResolvConf } from './cluster-dns.js';
import { MAX_NAMESPACES, namespaceNames, nodeAddresses } from './cluster-members.js';
import { aggregatePrefixes } from './covering.js';
import { coverPodIps, nodeCidrsUsable, nodePodCidrs, type PodCidrStrategy, type Rejected } from './pod-cidrs.js';
import {
  coverClusterIps,
  findServiceCidrApi,
  probeServiceCidrs,
  serviceCidrsFromObjects,
  type ServiceCidrObject,
} from './service-cidrs.js';

export interface DiscoveryOptions {
  kubeConfig: KubeAccess;
  podCidrStrategy: PodCidrStrategy;
  /** Facts given by flags or a CIDRs file: discovery leaves them alone. */
  fixed: { podCidrs: boolean; serviceCidrs: boolean; dns: boolean; clusterDomain: boolean };
  /** The manager's own pod IP (env POD_IP); `auto` trusts node CIDRs only when they hold it. */
  ownPodIp?: string;
  /** The manager's namespace: where the dry-run probe Service is (not) created. */
  namespace: string;
  /** Running in a pod: its resolv.conf describes the cluster. */
  inCluster: boolean;
  /** Reads the pod's resolv.conf (injectable for tests). */
  readResolvConf?: () => string | undefined;
  log: Logger;
  /** Coalescing of bursts of changes, per informer (default 500 ms). */
  debounceMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  /** How long start() waits for the first facts before going on with what it has (default 30 s). */
  syncTimeoutMs?: number;
}

/** Whether anything is left to discover once the flags have spoken. */
export function discoveryNeeded(fixed: DiscoveryOptions['fixed']): boolean {
  return !(fixed.podCidrs && fixed.serviceCidrs && fixed.dns && fixed.clusterDomain);
}

/** A problem discovery cannot work around (e.g. nodePodCIDRs without permission to list nodes). */
export class DiscoveryError extends Error {
  readonly code = 'DISCOVERY';
}

type Target = { update(change: Partial<ClusterFacts>): void };

function readPodResolvConf(): string | undefined {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    return undefined;
  }
}

const formatList = (prefixes: readonly IpPrefix[] | undefined): string => (prefixes ?? []).map(formatPrefix).join(',');

function rbacHint(resource: string, scope: string): string {
  return `grant the manager's service account "list" and "watch" on ${resource} (${scope}; RBAC rule apiGroups [""], resources ["${resource}"])`;
}

const NODES = '/api/v1/nodes';
const PODS = '/api/v1/pods';
const NAMESPACES = '/api/v1/namespaces';

// What an informer must keep of any object (its cache key and change detection).
const identity = (o: KubernetesObject): V1Pod['metadata'] => ({
  name: o.metadata?.name,
  namespace: o.metadata?.namespace,
  resourceVersion: o.metadata?.resourceVersion,
});
const trimNode = (node: V1Node): V1Node => ({
  metadata: identity(node),
  spec: { podCIDR: node.spec?.podCIDR, podCIDRs: node.spec?.podCIDRs },
  status: { addresses: node.status?.addresses },
});
const trimPod = (pod: V1Pod): V1Pod => ({
  metadata: identity(pod),
  spec: { containers: [], hostNetwork: pod.spec?.hostNetwork },
  status: { podIP: pod.status?.podIP, podIPs: pod.status?.podIPs },
});
const trimNamespace = (namespace: V1Namespace): V1Namespace => ({ metadata: identity(namespace) });

export class ClusterDiscovery {
  private readonly log: Logger;
  private readonly informers: ResilientInformer<never>[] = [];
  private nodes: ResilientInformer<V1Node> | undefined;
  private pods: ResilientInformer<V1Pod> | undefined;
  private namespaces: ResilientInformer<V1Namespace> | undefined;
  private namespacesForbidden = false;
  private services: ResilientInformer<V1Service> | undefined;
  private serviceCidrObjects: ResilientInformer<ServiceCidrObject> | undefined;
  private kubeDns: ResilientInformer<V1Service> | undefined;
  private probedServiceCidrs: IpPrefix[] | undefined;
  private nodesForbidden = false;
  private clusterDomain: string | undefined;
  private readonly ownPodIp: IpAddress | undefined;
  private target: Target | undefined;
  private last: Partial<ClusterFacts> = {};
  private fatal: DiscoveryError | undefined;
  private wake: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly options: DiscoveryOptions) {
    this.log = options.log;
    if (options.ownPodIp) {
      try {
        this.ownPodIp = parseIp(options.ownPodIp);
      } catch {
        this.log.warn('POD_IP is not an IP address; auto pod CIDR discovery ignores it', { podIp: options.ownPodIp });
      }
    }
  }

  /**
   * Starts following the cluster and resolves with the first facts once every source has answered (or after
   * syncTimeoutMs, with what is known then). Rejects with a DiscoveryError when a strategy cannot work at all.
   */
  async start(): Promise<Partial<ClusterFacts>> {
    const { fixed } = this.options;
    if (!fixed.dns) {
      this.kubeDns = this.informer<V1Service>('/api/v1/namespaces/kube-system/services', { fieldSelector: 'metadata.name=kube-dns' });
    }
    if (!fixed.podCidrs) this.startPodSources();
    // The nodes' addresses are wanted whatever the strategy; namespaces for clients' DNS routing.
    this.startNodeInformer();
    this.namespaces = this.informer<V1Namespace>(NAMESPACES, { transform: trimNamespace });
    const kubernetesService = fixed.serviceCidrs && fixed.clusterDomain ? undefined : await this.readKubernetesService();
    if (!fixed.serviceCidrs) await this.startServiceSources(kubernetesService);
    await this.firstSync();
    if (!fixed.clusterDomain) await this.findClusterDomain(kubernetesService);
    return this.recompute();
  }

  /** From now on every change goes to `target`; it gets the current facts right away. */
  follow(target: Target): void {
    this.target = target;
    target.update(this.last);
  }

  stop(): void {
    this.stopped = true;
    for (const informer of this.informers) informer.stop();
    this.wake?.();
  }

  private informer<T extends V1Node | V1Pod | V1Service | V1Namespace | ServiceCidrObject>(
    path: string,
    selectors: { fieldSelector?: string; transform?: (object: T) => T } = {},
  ): ResilientInformer<T> {
    const informer = new ResilientInformer<T>({
      kubeConfig: this.options.kubeConfig,
      path,
      ...selectors,
      debounceMs: this.options.debounceMs ?? 500,
      ...(this.options.backoff ? { backoff: this.options.backoff } : {}),
      log: this.log,
    });
    informer.on('change', () => this.changed());
    informer.on('error', (error) => this.failed(path, error));
    this.informers.push(informer as unknown as ResilientInformer<never>);
    informer.start();
    return informer;
  }

  private startPodSources(): void {
    switch (this.options.podCidrStrategy) {
      case 'environment':
        return;
      case 'coverPodIPs':
        this.startPodInformer();
        return;
      case 'nodePodCIDRs':
      case 'auto':
        return; // the nodes informer, started for their addresses anyway
    }
  }

  private startNodeInformer(): void {
    this.nodes = this.informer<V1Node>(NODES, { transform: trimNode });
    // Before the informer's own listener, which recomputes the facts.
    this.nodes.prependListener('change', () => this.nodesListed());
  }

  /** Whether the pod CIDRs come from the nodes' spec.podCIDRs (auto tries them first). */
  private usesNodeCidrs(): boolean {
    const strategy = this.options.podCidrStrategy;
    return !this.options.fixed.podCidrs && (strategy === 'auto' || strategy === 'nodePodCIDRs');
  }

  private startPodInformer(): void {
    // kube-system pods are left out anyway (see podNetworkIps): the server need not send them.
    this.pods ??= this.informer<V1Pod>(PODS, { fieldSelector: 'metadata.namespace!=kube-system', transform: trimPod });
  }

  private async readKubernetesService(): Promise<V1Service | undefined> {
    try {
      const answer = await kubeApiRequest(this.options.kubeConfig, { method: 'GET', path: '/api/v1/namespaces/default/services/kubernetes' });
      if (answer.statusCode === 200) return answer.body as V1Service;
      this.log.debug('cannot read the kubernetes Service', { status: answer.statusCode, error: answer.message });
    } catch (error) {
      this.log.debug('cannot read the kubernetes Service', { error: (error as Error).message });
    }
    return undefined;
  }

  private async startServiceSources(kubernetesService: V1Service | undefined): Promise<void> {
    const { kubeConfig, namespace } = this.options;
    try {
      const path = await findServiceCidrApi(kubeConfig);
      if (path !== undefined) {
        this.log.info('service CIDRs: following the ServiceCIDR API', { path });
        this.serviceCidrObjects = this.informer<ServiceCidrObject>(path);
        return;
      }
    } catch (error) {
      this.log.warn('API discovery failed; not using the ServiceCIDR API', { error: (error as Error).message });
    }
    // Probe each family the cluster's own Service shows (IPv4 when that cannot be read).
    const families = new Set<4 | 6>();
    for (const ip of kubernetesService?.spec?.clusterIPs ?? [kubernetesService?.spec?.clusterIP ?? '']) {
      families.add(ip.includes(':') ? 6 : 4);
    }
    const ranges: IpPrefix[] = [];
    for (const family of [...families].sort()) {
      try {
        const result = await probeServiceCidrs(kubeConfig, namespace, family);
        if ('ranges' in result) ranges.push(...result.ranges);
        else this.log.warn('the service CIDR probe gave no range', { family: `IPv${family}`, error: result.failure });
      } catch (error) {
        this.log.warn('the service CIDR probe failed', { family: `IPv${family}`, error: (error as Error).message });
      }
    }
    if (ranges.length > 0) {
      this.probedServiceCidrs = aggregatePrefixes(ranges);
      this.log.info('service CIDRs found by the invalid-ClusterIP probe', { serviceCidrs: formatList(this.probedServiceCidrs) });
    } else {
      this.log.warn('service CIDRs: covering the ClusterIPs seen instead (fewer addresses than the real range)');
    }
    // A family the probe did not name is covered from the ClusterIPs seen: on a dual-stack cluster whose own
    // Service is IPv4 only, the IPv6 ClusterIPs of other Services.
    this.services = this.informer<V1Service>('/api/v1/services');
  }

  /** Waits until every source in use has listed once, a fatal error, or the sync timeout. */
  private async firstSync(): Promise<void> {
    const deadline = Date.now() + (this.options.syncTimeoutMs ?? 30_000);
    while (!this.stopped && this.fatal === undefined && !this.informers.every((i) => i.synced || this.abandoned(i))) {
      const left = deadline - Date.now();
      if (left <= 0) {
        const waiting = this.informers.filter((i) => !i.synced && !this.abandoned(i)).length;
        this.log.warn('going on without a first answer from every Kubernetes source; they keep retrying', { waiting });
        break;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.wake = undefined;
    if (this.fatal) {
      this.stop();
      throw this.fatal;
    }
  }

  private abandoned(informer: ResilientInformer<never>): boolean {
    return (this.nodesForbidden && informer === (this.nodes as unknown)) || (this.namespacesForbidden && informer === (this.namespaces as unknown));
  }

  private async findClusterDomain(kubernetesService: V1Service | undefined): Promise<void> {
    if (this.options.inCluster) {
      const text = (this.options.readResolvConf ?? readPodResolvConf)();
      const domain = text === undefined ? undefined : clusterDomainFromResolvConf(text, this.options.namespace);
      if (domain !== undefined) {
        this.clusterDomain = domain;
        this.log.info('cluster domain from the pod search list', { clusterDomain: domain });
        return;
      }
    }
    const dns = this.dns();
    const ip = kubernetesService?.spec?.clusterIP;
    if (dns !== undefined && ip) {
      const domain = await clusterDomainByReverseLookup(dns, ip);
      if (domain !== undefined) {
        this.clusterDomain = domain;
        this.log.info('cluster domain from the name of the kubernetes Service', { clusterDomain: domain });
        return;
      }
    }
    this.log.info('cluster domain not discovered; keeping the default (set --cluster-domain to change it)');
  }

  private failed(path: string, error: Error): void {
    if (!(error instanceof KubeApiError) || error.statusCode !== 403) return; // logged and retried by the informer
    // Only a 403 before the first list is taken as RBAC's answer: an API server that has just restarted refuses
    // everything for a moment, until its authorizer has loaded the roles, and that must not change the strategy.
    if (path === NODES && !this.nodes?.synced) {
      if (this.usesNodeCidrs() && this.options.podCidrStrategy === 'nodePodCIDRs') {
        this.setFatal(`pod CIDR strategy nodePodCIDRs: listing nodes is forbidden (403): ${error.message}; ${rbacHint('nodes', 'cluster-wide, a ClusterRole')}, or use --pod-cidr-strategy coverPodIPs`);
        return;
      }
      if (!this.nodesForbidden) {
        // The nodes informer keeps retrying (with backoff): if it is allowed later, nodesListed() switches back.
        this.nodesForbidden = true;
        if (this.usesNodeCidrs()) {
          this.log.warn('listing nodes is forbidden; the auto pod CIDR strategy falls back to coverPodIPs', {
            error: error.message,
            fix: rbacHint('nodes', 'cluster-wide, a ClusterRole'),
          });
          this.startPodInformer();
        } else {
          this.log.warn("listing nodes is forbidden; the nodes' addresses stay unknown", { error: error.message, fix: rbacHint('nodes', 'cluster-wide, a ClusterRole') });
        }
      }
    } else if (path === NAMESPACES && !this.namespaces?.synced) {
      if (!this.namespacesForbidden) {
        this.namespacesForbidden = true;
        this.log.warn('listing namespaces is forbidden; clients get no namespace list for DNS routing', {
          error: error.message,
          fix: rbacHint('namespaces', 'cluster-wide, a ClusterRole'),
        });
      }
    } else if (path === PODS && !this.pods?.synced) {
      this.setFatal(`pod CIDR discovery: listing pods is forbidden (403): ${error.message}; ${rbacHint('pods', 'cluster-wide, a ClusterRole')}, or give --pod-cidr / --pod-cidr-strategy environment`);
      return;
    } else {
      this.log.error('the manager may not read what it needs for discovery', { path, error: error.message });
    }
    this.changed();
  }

  /** The nodes were listed: if that had been forbidden (RBAC granted since, or a restarting API server), use them again. */
  private nodesListed(): void {
    if (!this.nodesForbidden) return;
    this.nodesForbidden = false;
    if (!this.usesNodeCidrs()) return;
    this.log.info('listing nodes is allowed now; the auto pod CIDR strategy uses the node pod CIDRs again');
    // podCidrs() starts the pod informer again if the node CIDRs turn out not to hold the pods.
    const pods = this.pods as unknown as ResilientInformer<never> | undefined;
    if (pods !== undefined) {
      pods.stop();
      this.informers.splice(this.informers.indexOf(pods), 1);
      this.pods = undefined;
    }
  }

  private setFatal(message: string): void {
    // The caller of start() reports it.
    this.fatal ??= new DiscoveryError(message);
    this.wake?.();
  }

  private dns(): DnsServerAddress | undefined {
    const fromService = dnsFromKubeDnsService(this.kubeDns?.items()[0]);
    if (fromService !== undefined || !this.options.inCluster) return fromService;
    const text = (this.options.readResolvConf ?? readPodResolvConf)();
    return text === undefined ? undefined : dnsFromResolvConf(text);
  }

  private podCidrs(rejected: Rejected[]): IpPrefix[] | undefined {
    const strategy = this.options.podCidrStrategy;
    if (strategy === 'environment') return undefined;
    if (strategy !== 'coverPodIPs' && this.nodes?.synced && !this.nodesForbidden) {
      const fromNodes = nodePodCidrs(this.nodes.items(), rejected);
      if (strategy === 'nodePodCIDRs' || nodeCidrsUsable(fromNodes, this.ownPodIp)) return fromNodes;
    }
    if (strategy === 'nodePodCIDRs') return undefined;
    if (strategy === 'auto' && !this.nodesForbidden && !this.nodes?.synced) return undefined;
    this.startPodInformer(); // auto, when the node CIDRs do not hold the pods
    return this.pods?.synced ? coverPodIps(this.pods.items(), rejected) : undefined;
  }

  private serviceCidrs(): IpPrefix[] | undefined {
    if (this.serviceCidrObjects) return this.serviceCidrObjects.synced ? serviceCidrsFromObjects(this.serviceCidrObjects.items()) : undefined;
    if (!this.services?.synced) return this.probedServiceCidrs;
    const probed = this.probedServiceCidrs ?? [];
    const probedFamilies = new Set(probed.map((p) => p.address.length));
    const covered = coverClusterIps(this.services.items()).filter((p) => !probedFamilies.has(p.address.length));
    return aggregatePrefixes([...probed, ...covered]);
  }

  /** The facts known now (only those discovery owns); logs and forwards them when they changed. */
  private recompute(): Partial<ClusterFacts> {
    const { fixed } = this.options;
    const facts: Partial<ClusterFacts> = {};
    const rejected: Rejected[] = [];
    if (!fixed.podCidrs) {
      const pods = this.podCidrs(rejected);
      if (pods !== undefined) facts.podCidrs = pods;
    }
    if (!fixed.serviceCidrs) {
      const services = this.serviceCidrs();
      if (services !== undefined) facts.serviceCidrs = services;
    }
    if (!fixed.dns && this.kubeDns?.synced) facts.dns = this.dns();
    if (!fixed.clusterDomain && this.clusterDomain !== undefined) facts.clusterDomain = this.clusterDomain;
    if (this.nodes?.synced && !this.nodesForbidden) facts.nodeAddresses = nodeAddresses(this.nodes.items(), rejected);
    if (this.namespaces?.synced && !this.namespacesForbidden) {
      const { names, dropped } = namespaceNames(this.namespaces.items(), MAX_NAMESPACES, rejected);
      if (dropped > 0 && this.last.namespaces?.length !== names.length) {
        this.log.warn('more namespaces than clients are sent; the rest are not routed to the cluster DNS by their short name', { max: MAX_NAMESPACES, dropped });
      }
      facts.namespaces = names;
    }
    if (rejected.length > 0) this.log.warn('ignored values that are not IPs or CIDRs', { rejected: rejected.slice(0, 10) });
    const described = (f: Partial<ClusterFacts>): string =>
      JSON.stringify([formatList(f.podCidrs), formatList(f.serviceCidrs), f.dns, f.clusterDomain, f.namespaces?.length, f.nodeAddresses?.map(formatIp)]);
    if (described(facts) !== described(this.last)) {
      this.log.info('cluster networking discovered', {
        podCidrs: facts.podCidrs?.map(formatPrefix),
        serviceCidrs: facts.serviceCidrs?.map(formatPrefix),
        dns: facts.dns,
        clusterDomain: facts.clusterDomain,
        namespaces: facts.namespaces?.length,
        nodeAddresses: facts.nodeAddresses?.map(formatIp),
      });
    }
    this.last = facts;
    return facts;
  }

  private changed(): void {
    if (this.stopped) return;
    const facts = this.recompute();
    this.target?.update(facts);
    this.wake?.();
  }
}
