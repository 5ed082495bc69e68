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
  const nodes = formatTable(
    ['NODE', 'POD-CIDRS', 'READY'],
    status.nodes.map((n) => [n.name, n.podCidrs.join(','), n.ready ? 'yes' : 'no']),
  );
  const pods = formatTable(
    ['NAMESPACE', 'POD', 'NODE', 'IPV4', 'IPV6', 'STATUS', 'RESTARTS'],
    status.pods.map((p) => [p.namespace, p.name, p.node, p.ipv4, p.ipv6, p.ready ? 'ready' : p.phase, String(p.restarts)]),
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
  const processes = formatTable(
    ['PROCESS', 'STATUS', 'PID'],
    status.processes.map((p) => [p.id, p.running ? 'running' : 'stopped', p.pid === null ? '-' : String(p.pid)]),
  );
  const lines = [
    `sandbox ${status.name}: ${status.state}`,
    `API server: ${status.server} (kubeconfig for the workstation: ${status.kubeconfig})`,
    'nodes:',
    nodes,
    'pods:',
    pods,
    'services:',
    services,
    'processes in the node namespace:',
    processes,
    `workstation: namespace ${status.namespaces[0]?.name ?? '?'}`,
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
    `  kubetun sandbox exec${flag} -- kubetun install        # the traffic manager, through the API`,
    `  kubetun sandbox exec${flag} -- kubetun connect        # run kubetun in the workstation namespace`,
    `  kubetun sandbox exec${flag} -- curl http://echo.default`,
    `  kubetun sandbox exec${flag} -- bash                   # a shell there (env KUBECONFIG is set)`,
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
