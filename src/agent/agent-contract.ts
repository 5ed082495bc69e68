// What the traffic manager, its webhook, the installer and the traffic agent agree on: the labels and annotations
// that mark a workload for the agent, the agent container's configuration (an environment variable the webhook
// writes and the agent reads), and the ports the agent listens on.

/** A pod template label: pods with it get the agent (the webhook's objectSelector matches it). */
export const AGENT_LABEL = 'kubetun.io/agent';
export const AGENT_LABEL_VALUE = 'enabled';
/**
 * Pod template annotations the manager writes when it enables a workload (changing them rolls the pods out):
 * the Service target ports the agent takes (JSON: AgentTargetPort[]), the app container's name, and, while a
 * replace intercept holds, the container the webhook leaves out.
 */
export const AGENT_PORTS_ANNOTATION = 'kubetun.io/agent-ports';
export const AGENT_CONTAINER_ANNOTATION = 'kubetun.io/agent-container';
export const REPLACE_ANNOTATION = 'kubetun.io/replace';
/** Pods the webhook mutated carry this annotation (the agent's version). */
export const INJECTED_ANNOTATION = 'kubetun.io/injected';

/** The injected containers' names. */
export const AGENT_CONTAINER = 'kubetun-agent';
export const AGENT_INIT_CONTAINER = 'kubetun-agent-init';
/** The agent's ports in the pod: AGENT_PORT_BASE + the index of the port in the config. */
export const AGENT_PORT_BASE = 9900;
/** The agent container's arguments (after the image's entrypoint), and the init container's. */
export const AGENT_ARGS = ['traffic-agent'];
export const AGENT_INIT_ARGS = ['agent-init'];

/** The agent's configuration, as JSON, in the agent (and init) container's environment. */
export const AGENT_CONFIG_ENV = 'KUBETUN_AGENT_CONFIG';
/**
 * The app container's environment is copied into the agent container with this prefix on every name (and on
 * `$(NAME)` references to them), so that the kubelet resolves its ConfigMap, Secret and field references for the
 * agent exactly as for the app; the agent strips the prefix and reports the result.
 */
export const APP_ENV_PREFIX = 'KTAPP_';

/** A Service target port the agent takes, as the Service writes it: a container port's number or name. */
export interface AgentTargetPort {
  targetPort: number | string;
  protocol: 'TCP' | 'UDP';
}

/** One port the agent listens on. */
export interface AgentPortConfig {
  agentPort: number;
  containerPort: number;
  /** The container port's name, when the Service names it (takeover by name). */
  name: string;
  protocol: 'TCP' | 'UDP';
  takeover: 'named-port' | 'init-container';
}

export interface AgentConfig {
  workload: string;
  kind: string;
  namespace: string;
  /** The app container (absent from the pod when `replaced`). */
  container: string;
  replaced: boolean;
  /** The manager's agent listener. */
  manager: { host: string; port: number };
  ports: AgentPortConfig[];
}

export class AgentConfigError extends Error {
  override readonly name = 'AgentConfigError';
}

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function port(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new AgentConfigError(`${what} must be a port number from 1 to 65535`);
  }
  return value;
}

function text(value: unknown, what: string, pattern: RegExp = NAME): string {
  if (typeof value !== 'string' || !pattern.test(value)) throw new AgentConfigError(`${what} is missing or malformed`);
  return value;
}

/** Reads and checks the agent's configuration (the JSON of AGENT_CONFIG_ENV). */
export function parseAgentConfig(json: string | undefined): AgentConfig {
  if (json === undefined || json === '') throw new AgentConfigError(`${AGENT_CONFIG_ENV} is not set: the agent runs only as injected by the webhook`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(json) as Record<string, unknown>;
  } catch (error) {
    throw new AgentConfigError(`${AGENT_CONFIG_ENV} is not JSON: ${(error as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object') throw new AgentConfigError(`${AGENT_CONFIG_ENV} must be a JSON object`);
  const manager = (raw.manager ?? {}) as Record<string, unknown>;
  if (!Array.isArray(raw.ports) || raw.ports.length === 0 || raw.ports.length > 64) {
    throw new AgentConfigError(`${AGENT_CONFIG_ENV}.ports must list 1 to 64 ports`);
  }
  const ports = raw.ports.map((p: Record<string, unknown>, i: number): AgentPortConfig => {
    const protocol = p.protocol === 'UDP' ? 'UDP' : p.protocol === 'TCP' ? 'TCP' : undefined;
    const takeover = p.takeover === 'named-port' || p.takeover === 'init-container' ? p.takeover : undefined;
    if (protocol === undefined || takeover === undefined) throw new AgentConfigError(`${AGENT_CONFIG_ENV}.ports[${i}] needs protocol TCP|UDP and takeover named-port|init-container`);
    return {
      agentPort: port(p.agentPort, `ports[${i}].agentPort`),
      containerPort: port(p.containerPort, `ports[${i}].containerPort`),
      name: p.name === undefined || p.name === '' ? '' : text(p.name, `ports[${i}].name`, /^[a-z0-9-]{1,15}$/),
      protocol,
      takeover,
    };
  });
  return {
    workload: text(raw.workload, 'workload'),
    kind: text(raw.kind, 'kind', /^(Deployment|StatefulSet|ReplicaSet)$/),
    namespace: text(raw.namespace, 'namespace'),
    container: text(raw.container, 'container'),
    replaced: raw.replaced === true,
    manager: { host: text(manager.host, 'manager.host', /^[A-Za-z0-9.:-]{1,253}$/), port: port(manager.port, 'manager.port') },
    ports,
  };
}
