// The sandbox's kube-proxy: one nftables table in the node namespace that DNATs ClusterIPs (and the node ports)
// to pod endpoints, choosing among several endpoints with `numgen random` as kube-proxy's nftables mode does.
// NAT rules see only a connection's first packet, so a connection stays with the endpoint it was given.

import { runCommand } from './host-commands.js';
import { podsOf, type Protocol, type SandboxConfig, type SandboxPod } from './sandbox-config.js';

export const NFT_TABLE = 'kubetun_sandbox';

type Family = 'ipv4' | 'ipv6';

interface Endpoint {
  pod: SandboxPod;
  port: number;
}

function addressOf(pod: SandboxPod, family: Family): string {
  return family === 'ipv4' ? pod.ipv4 : pod.ipv6;
}

function endpointTarget(address: string, port: number, family: Family): string {
  return family === 'ipv4' ? `${address}:${port}` : `[${address}]:${port}`;
}

function l4(protocol: Protocol): 'tcp' | 'udp' {
  return protocol === 'TCP' ? 'tcp' : 'udp';
}

/**
 * Emits the chains for one frontend (address, protocol, port): a match in `services` that jumps to a chain
 * picking an endpoint, and one chain per endpoint that DNATs.
 */
function frontend(
  out: { dispatch: string[]; chains: string[] },
  chainBase: string,
  family: Family,
  address: string,
  protocol: Protocol,
  port: number,
  endpoints: readonly Endpoint[],
): void {
  const proto = l4(protocol);
  const match = `${family === 'ipv4' ? 'ip' : 'ip6'} daddr ${address} ${proto} dport ${port}`;
  if (endpoints.length === 0) return;
  const chain = `${chainBase}-${family}`;
  out.dispatch.push(`${match} goto ${chain}`);
  const endpointChains = endpoints.map((ep, i) => {
    const name = `${chain}-ep${i}`;
    const nat = family === 'ipv4' ? 'ip' : 'ip6';
    out.chains.push(
      `  chain ${name} {\n    meta l4proto ${proto} dnat ${nat} to ${endpointTarget(addressOf(ep.pod, family), ep.port, family)}\n  }`,
    );
    return name;
  });
  const pick =
    endpointChains.length === 1
      ? `goto ${endpointChains[0]}`
      : `numgen random mod ${endpointChains.length} vmap { ${endpointChains.map((c, i) => `${i} : goto ${c}`).join(', ')} }`;
  out.chains.push(`  chain ${chain} {\n    ${pick}\n  }`);
}

/** The whole nftables table, as text for `nft -f`. Replaces any previous version of it in one transaction. */
export function servicesRuleset(config: SandboxConfig): string {
  const out = { dispatch: [] as string[], chains: [] as string[] };
  for (const service of config.services) {
    const pods = podsOf(config, service.deployment, service.namespace);
    for (const port of service.ports) {
      const endpoints = pods.map((pod) => ({ pod, port: port.targetPort }));
      const base = `svc-${service.namespace}-${service.name}-${l4(port.protocol)}-${port.port}`;
      frontend(out, base, 'ipv4', service.clusterIPs.ipv4, port.protocol, port.port, endpoints);
      frontend(out, base, 'ipv6', service.clusterIPs.ipv6, port.protocol, port.port, endpoints);
    }
  }
  for (const nodePort of config.nodePorts) {
    const service = config.services.find((s) => s.name === nodePort.service && s.namespace === nodePort.namespace);
    const pods = service === undefined ? [] : podsOf(config, service.deployment, service.namespace);
    const endpoints = pods.map((pod) => ({ pod, port: nodePort.targetPort }));
    const base = `nodeport-${l4(nodePort.protocol)}-${nodePort.port}`;
    frontend(out, base, 'ipv4', config.link.node.ipv4, nodePort.protocol, nodePort.port, endpoints);
    frontend(out, base, 'ipv6', config.link.node.ipv6, nodePort.protocol, nodePort.port, endpoints);
  }
  // A pod that reaches itself through a service would get a packet from its own address, which it drops as a
  // martian: masquerade that case only, as kube-proxy's hairpin rule does.
  const hairpin = config.pods.flatMap((pod) => [
    `    ct status dnat ip saddr ${pod.ipv4} ip daddr ${pod.ipv4} masquerade`,
    `    ct status dnat ip6 saddr ${pod.ipv6} ip6 daddr ${pod.ipv6} masquerade`,
  ]);
  return [
    `table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
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
    '  chain services {',
    ...out.dispatch.map((line) => `    ${line}`),
    '  }',
    ...out.chains,
    '}',
    '',
  ].join('\n');
}

/** Loads the table into the node namespace, replacing the previous one atomically. */
export async function applyServices(config: SandboxConfig): Promise<void> {
  await runCommand('ip', ['netns', 'exec', config.namespaces.node, 'nft', '-f', '-'], { input: servicesRuleset(config) });
}
