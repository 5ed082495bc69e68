// The host-route check: the sandbox refuses to start when one of its ranges overlaps a route of the host, so a
// command run outside the sandbox by mistake can never reach a real network through a sandbox address.

import { prefixesOverlap } from '../net/prefixes.js';
import { parsePrefix } from '../netstack/wire/ip-address.js';
import { parseRoutes, type RouteEntry } from '../rootd/link-config.js';
import { runCommand } from './host-commands.js';
import { SandboxError } from './sandbox-errors.js';

/** A route of the host, as `ip -j route show table all` gives it. */
export type HostRoute = RouteEntry;

export interface RouteOverlap {
  range: string;
  route: HostRoute;
}

// Kernel-made routes for the host's own addresses and broadcast/multicast: they come with a unicast route that
// is checked instead, and the local table's entries for other namespaces' addresses never appear here.
const IGNORED_TYPES = new Set(['local', 'broadcast', 'multicast', 'anycast']);

/**
 * The routes that overlap one of `ranges`. Default routes are left out: they overlap everything, and a
 * more specific route (the sandbox's own, inside its namespaces) always wins over them.
 */
export function findRouteOverlaps(ranges: readonly string[], routes: readonly HostRoute[]): RouteOverlap[] {
  const parsedRanges = ranges.map((range) => ({ range, prefix: parsePrefix(range) }));
  const overlaps: RouteOverlap[] = [];
  for (const route of routes) {
    if (IGNORED_TYPES.has(route.type ?? 'unicast')) continue;
    const dst = parsePrefix(route.dst);
    if (dst.length === 0) continue;
    for (const { range, prefix } of parsedRanges) {
      if (prefixesOverlap(prefix, dst)) overlaps.push({ range, route });
    }
  }
  return overlaps;
}

/** The routes of the namespace this process runs in, every table, both families. */
export async function readHostRoutes(): Promise<HostRoute[]> {
  const routes: HostRoute[] = [];
  for (const family of [4, 6] as const) {
    const { stdout } = await runCommand('ip', ['-j', `-${family}`, 'route', 'show', 'table', 'all']);
    routes.push(...parseRoutes(stdout, family));
  }
  return routes;
}

export function describeRoute(route: HostRoute): string {
  const parts = [route.type === undefined || route.type === 'unicast' ? '' : `${route.type} `, route.dst];
  if (route.dev !== undefined) parts.push(` dev ${route.dev}`);
  if (route.table !== undefined && route.table !== 'main') parts.push(` table ${route.table}`);
  return parts.join('');
}

/** Throws SandboxError ROUTE_OVERLAP naming every overlap, if there is one. */
export function checkNoRouteOverlap(ranges: readonly string[], routes: readonly HostRoute[]): void {
  const overlaps = findRouteOverlaps(ranges, routes);
  if (overlaps.length === 0) return;
  const list = overlaps.map((o) => `sandbox range ${o.range} overlaps the host route ${describeRoute(o.route)}`).join('; ');
  throw new SandboxError(
    'ROUTE_OVERLAP',
    `${list}. The sandbox uses fixed ranges so that it never shadows this machine's network: remove that route, ` +
      'or run the sandbox on a machine that does not have it.',
  );
}
