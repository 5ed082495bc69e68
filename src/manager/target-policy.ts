// What the manager may dial: the cluster's pod and service CIDRs (as they are now) plus what the operator
// allowed. Anything else is refused before any packet leaves, so the manager is not an open proxy. Some
// addresses are refused whatever the CIDRs or --allow say: loopback, unspecified, link-local (the cloud's
// metadata service), multicast and broadcast, the manager's own addresses and the nodes' (their kubelet and
// host services), in IPv4, IPv6 and the IPv6 forms that carry an IPv4 address.

import { networkInterfaces } from 'node:os';
import { formatIp, formatPrefix, ipEquals, parseIp, parsePrefix, prefixContains, type IpPrefix } from '../netstack/wire/ip-address.js';
import type { IpAddress } from '../netstack/wire/reprs.js';
import type { ClusterInfoSource } from './cluster-info-source.js';

export type TargetVerdict = { allowed: true; address: IpAddress } | { allowed: false; message: string };

/** Ranges never dialed, with what they are. */
const NEVER: readonly { prefix: IpPrefix; what: string }[] = [
  ['0.0.0.0/8', 'unspecified ("this network")'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (the metadata service lives there)'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['fe80::/10', 'link-local'],
  ['ff00::/8', 'multicast'],
].map(([text, what]) => ({ prefix: parsePrefix(text!), what: what! }));

/** IPv6 prefixes whose last 32 bits are an IPv4 address the kernel or a NAT64 gateway dials. */
const CARRIES_IPV4: readonly IpPrefix[] = ['::ffff:0:0/96', '64:ff9b::/96', '::/96'].map(parsePrefix);

const LOOPBACK: readonly IpPrefix[] = ['127.0.0.0/8', '::1/128'].map(parsePrefix);

/** Every address of this host's (the pod's) interfaces, and POD_IP when it is set. */
export function ownAddresses(env: Record<string, string | undefined> = process.env): IpAddress[] {
  const texts = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
  if (env.POD_IP) texts.push(env.POD_IP);
  const addresses: IpAddress[] = [];
  for (const text of texts) {
    try {
      addresses.push(parseIp(text.split('%')[0]!));
    } catch {
      // Not an address we could be asked to dial in the form clients send (a zone we do not parse).
    }
  }
  return addresses;
}

export interface TargetPolicyOptions {
  /** The manager's own addresses (ownAddresses()). */
  own: readonly IpAddress[];
  /**
   * Lets in-process tests reach target servers on this host's loopback. No flag or environment variable sets
   * it: a manager run by `kubetun traffic-manager` never dials loopback.
   */
  loopbackForTests?: boolean;
}

export class TargetPolicy {
  constructor(
    private readonly cluster: ClusterInfoSource,
    private readonly extra: readonly IpPrefix[],
    private readonly options: TargetPolicyOptions,
  ) {}

  check(host: string): TargetVerdict {
    let address: IpAddress;
    try {
      address = parseIp(host);
    } catch {
      return { allowed: false, message: `"${host}" is not an IP address; the traffic manager dials addresses only.` };
    }
    const never = this.neverDialed(address);
    if (never !== undefined) {
      return { allowed: false, message: `${host} is ${never}: the traffic manager never dials it, whatever --allow says.` };
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

  /** What the address is when it is on the hard deny list; undefined otherwise. */
  private neverDialed(address: IpAddress): string | undefined {
    if (this.options.loopbackForTests === true && LOOPBACK.some((prefix) => prefixContains(prefix, address))) {
      return undefined;
    }
    const range = NEVER.find((entry) => prefixContains(entry.prefix, address));
    if (range !== undefined) return `${range.what} (${formatPrefix(range.prefix)})`;
    if (this.options.own.some((own) => ipEquals(own, address))) return "the traffic manager's own address";
    const nodes = this.cluster.current().facts.nodeAddresses ?? [];
    if (nodes.some((node) => ipEquals(node, address))) return "a node's address";
    const carrier = CARRIES_IPV4.find((prefix) => prefixContains(prefix, address));
    if (carrier === undefined) return undefined;
    const ipv4 = address.subarray(12);
    const why = this.neverDialed(ipv4);
    return why === undefined ? undefined : `${why}, as ${formatIp(ipv4)} inside ${formatPrefix(carrier)}`;
  }
}
