// The root daemon's check of the cluster info a traffic manager sends, before any of it changes routes or DNS:
// the manager (or whoever impersonates it, or a crafted kubeconfig's namespace) must not be able to route the
// internet, the loopback or the default gateway into the tunnel, nor write lines of its own into resolv.conf.
import { prefixCovers, prefixesOverlap } from '../net/prefixes.js';
import { formatPrefix, parsePrefix, prefixContains, type IpPrefix } from '../netstack/wire/ip-address.js';
import type { IpAddress } from '../netstack/wire/reprs.js';
import type { ClusterInfo } from '../gen/kubetun/manager/v1/manager_pb.js';

/** The shortest prefix routed without --also-proxy: a cluster never needs more than a /8 (IPv4) or /32 (IPv6). */
export const MIN_PREFIX_LENGTH = { 4: 8, 16: 32 } as const;
/** More subnets than any cluster has; each one is an `ip route` command. */
export const MAX_SUBNETS = 64;
/** The classic resolver's limit (glibc before 2.26, musl). */
export const MAX_SEARCH_ENTRIES = 6;
/** Namespaces are kept in memory for DNS routing; a cluster with more is unusual enough to be refused. */
export const MAX_NAMESPACES = 10_000;
const MAX_NAME_LENGTH = 253;
const MAX_REPORTED_PROBLEMS = 5;

/** Ranges that are never a cluster's: routing them into the tunnel would break the host. */
const SPECIAL_RANGES: readonly { prefix: IpPrefix; what: string }[] = [
  ['0.0.0.0/8', 'this network (0.0.0.0/8)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['::/128', 'the unspecified address'],
  ['::1/128', 'loopback'],
  ['::ffff:0:0/96', 'IPv4-mapped addresses'],
  ['fe80::/10', 'link-local'],
  ['ff00::/8', 'multicast'],
].map(([cidr, what]) => ({ prefix: parsePrefix(cidr!), what: what! }));

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** A Kubernetes namespace name (RFC 1123 label, lower case). */
const NAMESPACE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export class ClusterInfoError extends Error {
  override readonly name = 'ClusterInfoError';
  readonly code = 'CLUSTER_INFO_REJECTED';

  constructor(readonly problems: readonly string[]) {
    const shown = problems.slice(0, MAX_REPORTED_PROBLEMS);
    const more = problems.length - shown.length;
    super(
      [
        'the cluster info was rejected; nothing of it is applied (routes and DNS stay as they were):',
        ...shown.map((p) => `  ${p}`),
        ...(more > 0 ? [`  and ${more} more`] : []),
      ].join('\n'),
    );
  }
}

/** The cluster info, checked: what the root daemon may apply. */
export interface CheckedClusterInfo {
  subnets: IpPrefix[];
  clusterDomain: string;
  searchPath: string[];
  namespaces: string[];
}

export interface ClusterInfoCheckContext {
  /** The user's --also-proxy subnets: inside them a subnet may be shorter than MIN_PREFIX_LENGTH. */
  alsoProxy: readonly IpPrefix[];
  /** The gateways of the machine's default routes (every table): never routed into the tunnel. */
  defaultGateways: readonly IpAddress[];
}

/** A value from the manager as it may appear in a message: quoted (newlines escaped) and cut short. */
function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

/** Why `name` is not a DNS name of plain labels, or null if it is one. */
export function dnsNameProblem(name: string): string | null {
  if (name.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} characters`;
  const labels = name.split('.');
  if (labels.some((l) => l === '')) return 'has an empty label (a leading, trailing or doubled dot)';
  const bad = labels.find((l) => !LABEL.test(l));
  if (bad !== undefined) return `has the label ${quote(bad)}: labels are 1 to 63 letters, digits or inner hyphens`;
  return null;
}

/** Why routing `prefix` (named `name`) into the tunnel would break the host, whoever asks for it. */
function hostBreakingProblems(prefix: IpPrefix, name: string, context: ClusterInfoCheckContext): string[] {
  const problems: string[] = [];
  if (prefix.length === 0) problems.push(`${name} is a default route: it would send all traffic into the cluster`);
  for (const special of SPECIAL_RANGES) {
    if (prefixesOverlap(prefix, special.prefix)) problems.push(`${name} overlaps ${special.what} (${formatPrefix(special.prefix)})`);
  }
  if (context.defaultGateways.some((g) => prefixContains(prefix, g))) {
    problems.push(`${name} contains the default route's gateway: the machine would lose its network`);
  }
  return problems;
}

function checkSubnet(cidr: string, context: ClusterInfoCheckContext, problems: string[]): IpPrefix | null {
  let prefix: IpPrefix;
  try {
    prefix = parsePrefix(cidr);
  } catch {
    problems.push(`subnet ${quote(cidr)} is not a CIDR`);
    return null;
  }
  const text = formatPrefix(prefix);
  const found = hostBreakingProblems(prefix, `subnet ${text}`, context);
  const min = MIN_PREFIX_LENGTH[prefix.address.length as 4 | 16];
  if (prefix.length > 0 && prefix.length < min && !context.alsoProxy.some((a) => prefixCovers(a, prefix))) {
    found.push(`subnet ${text} is wider than /${min}; if the cluster really uses it, pass it with --also-proxy ${text}`);
  }
  problems.push(...found);
  return found.length === 0 ? prefix : null;
}

/** Returns what may be applied of `info`, or throws ClusterInfoError naming every problem. */
export function checkClusterInfo(info: ClusterInfo, context: ClusterInfoCheckContext): CheckedClusterInfo {
  // The user's own --also-proxy is routed with the cluster's subnets, so it must not break the host either.
  const problems = context.alsoProxy.flatMap((a) => hostBreakingProblems(a, `--also-proxy ${formatPrefix(a)}`, context));
  const cidrs = [...info.podCidrs, ...info.serviceCidrs];
  if (cidrs.length > MAX_SUBNETS) problems.push(`${cidrs.length} subnets sent; at most ${MAX_SUBNETS} are accepted`);
  const subnets = cidrs.slice(0, MAX_SUBNETS).flatMap((cidr) => checkSubnet(cidr, context, problems) ?? []);

  const clusterDomain = info.dns?.clusterDomain || 'cluster.local';
  const domainProblem = dnsNameProblem(clusterDomain);
  if (domainProblem !== null) problems.push(`cluster domain ${quote(clusterDomain)} ${domainProblem}`);

  const given = info.dns?.searchPath ?? [];
  if (given.length > MAX_SEARCH_ENTRIES) problems.push(`${given.length} search entries sent; at most ${MAX_SEARCH_ENTRIES} are accepted`);
  for (const entry of given.slice(0, MAX_SEARCH_ENTRIES)) {
    const problem = dnsNameProblem(entry);
    if (problem !== null) problems.push(`search entry ${quote(entry)} ${problem}`);
  }

  const namespaces = info.dns?.namespaces ?? [];
  if (namespaces.length > MAX_NAMESPACES) problems.push(`${namespaces.length} namespaces sent; at most ${MAX_NAMESPACES} are accepted`);
  const badNamespace = namespaces.slice(0, MAX_NAMESPACES).filter((n) => !NAMESPACE.test(n));
  if (badNamespace.length > 0) {
    problems.push(`${badNamespace.length} namespace name(s) are not DNS-1123 labels, e.g. ${quote(badNamespace[0]!)}`);
  }

  if (problems.length > 0) throw new ClusterInfoError(problems);
  return {
    subnets,
    clusterDomain,
    searchPath: given.length > 0 ? [...given] : [`svc.${clusterDomain}`, clusterDomain],
    namespaces: [...namespaces],
  };
}
