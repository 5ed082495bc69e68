// Where a Service's traffic lands in a workload's pods: the Services whose selector matches the pod template, each
// port's container port and container, and how the agent can take it over (by renaming a named port, or by an
// init container redirecting a numbered one). Pure functions of the API objects, shared by CreateIntercept and
// ListWorkloads.

import type { AgentTargetPort } from '../../agent/agent-contract.js';
import type { ContainerSpec, Service, Workload } from './workload-api.js';

export type Takeover = 'named-port' | 'init-container';

/** One Service port of a workload, resolved to the container it reaches. */
export interface ResolvedPort {
  service: string;
  name: string;
  port: number;
  targetPort: number | string;
  protocol: 'TCP' | 'UDP';
  /** Undefined when the port cannot be taken; `reason` says why. */
  takeover: Takeover | undefined;
  containerPort: number;
  container: string;
  reason: string;
}

/** The Services of the workload's namespace whose (non-empty) selector its pod template's labels satisfy. */
export function selectingServices(workload: Workload, services: readonly Service[]): Service[] {
  return services
    .filter((s) => s.namespace === workload.namespace)
    .filter((s) => {
      const entries = Object.entries(s.selector);
      return entries.length > 0 && entries.every(([key, value]) => workload.templateLabels[key] === value);
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

function resolve(containers: readonly ContainerSpec[], service: string, port: Service['ports'][number]): ResolvedPort {
  const base = { service, name: port.name, port: port.port, targetPort: port.targetPort, protocol: port.protocol };
  if (typeof port.targetPort === 'string') {
    for (const container of containers) {
      const found = container.ports.find((p) => p.name === port.targetPort);
      if (found !== undefined) return { ...base, takeover: 'named-port', containerPort: found.containerPort, container: container.name, reason: '' };
    }
    return { ...base, takeover: undefined, containerPort: 0, container: '', reason: `no container declares a port named "${port.targetPort}"` };
  }
  const declaring = containers.find((c) => c.ports.some((p) => p.containerPort === port.targetPort));
  const container = declaring ?? containers[0];
  if (container === undefined) return { ...base, takeover: undefined, containerPort: 0, container: '', reason: 'the pod template has no container' };
  return { ...base, takeover: 'init-container', containerPort: port.targetPort, container: container.name, reason: '' };
}

/** Every port of every Service selecting the workload, in Service then port order. */
export function workloadPorts(workload: Workload, services: readonly Service[]): ResolvedPort[] {
  return selectingServices(workload, services).flatMap((s) => s.ports.map((p) => resolve(workload.containers, s.name, p)));
}

/**
 * The target ports the agent takes in front of `container` (the agent-ports annotation): sorted and without
 * repeats, so that the same Services always give the same annotation (and no needless rollout).
 */
export function agentTargetPorts(ports: readonly ResolvedPort[], container: string): AgentTargetPort[] {
  const seen = new Map<string, AgentTargetPort>();
  for (const p of ports) {
    if (p.takeover === undefined || p.container !== container) continue;
    seen.set(`${p.protocol}/${typeof p.targetPort}/${p.targetPort}`, { targetPort: p.targetPort, protocol: p.protocol });
  }
  return [...seen.values()].sort((a, b) => String(a.targetPort).localeCompare(String(b.targetPort), 'en', { numeric: true }) || a.protocol.localeCompare(b.protocol));
}

export class PortChoiceError extends Error {
  override readonly name = 'PortChoiceError';
  constructor(
    message: string,
    readonly kind: 'not-found' | 'ambiguous' | 'untakeable',
  ) {
    super(message);
  }
}

const label = (p: ResolvedPort): string => `${p.service}:${p.name === '' ? p.port : `${p.name}(${p.port})`}`;

/**
 * The port an intercept takes: the given Service (or the only one) and its port by number or name (or its only
 * one). Throws PortChoiceError naming the choices when the request is ambiguous or matches nothing.
 */
export function choosePort(workload: Workload, ports: readonly ResolvedPort[], service: string, servicePort: string): ResolvedPort {
  const what = `${workload.namespace}/${workload.name}`;
  if (ports.length === 0) throw new PortChoiceError(`no Service selects ${what}'s pods: create one, or intercept another workload`, 'not-found');
  const names = [...new Set(ports.map((p) => p.service))];
  if (service === '' && names.length > 1) throw new PortChoiceError(`several Services select ${what} (${names.join(', ')}): name one`, 'ambiguous');
  const chosenService = service === '' ? names[0]! : service;
  const candidates = ports.filter((p) => p.service === chosenService);
  if (candidates.length === 0) throw new PortChoiceError(`the Service ${chosenService} does not select ${what}: it is selected by ${names.join(', ')}`, 'not-found');
  let matching = candidates;
  if (servicePort !== '') matching = candidates.filter((p) => (/^[0-9]+$/.test(servicePort) ? p.port === Number(servicePort) : p.name === servicePort));
  if (matching.length === 0) throw new PortChoiceError(`the Service ${chosenService} has no port "${servicePort}"; its ports: ${candidates.map(label).join(', ')}`, 'not-found');
  if (matching.length > 1) throw new PortChoiceError(`the Service ${chosenService} has several ports (${matching.map(label).join(', ')}): name one`, 'ambiguous');
  const chosen = matching[0]!;
  if (chosen.takeover === undefined) throw new PortChoiceError(`${label(chosen)} cannot be intercepted: ${chosen.reason}`, 'untakeable');
  return chosen;
}
