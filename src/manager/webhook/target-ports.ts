// The kubetun.io/agent-ports annotation (JSON AgentTargetPort[]: every Service target port that selects the
// workload), read with suspicion: it is on the pod, and anyone who may create pods may write it.

import { AGENT_PORTS_ANNOTATION, type AgentTargetPort } from '../../agent/agent-contract.js';

/** As many as the agent's config takes (parseAgentConfig). */
const MAX_PORTS = 64;
// A container port's name (IANA_SVC_NAME, as the API server validates it).
const PORT_NAME = /^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

function targetPort(entry: unknown, i: number): AgentTargetPort | string {
  const { targetPort, protocol } = (entry ?? {}) as Record<string, unknown>;
  if (protocol !== 'TCP' && protocol !== 'UDP') return `${AGENT_PORTS_ANNOTATION}[${i}].protocol must be TCP or UDP`;
  if (typeof targetPort === 'number' && Number.isInteger(targetPort) && targetPort >= 1 && targetPort <= 65535) return { targetPort, protocol };
  if (typeof targetPort === 'string' && PORT_NAME.test(targetPort) && /[a-z]/.test(targetPort)) return { targetPort, protocol };
  return `${AGENT_PORTS_ANNOTATION}[${i}].targetPort must be a port number (1-65535) or a port name`;
}

/**
 * The target ports, each once (two Services often share one), or what is wrong with the annotation.
 */
export function parseAgentTargetPorts(annotation: string | undefined): AgentTargetPort[] | string {
  if (annotation === undefined) return `the pod has no ${AGENT_PORTS_ANNOTATION} annotation`;
  let entries: unknown;
  try {
    entries = JSON.parse(annotation);
  } catch (error) {
    return `${AGENT_PORTS_ANNOTATION} is not JSON: ${(error as Error).message}`;
  }
  if (!Array.isArray(entries) || entries.length === 0) return `${AGENT_PORTS_ANNOTATION} must be a JSON array of {targetPort, protocol}, with at least one`;
  const ports: AgentTargetPort[] = [];
  for (const [i, entry] of entries.entries()) {
    const port = targetPort(entry, i);
    if (typeof port === 'string') return port;
    if (!ports.some((p) => p.targetPort === port.targetPort && p.protocol === port.protocol)) ports.push(port);
  }
  if (ports.length > MAX_PORTS) return `${AGENT_PORTS_ANNOTATION} lists ${ports.length} ports; the agent takes at most ${MAX_PORTS}`;
  return ports;
}
