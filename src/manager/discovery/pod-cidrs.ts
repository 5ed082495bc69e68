// Pod CIDR strategies (Telepresence's podCIDRStrategy), as pure functions of the objects the informers hold:
// `nodePodCIDRs` takes the nodes' spec.podCIDRs, `coverPodIPs` covers the IPs of the pods, `auto` takes the node
// CIDRs when they hold the manager's own pod IP (proof that the CNI really uses them) and covers pod IPs otherwise.
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { parseIp, parsePrefix, prefixContains, type IpPrefix } from '../../netstack/wire/ip-address.js';
import type { IpAddress } from '../../netstack/wire/reprs.js';
import { aggregatePrefixes, coverIps } from './covering.js';

export const POD_CIDR_STRATEGIES = ['auto', 'nodePodCIDRs', 'coverPodIPs', 'environment'] as const;
export type PodCidrStrategy = (typeof POD_CIDR_STRATEGIES)[number];

export function isPodCidrStrategy(text: string): text is PodCidrStrategy {
  return (POD_CIDR_STRATEGIES as readonly string[]).includes(text);
}

/** What a text field held that was not an IP or CIDR, for the log. */
export interface Rejected {
  object: string;
  value: string;
}

function parseOr<T>(parse: (t: string) => T, text: string, object: string, rejected: Rejected[]): T | undefined {
  try {
    return parse(text);
  } catch {
    rejected.push({ object, value: text });
    return undefined;
  }
}

/** The aggregated spec.podCIDRs (or the older single spec.podCIDR) of all nodes. */
export function nodePodCidrs(nodes: readonly V1Node[], rejected: Rejected[] = []): IpPrefix[] {
  const prefixes: IpPrefix[] = [];
  for (const node of nodes) {
    const texts = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
    for (const text of texts) {
      const p = parseOr(parsePrefix, text, `node/${node.metadata?.name ?? '?'}`, rejected);
      if (p) prefixes.push(p);
    }
  }
  return aggregatePrefixes(prefixes);
}

/**
 * The IPs of the pods that use the pod network: kube-system pods (often host network or special addresses) and
 * hostNetwork pods (they carry the node's IP) are left out.
 */
export function podNetworkIps(pods: readonly V1Pod[], rejected: Rejected[] = []): IpAddress[] {
  const ips: IpAddress[] = [];
  for (const pod of pods) {
    if (pod.metadata?.namespace === 'kube-system' || pod.spec?.hostNetwork === true) continue;
    const status = pod.status;
    const texts = status?.podIPs?.length ? status.podIPs.map((p) => p.ip) : status?.podIP ? [status.podIP] : [];
    for (const text of texts) {
      const ip = parseOr(parseIp, text, `pod/${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? '?'}`, rejected);
      if (ip) ips.push(ip);
    }
  }
  return ips;
}

export function coverPodIps(pods: readonly V1Pod[], rejected: Rejected[] = []): IpPrefix[] {
  return coverIps(podNetworkIps(pods, rejected));
}

/**
 * `auto`'s choice from the node CIDRs: use them when they hold the manager's own pod IP; without a pod IP (the
 * manager runs outside a pod) any node CIDR at all is taken as good enough.
 */
export function nodeCidrsUsable(nodeCidrs: readonly IpPrefix[], ownPodIp: IpAddress | undefined): boolean {
  if (nodeCidrs.length === 0) return false;
  return ownPodIp === undefined || nodeCidrs.some((p) => prefixContains(p, ownPodIp));
}
