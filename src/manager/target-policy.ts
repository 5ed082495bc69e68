// What the manager may dial: the cluster's pod and service CIDRs (as they are now) plus what the operator
// allowed. Anything else is refused before any packet leaves, so the manager is not an open proxy.

import { formatPrefix, parseIp, prefixContains, type IpPrefix } from '../netstack/wire/ip-address.js';
import type { IpAddress } from '../netstack/wire/reprs.js';
import type { ClusterInfoSource } from './cluster-info-source.js';

export type TargetVerdict = { allowed: true; address: IpAddress } | { allowed: false; message: string };

export class TargetPolicy {
  constructor(
    private readonly cluster: ClusterInfoSource,
    private readonly extra: readonly IpPrefix[],
  ) {}

  check(host: string): TargetVerdict {
    let address: IpAddress;
    try {
      address = parseIp(host);
    } catch {
      return { allowed: false, message: `"${host}" is not an IP address; the traffic manager dials addresses only.` };
    }
    const { facts } = this.cluster.current();
    for (const list of [facts.podCidrs, facts.serviceCidrs, this.extra]) {
      for (const prefix of list) if (prefixContains(prefix, address)) return { allowed: true, address };
    }
    const allowed = [...facts.podCidrs, ...facts.serviceCidrs, ...this.extra].map(formatPrefix).join(', ');
    return {
      allowed: false,
      message: `${host} is outside the cluster's CIDRs and the allowed ones (${allowed || 'none'}); add it with --allow.`,
    };
  }
}
