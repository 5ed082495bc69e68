// DNS of the sandbox, as configuration text: the cluster DNS (dnsmasq in the coredns pod, answering for
// cluster.local from the sandbox's service and pod list), the upstream resolver (dnsmasq in the node namespace,
// answering for upstream.test) and the resolv.conf files of the workstation, the node and the pods.

import { parsePrefix } from '../netstack/wire/ip-address.js';
import type { SandboxConfig, SandboxPod } from './sandbox-config.js';

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

/** Kubernetes' pod A/AAAA record name: `10-244-0-11.default.pod.cluster.local`, `fd10-244--11.…`. */
export function podRecordName(config: SandboxConfig, pod: SandboxPod, address: string): string {
  return `${address.replace(/[.:]/g, '-')}.${pod.namespace}.pod.${config.clusterDomain}`;
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

/** dnsmasq configuration of the cluster DNS running in `pod`. */
export function clusterDnsConfig(config: SandboxConfig, pod: SandboxPod): string {
  const domain = config.clusterDomain;
  const lines = [
    `# kubetun sandbox ${config.name}: cluster DNS (the kube-dns Service's pod). Generated; rewritten by sandbox up.`,
    ...commonDnsmasqLines(),
    `listen-address=${pod.ipv4},${pod.ipv6}`,
    // Names under the cluster domain and the cluster's reverse zones are answered from the records below only:
    // an unknown name is NXDOMAIN at once, never forwarded.
    `local=/${domain}/`,
    ...[...config.podCidrs, ...config.serviceCidrs].flatMap(reverseZones).map((zone) => `local=/${zone}/`),
    // Anything else goes to the upstream resolver, as CoreDNS's `forward . /etc/resolv.conf` does.
    `server=${config.upstreamDns.addresses.ipv4}`,
  ];
  for (const service of config.services) {
    lines.push(`host-record=${service.fqdn},${service.clusterIPs.ipv4},${service.clusterIPs.ipv6}`);
    for (const port of service.ports) {
      if (port.name === undefined) continue;
      const proto = port.protocol === 'TCP' ? 'tcp' : 'udp';
      lines.push(`srv-host=_${port.name}._${proto}.${service.fqdn},${service.fqdn},${port.port},0,100`);
    }
  }
  for (const p of config.pods) {
    lines.push(`host-record=${podRecordName(config, p, p.ipv4)},${p.ipv4}`);
    lines.push(`host-record=${podRecordName(config, p, p.ipv6)},${p.ipv6}`);
  }
  return `${lines.join('\n')}\n`;
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

/** resolv.conf of a pod in Kubernetes namespace `namespace` (dnsPolicy ClusterFirst). */
export function podResolvConf(config: SandboxConfig, namespace: string): string {
  const d = config.clusterDomain;
  return `search ${namespace}.svc.${d} svc.${d} ${d}\nnameserver ${config.clusterDns.ipv4}\noptions ndots:5\n`;
}

/** resolv.conf of the workstation and the node: the upstream resolver only. */
export function upstreamResolvConf(config: SandboxConfig): string {
  return `nameserver ${config.upstreamDns.addresses.ipv4}\n`;
}
