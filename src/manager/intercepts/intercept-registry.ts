// The intercepts the traffic manager holds: created by a session (checked, free of conflicts, its workload enabled
// for the agent), told to the agents of that workload, ended by RemoveIntercept or with their session. Whether an
// intercept is active is read from the agents connected now, never stored.

import { AGENT_LABEL } from '../../agent/agent-contract.js';
import { randomBytes } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type { AgentIntercept, InterceptInfoSchema, InterceptSpec } from '../../gen/kubetun/manager/v1/manager_pb.js';
import { describeFilter, filtersOverlap, type CompiledFilter } from '../../agent/http/http-filter.js';
import type { Logger } from '../../log/logger.js';
import type { ClientSession } from '../session-registry.js';
import { workloadKey, type AgentRegistry, type LiveAgent } from './agent-registry.js';
import { checkSpec, type InterceptMode } from './intercept-spec.js';
import { WorkloadApiError, type WorkloadApi, type WorkloadRef } from './workload-api.js';
import { enablingPatch, patchWorkload, unreplacePatch } from './workload-enabler.js';
import { agentTargetPorts, choosePort, PortChoiceError, workloadPorts, type ResolvedPort } from './workload-ports.js';

export type InterceptInfoInit = MessageInitShape<typeof InterceptInfoSchema>;

export interface Intercept {
  readonly id: string;
  readonly session: ClientSession;
  readonly spec: InterceptSpec;
  readonly mode: InterceptMode;
  readonly ref: WorkloadRef;
  readonly workload: string;
  readonly port: ResolvedPort;
  /** The pod template's own labels (without the agent's): every pod of the workload, old or new, has them. */
  readonly podLabels: Record<string, string>;
  readonly filter: CompiledFilter | undefined;
  /** user@host of the holder, shown to other users in conflicts and lists. */
  readonly client: string;
  requests: number;
  /** Set once its workload's template says what it needs (for a replace: the annotation to undo). */
  applied: boolean;
  removeEndHook: () => void;
}

export interface InterceptRegistryDeps {
  api: WorkloadApi;
  agents: AgentRegistry;
  log: Logger;
  interceptsPerSession: number;
}

/** Why `a` and `b` cannot both hold (undefined: they can). Both are on the same workload. */
function conflictOf(a: Pick<Intercept, 'mode' | 'port' | 'filter'>, b: Intercept): string | undefined {
  if (a.mode === 'wiretap' || b.mode === 'wiretap') return undefined;
  const sameContainer = a.port.container === b.port.container;
  if (a.mode === 'replace' || b.mode === 'replace') return sameContainer ? 'a replace takes every port of the container' : undefined;
  if (a.port.containerPort !== b.port.containerPort || a.port.protocol !== b.port.protocol) return undefined;
  if (a.mode === 'global' || b.mode === 'global') return 'a global intercept takes every connection of the port';
  return filtersOverlap(a.filter!, b.filter!) ? 'their HTTP filters overlap' : undefined;
}

function apiTrouble(error: unknown): never {
  if (error instanceof WorkloadApiError) throw new ConnectError(`the Kubernetes API: ${error.message}`, error.statusCode === 403 ? Code.PermissionDenied : Code.Unavailable);
  throw error;
}

export class InterceptRegistry {
  private readonly intercepts = new Map<string, Intercept>();

  constructor(private readonly deps: InterceptRegistryDeps) {}

