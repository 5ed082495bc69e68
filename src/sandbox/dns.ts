// DNS of the sandbox outside the cluster, as configuration text: the upstream resolver (dnsmasq in the node
// namespace, answering for upstream.test) and the resolv.conf files of the workstation and the node. The
// cluster DNS is a pod (cluster-dns/), fed from the API.

import { parsePrefix } from '../netstack/wire/ip-address.js';
import type { SandboxConfig } from './sandbox-config.js';

/** TTL of every record, as CoreDNS's kubernetes plugin gives by default. */
export const RECORD_TTL_S = 30;

/**
 * The reverse-DNS zones that cover `cidr` exactly: one zone when the prefix ends on an octet (IPv4) or nibble
 * (IPv6) boundary, else one per sub-prefix at the next boundary (10.96.0.0/12 → 96.10 … 111.10.in-addr.arpa).
 */
export function reverseZones(cidr: string): string[] {
  const { address, length } = parsePrefix(cidr);
  const ipv4 = address.length === 4;
  const digitBits = ipv4 ? 8 : 4;
  const digits = Math.ceil(length / digitBits);
  const spare = digits * digitBits - length;
  const values: number[] = [];
  for (let i = 0; i < digits; i++) {
    values.push(ipv4 ? address[i]! : (address[i >> 1]! >> (i % 2 === 0 ? 4 : 0)) & 0xf);
  }
  const zones: string[] = [];
  for (let n = 0; n < 1 << spare; n++) {
    const labels = [...values];
    if (digits > 0) labels[digits - 1] = labels[digits - 1]! + n;
    const text = labels.reverse().map((v) => (ipv4 ? String(v) : v.toString(16)));
    zones.push([...text, ipv4 ? 'in-addr.arpa' : 'ip6.arpa'].join('.'));
  }
  return zones;
}

function commonDnsmasqLines(): string[] {
  return [
    'port=53',
    'no-resolv',
    'no-hosts',
    'bind-interfaces',
    // Errors go to the pod's log; no pid file, the sandbox records the pid itself.
    'log-facility=-',
    'pid-file=',
    'user=nobody',
    'group=nogroup',
    `local-ttl=${RECORD_TTL_S}`,
  ];
}

/** dnsmasq configuration of the upstream resolver on the node's link addresses. */
export function upstreamDnsConfig(config: SandboxConfig): string {
  const { upstreamDns } = config;
  const lines = [
    `# kubetun sandbox ${config.name}: the workstation's upstream resolver. Generated; rewritten by sandbox up.`,
    ...commonDnsmasqLines(),
    `listen-address=${upstreamDns.addresses.ipv4},${upstreamDns.addresses.ipv6}`,
    // Every name is answered from the records below only (NXDOMAIN otherwise): nothing leaves the sandbox.
    'local=/#/',
    ...upstreamDns.records.map((r) => `host-record=${r.name},${r.ipv4},${r.ipv6}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** resolv.conf of the workstation and the node: the upstream resolver only. */
export function upstreamResolvConf(config: SandboxConfig): string {
  return `nameserver ${config.upstreamDns.addresses.ipv4}\n`;
}
