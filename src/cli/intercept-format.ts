// What `kubetun list`, `kubetun status` and `kubetun intercept` print about workloads and intercepts.

import type { InterceptInfo, InterceptedPort, ServicePortInfo, WorkloadInfo } from '../gen/kubetun/manager/v1/manager_pb.js';
import { describeFilter } from '../agent/http/http-filter.js';

/** Columns padded to their widest cell, two spaces apart. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** `svc:80→http (named-port)`; a port that cannot be taken says so. */
function servicePort(p: ServicePortInfo): string {
  return `${p.service}:${p.name || p.port}→${p.targetPort} (${p.takeover || 'not interceptable'})`;
}

function holder(i: InterceptInfo): string {
  return `${i.client} (${i.spec?.mode ?? '?'}${i.spec?.mode === 'personal' || i.spec?.mode === 'wiretap' ? `: ${describeFilter(i.spec.http)}` : ''})`;
}

export function formatWorkloads(workloads: readonly WorkloadInfo[]): string {
  if (workloads.length === 0) return 'No workloads found (kubetun list -A looks in every namespace).';
  const rows = workloads.map((w) => [
    w.name,
    w.namespace,
    w.kind,
    w.interceptable ? 'yes' : `no (${w.reason})`,
    w.ports.map(servicePort).join(', ') || '-',
    w.agent || 'none',
    w.intercepts.map(holder).join(', ') || '-',
  ]);
  return formatTable(['NAME', 'NAMESPACE', 'KIND', 'INTERCEPTABLE', 'PORTS', 'AGENT', 'INTERCEPTED BY'], rows);
}

function interceptedPort(p: InterceptedPort): string {
  return `${p.service}:${p.servicePortName || p.servicePort}/${p.protocol}`;
}

/** The "Intercepts:" section of `kubetun status`. */
export function formatIntercepts(intercepts: readonly InterceptInfo[]): string {
  if (intercepts.length === 0) return 'Intercepts:    none';
  const rows = intercepts.map((i) => [
    `${i.spec?.namespace}/${i.spec?.workload}`,
    i.spec?.mode ?? '',
    describeFilter(i.spec?.http),
    `localhost:${i.spec?.localPort}`,
    i.state === 'failed' ? `failed: ${i.message}` : i.state,
    String(i.requests),
  ]);
  const table = formatTable(['WORKLOAD', 'MODE', 'FILTER', 'LOCAL', 'STATE', 'REQUESTS'], rows);
  return `Intercepts:\n${table.replace(/^/gm, '  ')}`;
}

/** The line `kubetun intercept` prints once the intercept is active. */
export function describeIntercept(i: InterceptInfo): string {
  const ports = i.ports.map(interceptedPort).join(', ') || 'its port';
  const filter = i.spec?.mode === 'personal' || i.spec?.mode === 'wiretap' ? ` (${describeFilter(i.spec.http)})` : '';
  return `Intercepting ${i.spec?.namespace}/${i.spec?.workload}, ${i.spec?.mode}${filter}: ${ports} → localhost:${i.spec?.localPort}.`;
}
