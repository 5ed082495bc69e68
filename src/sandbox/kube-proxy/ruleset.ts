// The sandbox's service routing as one nftables table, rendered from plain data: frontends (address:port a client
// dials) DNAT to endpoints (address:port of a pod), choosing among several endpoints with `numgen random` as
// kube-proxy's nftables mode does. NAT rules see only a connection's first packet, so a connection stays with the
// endpoint it was given. After DNAT, the filter hooks refuse what no rule took: a port without endpoints, a port
// no service defines on a ClusterIP, and drop unallocated addresses of the service CIDRs, as kube-proxy does.
// Pure: the kube-proxy (kube-proxy.ts) renders through here.

import { isIPv4, isIPv6 } from 'node:net';
import { formatPrefix, parsePrefix } from '../../netstack/wire/ip-address.js';

/** The table the sandbox's service routing lives in. */
export const NFT_TABLE = 'kubetun_sandbox';

export type L4Protocol = 'tcp' | 'udp' | 'sctp';

export interface ProxyAddressPort {
  address: string;
  port: number;
}

/** One service port: everything that dials one of `frontends` with `protocol` reaches one of `endpoints`. */
export interface ProxyService {
  /** Prefix of its chains' names (letters, digits, '-', '.', '_'), unique in the ruleset, e.g. `svc-default-echo-tcp-80`. */
  name: string;
  protocol: L4Protocol;
  /** ClusterIPs with the service port, node addresses with the node port; IPv4 and IPv6 mixed. */
  frontends: readonly ProxyAddressPort[];
  /** Ready endpoints, both families mixed; a frontend uses those of its own family. */
  endpoints: readonly ProxyAddressPort[];
}

/** The service address space, which the filter hooks guard beyond the services' own ports. */
export interface ClusterIPSpace {
  /** Every allocated ClusterIP, both families: a port its service does not define is refused at once. */
  clusterIPs: readonly string[];
  /** The service CIDRs: their other addresses are dropped, as no one owns them (none: no such rule). */
  serviceCidrs: readonly string[];
}

type Family = 'ipv4' | 'ipv6';

const NFT_IP: Readonly<Record<Family, string>> = { ipv4: 'ip', ipv6: 'ip6' };

function familyOf(address: string): Family {
  if (isIPv4(address)) return 'ipv4';
  if (isIPv6(address)) return 'ipv6';
  throw new Error(`"${address}" is not an IP address`);
}

function target(ep: ProxyAddressPort, family: Family): string {
  return family === 'ipv4' ? `${ep.address}:${ep.port}` : `[${ep.address}]:${ep.port}`;
}

function match(frontend: ProxyAddressPort, family: Family, protocol: L4Protocol): string {
  return `${NFT_IP[family]} daddr ${frontend.address} ${protocol} dport ${frontend.port}`;
}

/** Emits one service's chains, its dispatch rules, and reject rules for the frontends of a family without endpoints. */
function renderService(out: { dispatch: string[]; rejects: string[]; chains: string[] }, service: ProxyService): void {
  for (const family of ['ipv4', 'ipv6'] as const) {
    const frontends = service.frontends.filter((f) => familyOf(f.address) === family);
    if (frontends.length === 0) continue;
    const endpoints = service.endpoints.filter((e) => familyOf(e.address) === family);
    if (endpoints.length === 0) {
      // As kube-proxy does: a service without ready endpoints refuses at once instead of timing out.
      const how = service.protocol === 'tcp' ? 'reject with tcp reset' : 'reject';
      for (const f of frontends) out.rejects.push(`${match(f, family, service.protocol)} ${how}`);
      continue;
    }
    const chain = `${service.name}-${family}`;
    for (const f of frontends) out.dispatch.push(`${match(f, family, service.protocol)} goto ${chain}`);
    const endpointChains = endpoints.map((ep, i) => {
      const name = `${chain}-ep${i}`;
      out.chains.push(`  chain ${name} {\n    meta l4proto ${service.protocol} dnat ${NFT_IP[family]} to ${target(ep, family)}\n  }`);
      return name;
    });
    const pick =
      endpointChains.length === 1
        ? `goto ${endpointChains[0]}`
        : `numgen random mod ${endpointChains.length} vmap { ${endpointChains.map((c, i) => `${i} : goto ${c}`).join(', ')} }`;
    out.chains.push(`  chain ${chain} {\n    ${pick}\n  }`);
  }
}

