// Finding the service CIDRs, best source first: the ServiceCIDR API (networking.k8s.io, Kubernetes ≥ 1.31), the
// API server's own answer to a Service with an impossible ClusterIP (refused, so nothing is created), and last the
// ClusterIPs that services actually have, covered like pod IPs.
import type { KubernetesObject, V1Service } from '@kubernetes/client-node';
import { kubeApiRequest, type KubeAccess } from '../../k8s/resilient-informer.js';
import { parseIp, parsePrefix, type IpPrefix } from '../../netstack/wire/ip-address.js';
import type { IpAddress } from '../../netstack/wire/reprs.js';
import { aggregatePrefixes, coverIps } from './covering.js';

/** A ServiceCIDR object (networking.k8s.io/v1 or v1beta1): spec.cidrs holds one CIDR per family. */
export interface ServiceCidrObject extends KubernetesObject {
  spec?: { cidrs?: string[] };
}

/** The CIDRs named after "The range of valid IPs is" in the API server's rejection of a ClusterIP. */
export function parseValidRanges(message: string): IpPrefix[] {
  const at = message.indexOf('The range of valid IPs is');
  if (at < 0) return [];
  const tail = message.slice(at + 'The range of valid IPs is'.length);
  const prefixes: IpPrefix[] = [];
  for (const match of tail.matchAll(/[0-9a-fA-F.:]+\/[0-9]{1,3}/g)) {
    try {
      prefixes.push(parsePrefix(match[0]));
    } catch {
      // Not a CIDR after all (e.g. a version number): skip it.
    }
  }
  return aggregatePrefixes(prefixes);
}

/** The ClusterIPs of services ("None" of headless services and empty ones skipped). */
export function serviceClusterIps(services: readonly V1Service[]): IpAddress[] {
  const ips: IpAddress[] = [];
  for (const service of services) {
    const texts = service.spec?.clusterIPs?.length ? service.spec.clusterIPs : service.spec?.clusterIP ? [service.spec.clusterIP] : [];
    for (const text of texts) {
      if (text === 'None' || text === '') continue;
      try {
        ips.push(parseIp(text));
      } catch {
        // An address the API server accepted but we cannot read: it cannot be routed either.
      }
    }
  }
  return ips;
}

export function coverClusterIps(services: readonly V1Service[]): IpPrefix[] {
  return coverIps(serviceClusterIps(services));
}

export function serviceCidrsFromObjects(objects: readonly ServiceCidrObject[]): IpPrefix[] {
  const prefixes: IpPrefix[] = [];
  for (const o of objects) {
    if (o.metadata?.deletionTimestamp) continue;
    for (const text of o.spec?.cidrs ?? []) {
      try {
        prefixes.push(parsePrefix(text));
      } catch {
        // A malformed object cannot be routed; the others still count.
      }
    }
  }
  return aggregatePrefixes(prefixes);
}

interface ApiGroup {
  versions?: { version: string }[];
  preferredVersion?: { version: string };
}

interface ApiResourceList {
  resources?: { name: string; verbs?: string[] }[];
}

/**
 * The collection path of the ServiceCIDR API if the server serves it (found by API discovery, preferred version
 * first), else undefined.
 */
export async function findServiceCidrApi(kubeConfig: KubeAccess): Promise<string | undefined> {
  const group = await kubeApiRequest(kubeConfig, { method: 'GET', path: '/apis/networking.k8s.io' });
  if (group.statusCode === 404) return undefined;
  if (group.statusCode !== 200) throw new Error(`API discovery of networking.k8s.io: ${group.statusCode}: ${group.message}`);
  const body = group.body as ApiGroup;
  const versions = (body.versions ?? []).map((v) => v.version);
  const preferred = body.preferredVersion?.version;
  const ordered = preferred ? [preferred, ...versions.filter((v) => v !== preferred)] : versions;
  for (const version of ordered) {
    const list = await kubeApiRequest(kubeConfig, { method: 'GET', path: `/apis/networking.k8s.io/${version}` });
    if (list.statusCode !== 200) continue;
    if ((list.body as ApiResourceList).resources?.some((r) => r.name === 'servicecidrs')) {
      return `/apis/networking.k8s.io/${version}/servicecidrs`;
    }
  }
  return undefined;
}

// ClusterIPs no cluster would use for services: an IPv4 public resolver address and an IPv6 global unicast one.
export const PROBE_CLUSTER_IPS = { 4: '1.1.1.1', 6: '2001:4860:4860::8888' } as const;

export type ProbeResult = { ranges: IpPrefix[] } | { failure: string };

/**
 * Asks the API server for its service range by creating a Service with a ClusterIP outside any plausible range;
 * the 422 names the valid range. First as a dry run (nothing stored); servers that skip IP allocation in dry runs
 * (before Kubernetes 1.23 or so) accept that, so then for real: the invalid IP makes the create fail, and should it
 * succeed after all the Service is deleted at once.
 */
export async function probeServiceCidrs(kubeConfig: KubeAccess, namespace: string, family: 4 | 6): Promise<ProbeResult> {
  const clusterIP = PROBE_CLUSTER_IPS[family];
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/services`;
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    // generateName: a Service of the same name that already exists must not turn the probe into a 409.
    metadata: { generateName: 'kubetun-service-cidr-probe-', namespace },
    spec: { clusterIP, ports: [{ port: 443, protocol: 'TCP' }] },
  };
  let answer = await kubeApiRequest(kubeConfig, { method: 'POST', path: `${path}?dryRun=All`, body: service });
  if (answer.statusCode === 200 || answer.statusCode === 201) {
    answer = await kubeApiRequest(kubeConfig, { method: 'POST', path, body: service });
    if (answer.statusCode === 200 || answer.statusCode === 201) {
      const name = (answer.body as { metadata?: { name?: string } }).metadata?.name ?? '';
      const removed = await kubeApiRequest(kubeConfig, { method: 'DELETE', path: `${path}/${encodeURIComponent(name)}` });
      const left = removed.statusCode === 200 || removed.statusCode === 404 ? '' : `; delete Service ${namespace}/${name} by hand (${removed.message})`;
      return { failure: `the API server accepted ClusterIP ${clusterIP}, so its range is unknown${left}` };
    }
  }
  const ranges = parseValidRanges(answer.message);
  if (ranges.length > 0) return { ranges };
  return { failure: `the Service with ClusterIP ${clusterIP} in namespace ${namespace} was refused with ${answer.statusCode}: ${answer.message}` };
}