  async create(session: ClientSession, spec: InterceptSpec | undefined): Promise<InterceptInfoInit> {
    const checked = checkSpec(spec);
    const { ref, mode, filter } = checked;
    const what = `${ref.namespace}/${ref.name}`;
    if (this.ofSession(session).length >= this.deps.interceptsPerSession) {
      throw new ConnectError(`this session holds its limit of ${this.deps.interceptsPerSession} intercepts: leave one first.`, Code.ResourceExhausted);
    }
    const [workload, services] = await Promise.all([this.deps.api.getWorkload(ref), this.deps.api.listServices(ref.namespace)]).catch(apiTrouble);
    if (workload === undefined) {
      throw new ConnectError(`workload ${what} not found: kubetun list -n ${ref.namespace} shows what can be intercepted.`, Code.NotFound);
    }
    const ports = workloadPorts(workload, services);
    let port: ResolvedPort;
    try {
      port = choosePort(workload, ports, spec!.service, spec!.servicePort);
    } catch (error) {
      if (!(error instanceof PortChoiceError)) throw error;
      throw new ConnectError(error.message, error.kind === 'not-found' ? Code.NotFound : error.kind === 'ambiguous' ? Code.InvalidArgument : Code.FailedPrecondition);
    }
    // Checked after the API calls, with no await before the insert: two racing creates cannot both pass.
    const key = workloadKey(ref.kind, ref.namespace, ref.name);
    const others = [...this.intercepts.values()].filter((i) => i.workload === key);
    const otherContainer = others.find((i) => i.port.container !== port.container);
    if (otherContainer !== undefined) {
      throw new ConnectError(
        `${what}'s agent stands in front of container ${otherContainer.port.container} for ${otherContainer.client}'s intercept; this port is on ${port.container}.`,
        Code.FailedPrecondition,
      );
    }
    for (const other of others) {
      const why = conflictOf({ mode, port, filter }, other);
      if (why !== undefined) {
        throw new ConnectError(
          `${what} port ${port.containerPort} is intercepted by ${other.client} (${other.mode}, ${describeFilter(other.spec.http)}): ${why}. Ask them to leave it, or use a personal intercept with a filter that does not overlap.`,
          Code.FailedPrecondition,
        );
      }
    }
    const intercept: Intercept = {
      id: randomBytes(12).toString('base64url'),
      session,
      spec: spec!,
      mode,
      ref,
      workload: key,
      port,
      podLabels: Object.fromEntries(Object.entries(workload.templateLabels).filter(([name]) => name !== AGENT_LABEL)),
      filter,
      client: session.client.name,
      requests: 0,
      applied: false,
      removeEndHook: () => undefined,
    };
    this.intercepts.set(intercept.id, intercept);
    intercept.removeEndHook = session.onEnd(() => this.end(intercept));
    const gone = (): ConnectError => new ConnectError('the session ended while the intercept was being set up.', Code.Aborted);
    // A session that ended during the API calls has run the hook already: nothing is patched for it.
    if (!this.intercepts.has(intercept.id)) throw gone();
    try {
      const patch = enablingPatch(workload, agentTargetPorts(ports, port.container), port.container, mode === 'replace');
      if (patch !== undefined) {
        await patchWorkload(this.deps.api, ref, patch);
        this.deps.log.info('workload enabled for the agent', { workload: key });
      }
      intercept.applied = true;
    } catch (error) {
      this.end(intercept);
      throw error;
    }
    if (!this.intercepts.has(intercept.id)) {
      // It ended during the patch, before `applied` was set.
      this.undoReplace(intercept);
      throw gone();
    }
    this.deps.log.info('intercept created', { session: session.tag, workload: key, mode, port: port.containerPort });
    this.tellAgents(key);
    return this.info(intercept, true);
  }

  /** The session's intercept with this id; another session's looks unknown. */
  owned(session: ClientSession, id: string): Intercept {
    const intercept = this.intercepts.get(id);
    if (intercept === undefined || intercept.session !== session) throw new ConnectError('no such intercept of this session.', Code.NotFound);
    return intercept;
  }

  get(id: string): Intercept | undefined {
    return this.intercepts.get(id);
  }

  ofSession(session: ClientSession): Intercept[] {
    return [...this.intercepts.values()].filter((i) => i.session === session);
  }

  ofWorkload(key: string): Intercept[] {
    return [...this.intercepts.values()].filter((i) => i.workload === key);
  }

