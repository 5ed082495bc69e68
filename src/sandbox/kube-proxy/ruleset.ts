// The sandbox's service routing as one nftables table, rendered from plain data: frontends (address:port a client
// dials) DNAT to endpoints (address:port of a pod), choosing among several endpoints with `numgen random` as
// kube-proxy's nftables mode does. NAT rules see only a connection's first packet, so a connection stays with the
// endpoint it was given. Pure: the static sandbox (services.ts) and the API-driven kube-proxy (proxier.ts) both
// render through here.

import { isIPv4, isIPv6 } from 'node:net';

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
 * The whole table `inet <table>`, as text for `nft -f -`: it replaces any previous version of the table (and
 * nothing else) in one transaction, so connections never see a half-loaded ruleset.
 */
export function renderRuleset(table: string, services: readonly ProxyService[]): string {
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
    // Filter hooks run after DNAT: a packet still addressed to a frontend here had no endpoint to go to.
    '  chain filter-input {',
    '    type filter hook input priority filter; policy accept;',
    '    jump no-endpoints',
    '  }',
    '  chain filter-forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    jump no-endpoints',
    '  }',
    '  chain filter-output {',
    '    type filter hook output priority filter; policy accept;',
    '    jump no-endpoints',
    '  }',
    '  chain no-endpoints {',
    ...out.rejects.map((line) => `    ${line}`),
    '  }',
    '  chain services {',
    ...out.dispatch.map((line) => `    ${line}`),
    '  }',
    ...out.chains,
    '}',
    '',
  ].join('\n');
}
