// The cluster's networking facts and their changes. Here they come from flags or the environment
// (Telepresence's `podCIDRStrategy: environment`); a Kubernetes watcher calls `update` the same way.

import { EventEmitter } from 'node:events';
import { formatIp, formatPrefix, type IpPrefix } from '../netstack/wire/ip-address.js';
import type { IpAddress } from '../netstack/wire/reprs.js';

export interface ClusterFacts {
  podCidrs: IpPrefix[];
  serviceCidrs: IpPrefix[];
  /** The cluster DNS server; undefined when the manager has none to forward to. */
  dns: DnsServerAddress | undefined;
  /** e.g. `cluster.local`, without dots at either end. */
  clusterDomain: string;
  /** The cluster's namespaces, sent to clients for DNS routing; undefined when not discovered. */
  namespaces?: string[];
  /** The nodes' own addresses, which the manager never dials; undefined when not discovered. */
  nodeAddresses?: IpAddress[];
}

export interface DnsServerAddress {
  ip: string;
  port: number;
}

export interface ClusterSnapshot {
  facts: ClusterFacts;
  /** Increases by one on every change. */
  revision: number;
}

export function sameFacts(a: ClusterFacts, b: ClusterFacts): boolean {
  const cidrs = (list: IpPrefix[]): string => list.map(formatPrefix).join(',');
  // undefined (not discovered) differs from an empty list.
  const names = (list: string[] | undefined): string | undefined => list?.join(',');
  const addresses = (list: IpAddress[] | undefined): string | undefined => list?.map(formatIp).join(',');
  return (
    names(a.namespaces) === names(b.namespaces) &&
    addresses(a.nodeAddresses) === addresses(b.nodeAddresses) &&
    cidrs(a.podCidrs) === cidrs(b.podCidrs) &&
    cidrs(a.serviceCidrs) === cidrs(b.serviceCidrs) &&
    a.dns?.ip === b.dns?.ip &&
    a.dns?.port === b.dns?.port &&
    a.clusterDomain === b.clusterDomain
  );
}

export class ClusterInfoSource extends EventEmitter<{ change: [snapshot: ClusterSnapshot] }> {
  private snapshot: ClusterSnapshot;

  constructor(initial: ClusterFacts) {
    super();
    this.snapshot = { facts: initial, revision: 1 };
    // Every WatchClusterInfo stream listens here.
    this.setMaxListeners(0);
  }

  current(): ClusterSnapshot {
    return this.snapshot;
  }

  /** Applies a change; watchers hear of it only when a fact actually changed. */
  update(change: Partial<ClusterFacts>): void {
    const facts = { ...this.snapshot.facts, ...change };
    if (sameFacts(facts, this.snapshot.facts)) return;
    this.snapshot = { facts, revision: this.snapshot.revision + 1 };
    this.emit('change', this.snapshot);
  }
}
