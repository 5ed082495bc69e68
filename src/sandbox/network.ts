// The sandbox's own network: namespaces, the workstation–node veth and the node's pod bridge (the kubelets plug
// their pods into it). Everything is created inside the sandbox's namespaces (`ip -n`, veth peers created
// straight into their namespace), so the host's own interfaces are never touched.

import { existsSync, readdirSync } from 'node:fs';
import { runCommand } from './host-commands.js';
import type { SandboxConfig } from './sandbox-config.js';

const NETNS_DIR = '/run/netns';

/**
 * Kernel settings of the node namespace: it routes, never tells pods to bypass it, and keeps br_netfilter (when
 * the host has it) out of the bridge, which would otherwise DNAT a pod's packet at layer 2 and drop it when the
 * chosen endpoint is that same pod (the hairpin case).
 */
export const NODE_SYSCTLS: readonly string[] = [
  'net.bridge.bridge-nf-call-iptables=0',
  'net.bridge.bridge-nf-call-ip6tables=0',
  'net.bridge.bridge-nf-call-arptables=0',
  'net.ipv4.ip_forward=1',
  'net.ipv6.conf.all.forwarding=1',
  'net.ipv4.conf.all.send_redirects=0',
  'net.ipv4.conf.default.send_redirects=0',
  'net.ipv6.conf.default.accept_dad=0',
];

/** The names of the network namespaces that exist now (what `ip netns list` reads). */
export function existingNetns(): Set<string> {
  if (!existsSync(NETNS_DIR)) return new Set();
  return new Set(readdirSync(NETNS_DIR));
}

/**
 * `ip -batch` lines, run in the node namespace, that make the bridge and the link to the workstation. The bridge
 * has no address yet: each kubelet adds its pod CIDRs' gateway addresses.
 */
export function nodeBaseBatch(config: SandboxConfig): string[] {
  const { bridge, link } = config;
  return [
    'link set lo up',
    `link add ${bridge.name} type bridge forward_delay 0`,
    `link set ${bridge.name} up`,
    `link add ${link.nodeInterface} type veth peer name ${link.workstationInterface} netns ${config.namespaces.workstation}`,
    `addr add ${link.node.ipv4}/${link.ipv4PrefixLength} dev ${link.nodeInterface}`,
    `addr add ${link.node.ipv6}/${link.ipv6PrefixLength} dev ${link.nodeInterface} nodad`,
    `link set ${link.nodeInterface} up`,
    ...serviceRoutesBatch(config),
  ];
}

/**
 * The node's routes for the service CIDRs, onto the pod bridge. A real node's default route plays this part: the
 * node's own processes (the API server calling a webhook's Service) need a route before kube-proxy's nat OUTPUT
 * chain sees the packet and DNATs it to a pod, which the bridge then reaches. The source address is the bridge's
 * (a pod CIDR's gateway), which every pod answers through its default route. `replace`: also a repair.
 */
export function serviceRoutesBatch(config: SandboxConfig): string[] {
  return config.serviceCidrs.map((cidr) => `route replace ${cidr} dev ${config.bridge.name}`);
}

/** The workstation's side of its link: addresses and the link's own routes, nothing more. */
export function workstationBatch(config: SandboxConfig): string[] {
  const { link } = config;
  return [
    'link set lo up',
    `addr add ${link.workstation.ipv4}/${link.ipv4PrefixLength} dev ${link.workstationInterface}`,
    `addr add ${link.workstation.ipv6}/${link.ipv6PrefixLength} dev ${link.workstationInterface} nodad`,
    `link set ${link.workstationInterface} up`,
  ];
}

async function ipBatch(netns: string | null, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  const args = netns === null ? ['-batch', '-'] : ['-n', netns, '-batch', '-'];
  await runCommand('ip', args, { input: `${lines.join('\n')}\n` });
}

interface LinkInfo {
  ifname: string;
  master?: string;
  flags?: string[];
}

async function links(netns: string): Promise<LinkInfo[]> {
  const { stdout } = await runCommand('ip', ['-n', netns, '-j', 'link', 'show']);
  return JSON.parse(stdout) as LinkInfo[];
}

