// The agent injection, as a pure function of the pod the API server is about to create: which ports the agent
// takes (from the annotations the manager put on the workload's pod template), how (a named port changes hands;
// a numeric one is redirected by an init container), and the JSON patch that adds the agent. It never blocks a
// pod: anything it cannot make sense of leaves the pod as it is, with a warning.

import type { V1Container, V1ContainerPort, V1Pod, V1Probe } from '@kubernetes/client-node';
import {
  AGENT_ARGS,
  AGENT_CONFIG_ENV,
  AGENT_CONTAINER,
  AGENT_CONTAINER_ANNOTATION,
  AGENT_INIT_ARGS,
  AGENT_INIT_CONTAINER,
  AGENT_LABEL,
  AGENT_LABEL_VALUE,
  AGENT_PORT_BASE,
  AGENT_PORTS_ANNOTATION,
  INJECTED_ANNOTATION,
  REPLACE_ANNOTATION,
  type AgentConfig,
  type AgentPortConfig,
} from '../../agent/agent-contract.js';
import { agentAppEnv, agentAppEnvFrom } from './agent-env.js';
import { parseAgentTargetPorts } from './target-ports.js';
import { pointer, type JsonPatchOperation } from './json-patch.js';
import { podWorkload } from './pod-owner.js';

export interface InjectionSettings {
  /** The agent's image: the manager's own. */
  agentImage: string;
  /** The manager's agent listener, as the agent dials it. */
  managerAddress: { host: string; port: number };
  /** kubetun's version, recorded on the pod (INJECTED_ANNOTATION). */
  version: string;
}

export interface PodMutation {
  patch: JsonPatchOperation[];
  /** Why a labelled pod was left as it is. */
  warning?: string;
}

/** The agent's own user (distroless' "nonroot"), as the manager's. */
const AGENT_UID = 65532;
const PROBES = ['livenessProbe', 'readinessProbe', 'startupProbe'] as const;

const unchanged = (warning?: string): PodMutation => (warning === undefined ? { patch: [] } : { patch: [], warning: `kubetun did not inject its agent: ${warning}` });

/** The app container's port named `name`, for the protocol the Service gives. */
function namedPort(container: V1Container, name: string, protocol: string): V1ContainerPort | undefined {
  return (container.ports ?? []).find((port) => port.name === name && (port.protocol ?? 'TCP') === protocol);
}

/** What each target port becomes: the agent's port, the container port it stands for, and how it is taken. */
function agentPorts(pod: V1Pod, app: V1Container, annotation: string | undefined): AgentPortConfig[] | string {
  const targets = parseAgentTargetPorts(annotation);
  if (typeof targets === 'string') return targets;
  const used = new Set([...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].flatMap((c) => (c.ports ?? []).map((p) => p.containerPort)));
  const ports: AgentPortConfig[] = [];
  for (const [i, target] of targets.entries()) {
    const agentPort = AGENT_PORT_BASE + i;
    if (used.has(agentPort)) return `port ${agentPort}, which the agent needs, is already a container port of the pod`;
    if (typeof target.targetPort === 'number') {
      ports.push({ agentPort, containerPort: target.targetPort, name: '', protocol: target.protocol, takeover: 'init-container' });
      continue;
    }
    const port = namedPort(app, target.targetPort, target.protocol);
    if (port === undefined) return `container "${app.name}" has no ${target.protocol} port named "${target.targetPort}" (a Service's targetPort)`;
    ports.push({ agentPort, containerPort: port.containerPort, name: target.targetPort, protocol: target.protocol, takeover: 'named-port' });
  }
  return ports;
}

/** The app container with its taken port names removed, and probes that named them given the numbers. */
function withoutTakenNames(app: V1Container, taken: ReadonlyMap<string, number>): V1Container {
  const unnamed = (port: V1ContainerPort): V1ContainerPort => {
    if (port.name === undefined || !taken.has(port.name)) return port;
    const { name: _taken, ...rest } = port;
    return rest;
  };
  const renamed: V1Container = { ...app, ports: (app.ports ?? []).map(unnamed) };
  const numbered = (port: unknown): unknown => (typeof port === 'string' && taken.has(port) ? taken.get(port) : port);
  for (const key of PROBES) {
    const probe: V1Probe | undefined = app[key];
    if (probe === undefined) continue;
    renamed[key] = {
      ...probe,
      ...(probe.httpGet ? { httpGet: { ...probe.httpGet, port: numbered(probe.httpGet.port) as number | string } } : {}),
      ...(probe.tcpSocket ? { tcpSocket: { ...probe.tcpSocket, port: numbered(probe.tcpSocket.port) as number | string } } : {}),
    };
  }
  return renamed;
}