/**
 * The ClusterIP sets and the `cluster-ips-check` chain. Otherwise an undefined port of a ClusterIP follows the
 * node's route for the service CIDR onto the bridge, where no one owns the address, and fails only when the
 * neighbour lookup gives up (about 3 s).
 */
function renderClusterIPsCheck(space: ClusterIPSpace): string[] {
  const lines: string[] = [];
  const checks: string[] = [];
  for (const family of ['ipv4', 'ipv6'] as const) {
    const ips = [...new Set(space.clusterIPs.filter((ip) => familyOf(ip) === family))];
    const set = `cluster-ips-${family === 'ipv4' ? 'v4' : 'v6'}`;
    lines.push(`  set ${set} {`, `    type ${family}_addr`, ...(ips.length > 0 ? [`    elements = { ${ips.join(', ')} }`] : []), '  }');
    checks.push(`    ${NFT_IP[family]} daddr @${set} meta l4proto tcp reject with tcp reset`, `    ${NFT_IP[family]} daddr @${set} reject`);
  }
  for (const cidr of space.serviceCidrs) {
    const prefix = parsePrefix(cidr);
    checks.push(`    ${prefix.address.length === 4 ? 'ip' : 'ip6'} daddr ${formatPrefix(prefix)} drop`);
  }
  return [...lines, '  chain cluster-ips-check {', ...checks, '  }'];
}

/**
 * The whole table `inet <table>`, as text for `nft -f -`: it replaces any previous version of the table (and
 * nothing else) in one transaction, so connections never see a half-loaded ruleset.
 */
export function renderRuleset(table: string, services: readonly ProxyService[], space: ClusterIPSpace): string {
  const names = new Set<string>();
  for (const s of services) {
    if (!/^[A-Za-z][A-Za-z0-9._-]*$/.test(s.name)) throw new Error(`"${s.name}" cannot name an nftables chain`);
    if (names.has(s.name)) throw new Error(`two services are both named "${s.name}" in the ruleset`);
    names.add(s.name);
  }
  const out = { dispatch: [] as string[], rejects: [] as string[], chains: [] as string[] };
  for (const service of services) renderService(out, service);
  // A pod that reaches itself through a service would get a packet from its own address, which it drops as a
  // martian: masquerade that case only, as kube-proxy's hairpin rule does.
  const endpointAddresses = [...new Set(services.flatMap((s) => s.endpoints.map((e) => e.address)))];
  const hairpin = endpointAddresses.map((address) => {
    const ip = NFT_IP[familyOf(address)];
    return `    ct status dnat ${ip} saddr ${address} ${ip} daddr ${address} masquerade`;
  });
  return [
    `table inet ${table}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    jump services',
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    '    jump services',
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...hairpin,
    '  }',
    // The node routes pod-to-pod traffic back out of the bridge; a redirect would let pods bypass its conntrack.
    '  chain no-redirects {',
    '    type filter hook output priority filter; policy accept;',
    '    icmp type redirect drop',
    '    icmpv6 type nd-redirect drop',
    '  }',
    // Filter hooks run after DNAT: a packet still addressed to a frontend here had no endpoint to go to, and one
    // still addressed to a ClusterIP went to a port no service defines. Node addresses are not ClusterIPs: their
    // other ports stay the node's own. Like kube-proxy's, the ClusterIP check sees only new connections.
    '  chain filter-input {',
    '    type filter hook input priority filter; policy accept;',
    '    jump no-endpoints',
    '  }',
    '  chain filter-forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    jump no-endpoints',
    '    ct state new jump cluster-ips-check',
    '  }',
    '  chain filter-output {',
    '    type filter hook output priority filter; policy accept;',
    '    jump no-endpoints',
    '    ct state new jump cluster-ips-check',
    '  }',
    '  chain no-endpoints {',
    ...out.rejects.map((line) => `    ${line}`),
    '  }',
    ...renderClusterIPsCheck(space),
    '  chain services {',
    ...out.dispatch.map((line) => `    ${line}`),
    '  }',
    ...out.chains,
    '}',
    '',
  ].join('\n');
}
