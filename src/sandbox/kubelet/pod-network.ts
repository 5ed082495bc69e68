// A pod's network, plugged into the node's bridge as the sandbox's own pods are (network.ts): a namespace, a
// veth whose pod end is eth0, host addresses (/32, /128) and on-link default routes to the gateways, which are
// the first hosts of the pod CIDRs on the bridge. The kubelet runs in the node namespace, so node-side commands
// need no `-n`.

import { runCommand } from '../host-commands.js';
import { deleteNamespaces } from '../network.js';
import { removeNetnsFolder, writeNetnsEtcFile } from '../etc-netns.js';
import { parsePrefix } from '../../netstack/wire/ip-address.js';
import { gatewayOf } from './ipam.js';

const POD_INTERFACE = 'eth0';

async function ipBatch(netns: string | null, lines: readonly string[]): Promise<void> {
  const args = netns === null ? ['-batch', '-'] : ['-n', netns, '-batch', '-'];
  await runCommand('ip', args, { input: `${lines.join('\n')}\n` });
}

const isV6 = (address: string): boolean => address.includes(':');

/** Throws, saying what to do, unless `bridge` is a bridge in this network namespace. */
export async function requireBridge(bridge: string): Promise<void> {
  const shown = await runCommand('ip', ['-j', '-d', 'link', 'show', 'dev', bridge], { allowFailure: true });
  const kind = shown.code === 0 ? (JSON.parse(shown.stdout) as { linkinfo?: { info_kind?: string } }[])[0]?.linkinfo?.info_kind : undefined;
  if (shown.code !== 0) {
    throw new Error(`the bridge ${bridge} does not exist in the kubelet's network namespace: create it (ip link add ${bridge} type bridge) or fix --bridge`);
  }
  if (kind !== 'bridge') throw new Error(`${bridge} is a ${kind ?? 'plain'} interface, not a bridge: give --bridge the node's pod bridge`);
}

/** Adds each pod CIDR's gateway address to the bridge unless it is there already. */
export async function ensureGateways(bridge: string, podCidrs: readonly string[]): Promise<string[]> {
  const shown = await runCommand('ip', ['-j', 'addr', 'show', 'dev', bridge]);
  const info = JSON.parse(shown.stdout) as { addr_info?: { local?: string }[] }[];
  const present = new Set(info.flatMap((i) => (i.addr_info ?? []).map((a) => a.local)));
  const gateways = podCidrs.map((cidr) => ({ gateway: gatewayOf(parsePrefix(cidr)), length: parsePrefix(cidr).length }));
  const missing = gateways.filter((g) => !present.has(g.gateway));
  if (missing.length > 0) {
    await ipBatch(
      null,
      missing.map((g) => `addr add ${g.gateway}/${g.length} dev ${bridge}${isV6(g.gateway) ? ' nodad' : ''}`),
    );
  }
  await runCommand('ip', ['link', 'set', bridge, 'up']);
  return gateways.map((g) => g.gateway);
}

export interface PodNetwork {
  netns: string;
  nodeVeth: string;
  bridge: string;
  addresses: string[];
  gateways: string[];
  resolvConf: string;
  hosts: string;
}

/** (Re)creates the pod's namespace, veth, addresses, routes and /etc/netns files. */
export async function createPodNetwork(net: PodNetwork): Promise<void> {
  await removePodNetwork(net.netns, net.nodeVeth);
  writeNetnsEtcFile(net.netns, 'resolv.conf', net.resolvConf);
  writeNetnsEtcFile(net.netns, 'hosts', net.hosts);
  await runCommand('ip', ['netns', 'add', net.netns]);
  await ipBatch(null, [
    `link add ${net.nodeVeth} type veth peer name ${POD_INTERFACE} netns ${net.netns}`,
    `link set ${net.nodeVeth} master ${net.bridge}`,
    `link set ${net.nodeVeth} up`,
    // A pod rebuilt with the same address has a new MAC: the node's old neighbour entry would hold the old one.
    ...net.addresses.map((a) => `neigh flush to ${a}`),
  ]);
  const gatewayFor = (address: string): string => net.gateways.find((g) => isV6(g) === isV6(address)) ?? net.gateways[0]!;
  await ipBatch(net.netns, [
    'link set lo up',
    ...net.addresses.map((a) => `addr add ${a}/${isV6(a) ? 128 : 32} dev ${POD_INTERFACE}${isV6(a) ? ' nodad' : ''}`),
    `link set ${POD_INTERFACE} up`,
    ...net.addresses.map((a) => `route add default via ${gatewayFor(a)} dev ${POD_INTERFACE} onlink`),
  ]);
}

/** Deletes the pod's namespace (which takes the veth pair with it), a leftover node-side veth and /etc/netns files. */
export async function removePodNetwork(netns: string, nodeVeth: string | null): Promise<void> {
  await deleteNamespaces([netns]);
  if (nodeVeth !== null) {
    const shown = await runCommand('ip', ['link', 'show', nodeVeth], { allowFailure: true });
    if (shown.code === 0) await runCommand('ip', ['link', 'del', nodeVeth], { allowFailure: true });
  }
  removeNetnsFolder(netns);
}
