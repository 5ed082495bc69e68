// What clients learn of the cluster besides its CIDRs, as pure functions of the informers' objects: the
// namespace names (a client sends `name.namespace` to the cluster DNS only for a real namespace) and the nodes'
// own addresses (the manager never dials them).
import type { V1Namespace, V1Node } from '@kubernetes/client-node';
import { ipKey, parseIp } from '../../netstack/wire/ip-address.js';
import type { IpAddress } from '../../netstack/wire/reprs.js';
import type { Rejected } from './pod-cidrs.js';

/** At most this many namespaces go to clients (each a DNS label of ≤ 63 bytes: ≤ 32 KiB in all). */
export const MAX_NAMESPACES = 500;

// A DNS-1123 label, what the API server demands of a namespace name; checked again so that nothing else reaches
// a client's resolver configuration whatever the server sends.
const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The namespace names, sorted, invalid ones left out, at most `max` (the first in sort order). */
export function namespaceNames(namespaces: readonly V1Namespace[], max = MAX_NAMESPACES, rejected: Rejected[] = []): { names: string[]; dropped: number } {
  const names: string[] = [];
  for (const namespace of namespaces) {
    const name = namespace.metadata?.name ?? '';
    if (NAMESPACE_NAME.test(name)) names.push(name);
    else rejected.push({ object: 'namespace', value: name });
  }
  names.sort();
  return { names: names.slice(0, max), dropped: Math.max(0, names.length - max) };
}

const NODE_ADDRESS_TYPES = new Set(['InternalIP', 'ExternalIP']);

/** The InternalIP and ExternalIP addresses of all nodes, each once, in the order first seen. */
export function nodeAddresses(nodes: readonly V1Node[], rejected: Rejected[] = []): IpAddress[] {
  const seen = new Map<string, IpAddress>();
  for (const node of nodes) {
    for (const address of node.status?.addresses ?? []) {
      if (!NODE_ADDRESS_TYPES.has(address.type)) continue;
      try {
        const ip = parseIp(address.address);
        seen.set(ipKey(ip), ip);
      } catch {
        rejected.push({ object: `node/${node.metadata?.name ?? '?'}`, value: address.address });
      }
    }
  }
  return [...seen.values()];
}
