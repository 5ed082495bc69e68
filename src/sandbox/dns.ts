// DNS of the sandbox outside the cluster, as configuration text: the upstream resolver (dnsmasq in the node
// namespace, answering for upstream.test) and the resolv.conf files of the workstation and the node. The
// cluster DNS is a pod (cluster-dns/), fed from the API.

import type { SandboxConfig } from './sandbox-config.js';

/** TTL of every record, as CoreDNS's kubernetes plugin gives by default. */
export const RECORD_TTL_S = 30;

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
