// The Agent service (manager.proto): an agent arrives with what it is, is checked against the API (agent-verifier.ts),
// and then holds a stream of directives open: its id first, then every intercept it applies, again on each change.

import { Code, ConnectError, createContextKey, type ConnectRouter } from '@connectrpc/connect';
import { Agent, type AgentInfo } from '../../gen/kubetun/manager/v1/manager_pb.js';
import type { Logger } from '../../log/logger.js';
import { admit, Allowance, LimitError } from '../manager-limits.js';
import type { AgentRegistry } from './agent-registry.js';
import { AgentRefusedError, type AgentVerifier } from './agent-verifier.js';
import type { InterceptRegistry } from './intercept-registry.js';
import { DNS_LABEL } from './intercept-spec.js';
import { WORKLOAD_KINDS, WorkloadApiError, type WorkloadKind } from './workload-api.js';

/** The caller's address and HTTP/2 connection, set per request by the agent listener. */
export const AGENT_CALLER = createContextKey<{ address: string; connection: object | undefined } | undefined>(undefined);

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const MAX_PORTS = 64;
/** Arrivals checked with the API at once: anything reaching the listener could otherwise flood the API server. */
const VERIFICATIONS_AT_ONCE = 32;

/** The fields the manager acts on, checked; a bad one is refused naming it. */
function checkAgentInfo(info: AgentInfo): void {
  const bad = (what: string): ConnectError => new ConnectError(`AgentInfo.${what} is missing or malformed.`, Code.InvalidArgument);
  if (!NAME.test(info.pod)) throw bad('pod');
  if (!DNS_LABEL.test(info.namespace)) throw bad('namespace');
  if (!NAME.test(info.workload)) throw bad('workload');
  if (!WORKLOAD_KINDS.includes(info.kind as WorkloadKind)) throw bad('kind');
  if (info.ports.length === 0 || info.ports.length > MAX_PORTS) throw bad('ports');
  for (const port of info.ports) {
    if (port.containerPort < 1 || port.containerPort > 65535 || port.agentPort < 1 || port.agentPort > 65535) throw bad('ports');
  }
}

export interface AgentServiceDeps {
  agents: AgentRegistry;
  intercepts: InterceptRegistry;
  verifier: AgentVerifier;
  log: Logger;
}

export function agentRoutes(deps: AgentServiceDeps): (router: ConnectRouter) => void {
  const verifications = new Allowance('agent arrivals being checked', VERIFICATIONS_AT_ONCE);
  return (router) =>
    router.service(Agent, {
      async *arriveAsAgent(info, context) {
        const caller = context.values.get(AGENT_CALLER);
        if (caller === undefined) throw new ConnectError('the caller is unknown.', Code.Unauthenticated);
        checkAgentInfo(info);
        const pod = `${info.namespace}/${info.pod}`;
        const checking = admit(verifications);
        if (!checking.admitted) throw new ConnectError(checking.message, Code.ResourceExhausted);
        try {
          await deps.verifier.verify(info, caller.address);
        } catch (error) {
          if (error instanceof AgentRefusedError) {
            deps.log.warn('agent refused', { pod, address: caller.address, reason: error.message });
            throw new ConnectError(`refused: ${error.message}`, Code.PermissionDenied);
          }
          if (error instanceof WorkloadApiError) throw new ConnectError(`cannot check the agent with the Kubernetes API: ${error.message}`, Code.Unavailable);
          throw error;
        } finally {
          checking.release();
        }
        let agent;
        try {
          agent = deps.agents.add(info, caller.connection);
        } catch (error) {
          if (error instanceof LimitError) throw new ConnectError(error.message, Code.ResourceExhausted);
          throw error;
        }
        deps.log.info('agent arrived', { pod, workload: agent.workload });
        agent.tell(deps.intercepts.forAgent(agent));
        try {
          yield* agent.directives(context.signal);
        } finally {
          deps.agents.remove(agent);
          deps.log.info('agent departed', { pod });
        }
      },
    });
}