function agentContainer(app: V1Container, config: AgentConfig, settings: InjectionSettings): V1Container {
  const field = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  const envFrom = agentAppEnvFrom(app.envFrom);
  return {
    name: AGENT_CONTAINER,
    image: settings.agentImage,
    args: AGENT_ARGS,
    env: [
      { name: AGENT_CONFIG_ENV, value: JSON.stringify(config) },
      field('POD_NAME', 'metadata.name'),
      field('POD_NAMESPACE', 'metadata.namespace'),
      field('POD_IP', 'status.podIP'),
      ...agentAppEnv(app.env, app.name, config.replaced),
    ],
    ...(envFrom.length > 0 ? { envFrom } : {}),
    // Named ports carry their name to the agent (a Service targeting it now lands here); the app's other ports,
    // when it is replaced, are not the agent's to declare.
    ports: config.ports.map((port) => ({ ...(port.name !== '' ? { name: port.name } : {}), containerPort: port.agentPort, protocol: port.protocol })),
    resources: { requests: { cpu: '10m', memory: '48Mi' }, limits: { cpu: '500m', memory: '192Mi' } },
    securityContext: {
      runAsUser: AGENT_UID,
      runAsGroup: AGENT_UID,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    },
  };
}

/** Redirects numeric target ports to the agent with nftables: the one place NET_ADMIN is granted, and only at start. */
function initContainer(config: AgentConfig, settings: InjectionSettings): V1Container {
  return {
    name: AGENT_INIT_CONTAINER,
    image: settings.agentImage,
    args: AGENT_INIT_ARGS,
    env: [{ name: AGENT_CONFIG_ENV, value: JSON.stringify(config) }],
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '200m', memory: '96Mi' } },
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN'], drop: ['ALL'] },
    },
  };
}

/**
 * The patch that injects the agent into `pod` (created in `namespace`), or none: for a pod without the agent
 * label, for one that has the agent already (a reinvocation), and, with a warning, for one it cannot serve.
 */
export function mutatePod(pod: V1Pod, namespace: string, settings: InjectionSettings): PodMutation {
  if (pod.metadata?.labels?.[AGENT_LABEL] !== AGENT_LABEL_VALUE) return unchanged();
  const containers = pod.spec?.containers ?? [];
  if (containers.some((c) => c.name === AGENT_CONTAINER)) return unchanged();
  // nftables rules in a host-network pod would redirect the node's own ports.
  if (pod.spec?.hostNetwork === true) return unchanged('the pod uses the host network');
  const workload = podWorkload(pod);
  if (typeof workload === 'string') return unchanged(workload);
  const annotations = pod.metadata?.annotations ?? {};
  const appName = annotations[AGENT_CONTAINER_ANNOTATION] ?? (containers.length === 1 ? containers[0]!.name : undefined);
  if (appName === undefined) return unchanged(`the pod has ${containers.length} containers and no ${AGENT_CONTAINER_ANNOTATION} annotation naming the app's`);
  const appIndex = containers.findIndex((c) => c.name === appName);
  if (appIndex < 0) return unchanged(`${AGENT_CONTAINER_ANNOTATION} names "${appName}", which is not a container of the pod`);
  const app = containers[appIndex]!;
  const ports = agentPorts(pod, app, annotations[AGENT_PORTS_ANNOTATION]);
  if (typeof ports === 'string') return unchanged(ports);
  const replaced = annotations[REPLACE_ANNOTATION] !== undefined;
  const config: AgentConfig = {
    workload: workload.name,
    kind: workload.kind,
    namespace,
    container: app.name,
    replaced,
    manager: settings.managerAddress,
    ports,
  };
  const patch: JsonPatchOperation[] = [];
  const taken = new Map(ports.filter((p) => p.takeover === 'named-port').map((p) => [p.name, p.containerPort] as const));
  if (replaced) patch.push({ op: 'remove', path: pointer('spec', 'containers', appIndex) });
  else if (taken.size > 0) patch.push({ op: 'replace', path: pointer('spec', 'containers', appIndex), value: withoutTakenNames(app, taken) });
  patch.push({ op: 'add', path: pointer('spec', 'containers', '-'), value: agentContainer(app, config, settings) });
  if (ports.some((p) => p.takeover === 'init-container')) {
    const init = initContainer(config, settings);
    // First, so that no other init container's traffic reaches the port before the redirect is in place.
    patch.push(pod.spec?.initContainers === undefined ? { op: 'add', path: pointer('spec', 'initContainers'), value: [init] } : { op: 'add', path: pointer('spec', 'initContainers', 0), value: init });
  }
  // The pod has annotations: the manager's ports annotation brought it here.
  patch.push({ op: 'add', path: pointer('metadata', 'annotations', INJECTED_ANNOTATION), value: settings.version });
  return { patch };
}