  remove(session: ClientSession, id: string): void {
    this.end(this.owned(session, id));
  }

  /** What `agent` applies: the intercepts of its workload on ports it serves (a replace: all of them). */
  forAgent(agent: LiveAgent): AgentIntercept[] {
    return this.ofWorkload(agent.workload).flatMap((i) => {
      const ports = i.mode === 'replace' && agent.info.replaced ? agent.info.ports.map((p) => ({ containerPort: p.containerPort, protocol: p.protocol })) : [i.port];
      return ports
        .filter((p) => agent.serves(p.containerPort))
        .map((p) => ({ id: i.id, mode: i.mode, containerPort: p.containerPort, protocol: p.protocol, client: i.client, ...(i.spec.http ? { http: i.spec.http } : {}) }) as AgentIntercept);
    });
  }

  /** The intercept as its owner (`owner`: with the environment) or anyone else sees it. */
  info(intercept: Intercept, owner: boolean): InterceptInfoInit {
    const agents = this.deps.agents
      .ofWorkload(intercept.workload)
      .filter((a) => a.serves(intercept.port.containerPort) && (intercept.mode !== 'replace' || a.info.replaced));
    const p = intercept.port;
    const active = agents.length > 0;
    return {
      id: intercept.id,
      spec: intercept.spec,
      client: intercept.client,
      state: active ? 'active' : 'waiting',
      message: active ? '' : `waiting for ${intercept.ref.namespace}/${intercept.ref.name}'s pods to run the agent (a rollout is under way)`,
      ports: [{ service: p.service, servicePortName: p.name, servicePort: p.port, containerPort: p.containerPort, protocol: p.protocol, takeover: p.takeover ?? '' }],
      environment: owner && active ? agents[0]!.info.environment : {},
      requests: BigInt(intercept.requests),
      pods: agents.map((a) => a.info.pod).sort(),
    };
  }

  /**
   * The intercept as its owner sees it, "active" only once every pod of the workload that takes connections runs
   * an agent that applies it: while a rollout still has old pods serving, some requests would miss the laptop.
   * When the pods cannot be listed, the agents' view stands.
   */
  async settledInfo(intercept: Intercept): Promise<InterceptInfoInit> {
    const info = this.info(intercept, true);
    if (info.state !== 'active') return info;
    const pods = await this.deps.api.listPods(intercept.ref.namespace, intercept.podLabels).catch(() => undefined);
    const serving = pods?.filter((p) => !p.terminating) ?? [];
    const missing = serving.filter((p) => !info.pods!.includes(p.name));
    if (missing.length === 0) return info;
    return {
      ...info,
      state: 'waiting',
      message: `waiting for ${missing.length} of ${serving.length} pods of ${intercept.ref.namespace}/${intercept.ref.name} to run the agent (a rollout is under way)`,
      environment: {},
    };
  }

  /** Sends every agent of the workload its current list. */
  tellAgents(key: string): void {
    for (const agent of this.deps.agents.ofWorkload(key)) agent.tell(this.forAgent(agent));
  }

  private end(intercept: Intercept): void {
    if (!this.intercepts.delete(intercept.id)) return;
    intercept.removeEndHook();
    this.deps.log.info('intercept ended', { session: intercept.session.tag, workload: intercept.workload, mode: intercept.mode });
    this.tellAgents(intercept.workload);
    if (intercept.applied) this.undoReplace(intercept);
  }

  /** After the last replace of a workload, the app container comes back with a rollout; nobody waits for it. */
  private undoReplace(intercept: Intercept): void {
    if (intercept.mode !== 'replace' || this.ofWorkload(intercept.workload).some((i) => i.mode === 'replace')) return;
    patchWorkload(this.deps.api, intercept.ref, unreplacePatch).catch((error: Error) =>
      this.deps.log.warn('cannot end the replace of a workload', { workload: intercept.workload, error: error.message }),
    );
  }
}