async function hasAddresses(netns: string, dev: string, addresses: readonly string[]): Promise<boolean> {
  const result = await runCommand('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', dev], { allowFailure: true });
  if (result.code !== 0) return false;
  const info = JSON.parse(result.stdout) as { addr_info?: { local?: string }[] }[];
  const present = new Set(info.flatMap((i) => (i.addr_info ?? []).map((a) => a.local)));
  return addresses.every((a) => present.has(a));
}

export interface NetworkHealth {
  /** Workstation, node, bridge and the link between them are in place. */
  base: boolean;
  /** The node's routes for the service CIDRs are in place (see serviceRoutesBatch). */
  serviceRoutes: boolean;
  /** Namespaces of the sandbox that exist. */
  existing: Set<string>;
}

/** What of the sandbox's own network exists and looks right; spawns nothing for namespaces that are absent. */
export async function inspectNetwork(config: SandboxConfig): Promise<NetworkHealth> {
  const existing = existingNetns();
  const { workstation, node } = config.namespaces;
  if (!existing.has(workstation) || !existing.has(node)) return { base: false, serviceRoutes: false, existing };
  const nodeLinks = await links(node);
  const byName = new Map(nodeLinks.map((l) => [l.ifname, l]));
  const up = (name: string): boolean => byName.get(name)?.flags?.includes('UP') === true;
  const base =
    up(config.bridge.name) &&
    up(config.link.nodeInterface) &&
    (await hasAddresses(node, config.link.nodeInterface, [config.link.node.ipv4, config.link.node.ipv6])) &&
    (await hasAddresses(workstation, config.link.workstationInterface, [config.link.workstation.ipv4, config.link.workstation.ipv6]));
  return { base, serviceRoutes: base && (await hasServiceRoutes(config)), existing };
}

async function hasServiceRoutes(config: SandboxConfig): Promise<boolean> {
  const present = new Set<string>();
  for (const family of ['-4', '-6']) {
    const { stdout } = await runCommand('ip', ['-n', config.namespaces.node, '-j', family, 'route', 'show', 'dev', config.bridge.name]);
    for (const route of JSON.parse(stdout) as { dst?: string }[]) if (route.dst !== undefined) present.add(route.dst);
  }
  return config.serviceCidrs.every((cidr) => present.has(cidr));
}

/** Puts back the node's routes for the service CIDRs (the rest of the base network is in place). */
export async function repairServiceRoutes(config: SandboxConfig): Promise<void> {
  await ipBatch(config.namespaces.node, serviceRoutesBatch(config));
}

/** The network namespaces of the sandbox's pods that exist now (the kubelets create them with the prefix). */
export function podNetnsOf(config: SandboxConfig): string[] {
  return [...existingNetns()].filter((n) => n.startsWith(config.podNetnsPrefix));
}

/** Deletes those of `names` that exist; returns the ones deleted. */
export async function deleteNamespaces(names: readonly string[]): Promise<string[]> {
  const existing = existingNetns();
  const doomed = [...new Set(names)].filter((n) => existing.has(n));
  await ipBatch(
    null,
    doomed.map((n) => `netns del ${n}`),
  );
  return doomed;
}

async function addNamespaces(names: readonly string[]): Promise<void> {
  await ipBatch(
    null,
    names.map((n) => `netns add ${n}`),
  );
}

/** (Re)creates workstation and node with their link and bridge; what was there before is deleted first. */
export async function buildBase(config: SandboxConfig): Promise<void> {
  const { workstation, node } = config.namespaces;
  await deleteNamespaces([workstation, node]);
  await addNamespaces([workstation, node]);
  // -e: a host without br_netfilter has no net.bridge keys, which is just as good.
  await runCommand('ip', ['netns', 'exec', node, 'sysctl', '-q', '-e', '-w', ...NODE_SYSCTLS]);
  await ipBatch(node, nodeBaseBatch(config));
  await ipBatch(workstation, workstationBatch(config));
}
