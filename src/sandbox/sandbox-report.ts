// What `kubetun sandbox …` prints: tables of pods and services, and the next commands to try.

import type { SandboxDownResult, SandboxUpResult } from './sandbox.js';
import type { SandboxStatus } from './sandbox-status.js';

export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], indent = '  '): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    indent + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

function nameFlag(name: string): string {
  return name === 'kt' ? '' : ` --name ${name}`;
}

export function formatStatus(status: SandboxStatus, options: { problems?: boolean } = {}): string {
  if (status.state === 'down') return `sandbox ${status.name} is down (nothing exists): create it with kubetun sandbox up${nameFlag(status.name)}`;
  const pods = formatTable(
    ['NAMESPACE', 'POD', 'IPV4', 'IPV6', 'STATUS', 'PID'],
    status.pods.map((p) => [p.namespace, p.name, p.ipv4, p.ipv6, p.phase, p.pid === null ? '-' : String(p.pid)]),
  );
  const services = formatTable(
    ['NAMESPACE', 'SERVICE', 'CLUSTER-IPS', 'PORTS'],
    status.services.map((s) => [
      s.namespace,
      s.name,
      `${s.clusterIPs.ipv4},${s.clusterIPs.ipv6}`,
      s.ports.map((p) => `${p.port}/${p.protocol}${p.name === undefined ? '' : ` (${p.name})`}`).join(', '),
    ]),
  );
  const lines = [
    `sandbox ${status.name}: ${status.state}`,
    'pods:',
    pods,
    'services:',
    services,
    `workstation: namespace ${status.namespaces[0]?.name ?? '?'}, resolver ${status.upstreamDns.addresses.ipv4} (${status.upstreamDns.phase})`,
    `traffic manager: ${status.managerUrl} (the workstation's way in, like a NodePort)`,
  ];
  if (options.problems !== false && status.problems.length > 0) lines.push('problems:', ...status.problems.map((p) => `  - ${p}`));
  return lines.join('\n');
}

export function formatUp(result: SandboxUpResult): string {
  const name = result.config.name;
  const flag = nameFlag(name);
  const lines: string[] = [];
  if (result.alreadyUp) lines.push(`sandbox ${name} was already up: nothing to do`);
  else if (result.repaired) lines.push(`sandbox ${name} is up again; repaired:`, ...result.actions.map((a) => `  - ${a}`));
  else lines.push(`sandbox ${name} is up`);
  // The problems of a sandbox that came up are the warnings below.
  lines.push(formatStatus(result.status, { problems: false }).split('\n').slice(1).join('\n'));
  if (result.warnings.length > 0) lines.push('warnings:', ...result.warnings.map((w) => `  - ${w}`));
  lines.push(
    'next, as root:',
    `  kubetun sandbox exec${flag} -- kubetun connect        # run kubetun in the workstation namespace`,
    `  kubetun sandbox exec${flag} -- curl http://echo.default`,
    `  kubetun sandbox exec${flag} -- bash                   # a shell there (env KUBETUN_MANAGER_URL is set)`,
    `  kubetun sandbox status${flag}`,
    `  kubetun sandbox down${flag}`,
  );
  return lines.join('\n');
}

export function formatDown(result: SandboxDownResult): string {
  if (!result.found) return `sandbox ${result.name} was not up: nothing to remove`;
  const lines = [`sandbox ${result.name} is down`];
  if (result.stoppedProcesses.length > 0) lines.push(`  stopped: ${result.stoppedProcesses.join(', ')}`);
  if (result.deletedNamespaces.length > 0) lines.push(`  deleted namespaces: ${result.deletedNamespaces.join(', ')}`);
  if (result.removedFiles.length > 0) lines.push(`  removed: ${result.removedFiles.join(', ')}`);
  for (const warning of result.warnings) lines.push(`  warning: ${warning}`);
  return lines.join('\n');
}
