// Which prefixes the root daemon routes into the TUN device: the cluster's subnets plus --also-proxy, minus
// --never-proxy, refused where they overlap a route the machine already has (unless --allow-conflicting-subnets
// says so) — routing such a subnet would take traffic away from the local network, or lose the cluster's.
import { prefixCovers, prefixesOverlap, subtractPrefixes } from '../net/prefixes.js';
import { formatPrefix, parsePrefix, type IpPrefix } from '../netstack/wire/ip-address.js';
import type { RouteEntry } from './link-config.js';

export interface RoutePolicy {
  alsoProxy: readonly IpPrefix[];
  neverProxy: readonly IpPrefix[];
  allowConflicting: readonly IpPrefix[];
}

export interface RouteConflict {
  subnet: IpPrefix;
  local: RouteEntry;
}

export class RouteConflictError extends Error {
  readonly code = 'ROUTE_CONFLICT';

  constructor(readonly conflicts: readonly RouteConflict[]) {
    const lines = conflicts.map(({ subnet, local }) => {
      const via = [local.dev && `dev ${local.dev}`, local.gateway && `via ${local.gateway}`, local.table && `table ${local.table}`]
        .filter(Boolean)
        .join(' ');
      return `  cluster subnet ${formatPrefix(subnet)} overlaps the local route ${local.dst}${via ? ` (${via})` : ''}`;
    });
    const first = formatPrefix(conflicts[0]!.subnet);
    super(
      [
        'kubetun will not route subnets that the machine already routes elsewhere:',
        ...lines,
        `Use --allow-conflicting-subnets ${first} to route it into the cluster anyway, --never-proxy CIDR to leave a`,
        'subnet to the local network, or --also-proxy CIDR to add a subnet of the cluster that kubetun did not find.',
      ].join('\n'),
    );
    this.name = 'RouteConflictError';
  }
}

/** Routes that count as "existing" for conflicts: not ours, not default routes, not the kernel's local entries. */
function isConflictCandidate(route: RouteEntry, tunName: string): boolean {
  if (route.dev === tunName) return false;
  if (route.dst === '0.0.0.0/0' || route.dst === '::/0') return false;
  if (route.type !== undefined && route.type !== 'unicast') return false;
  // IPv6 link-local and multicast are on every interface and never cluster addresses.
  return !route.dst.startsWith('fe80:') && !route.dst.startsWith('ff00:');
}

/** The prefixes to route into `tunName`; throws RouteConflictError if any overlaps a local route. */
export function planRoutes(
  clusterSubnets: readonly IpPrefix[],
  localRoutes: readonly RouteEntry[],
  tunName: string,
  policy: RoutePolicy,
): IpPrefix[] {
  const wanted = [...clusterSubnets, ...policy.alsoProxy].flatMap((s) => subtractPrefixes(s, policy.neverProxy));
  // Drop a prefix that another covers (of two equal ones, the later).
  const unique = wanted.filter((p, i) => !wanted.some((q, j) => j !== i && prefixCovers(q, p) && (j < i || !prefixCovers(p, q))));
  const locals = localRoutes.filter((r) => isConflictCandidate(r, tunName)).map((r) => ({ route: r, prefix: parsePrefix(r.dst) }));
  const conflicts: RouteConflict[] = [];
  for (const subnet of unique) {
    if (policy.allowConflicting.some((a) => prefixCovers(a, subnet))) continue;
    for (const local of locals) {
      if (prefixesOverlap(subnet, local.prefix)) conflicts.push({ subnet, local: local.route });
    }
  }
  if (conflicts.length > 0) throw new RouteConflictError(conflicts);
  return unique;
}
